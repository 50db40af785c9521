"""Label Studio as the labeling backend: projects, task sync and incremental pulls.

Facts this module encodes (Label Studio 1.23, label-studio-sdk 2.1):

* Incremental pulls filter on ``tasks:updated_at`` with operator ``greater`` (strict) and the
  value in ``%Y-%m-%dT%H:%M:%S.%fZ`` form (an ``+00:00`` offset is an HTTP 500). Creating or
  editing an annotation or a prediction moves the task's ``updated_at``. A write committed just
  after a pull can carry an ``updated_at`` just before the newest one that pull saw, so a pull
  re-reads the overlap window before the previous pull's time (see :func:`pull_start`) and
  drops what it already holds by (task id, ``updated_at``).
* ``updated_at`` comes back as a string or a datetime depending on the field: normalised here.
* Task ids are reused after deletes on SQLite, so they are never a cursor; deletions are found
  by comparing the project's task count with what the snapshot holds, and only then by listing ids.
* Images are referenced as ``s3://<lakeFS repository>/<commit>/<object key>`` and resolved by an
  S3 storage on the project that points at lakeFS's S3 gateway; Label Studio proxies the bytes,
  so the browser needs to reach Label Studio only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from xml.sax.saxutils import quoteattr

import httpx

T = TypeVar("T")

LS_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
PULL_OVERLAP = timedelta(seconds=2)
PAGE_SIZE = 100
IMPORT_BATCH = 500
STORAGE_TITLE = "dataops-cv lakeFS"
FROM_NAME = "label"
TO_NAME = "image"


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached, or refused a request, after bounded retries."""


def label_config(taxonomy: Sequence[str]) -> str:
    """The bounding-box labeling interface for the contract's taxonomy, one label per class."""
    labels = "".join(f"<Label value={quoteattr(c)}/>" for c in taxonomy)
    return (f'<View><Image name="{TO_NAME}" value="$image" zoom="true"/>'
            f'<RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">{labels}</RectangleLabels>'
            "</View>")


def format_ls_time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime(LS_TIME_FORMAT)


def parse_ls_time(value: object) -> datetime:
    """A Label Studio timestamp (string in any ISO form, or datetime) as an aware UTC datetime."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, str):
        ts = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def pull_start(since: datetime, pulled_at: datetime | None) -> datetime:
    """Where a pull after cursor ``since`` must start reading.

    A write that was still in flight when the previous pull queried Label Studio (server time
    ``pulled_at``) carries an ``updated_at`` within the overlap before ``pulled_at``, possibly
    below the cursor; nothing older can be missing. So the re-read window is the overlap before
    the previous pull, not before the cursor: after a quiet spell it is empty (a 1 ms margin
    covers equal timestamps), and a bulk import just before the cursor is not read twice.
    Without ``pulled_at``, the overlap is taken before the cursor.
    """
    if pulled_at is None:
        return since - PULL_OVERLAP
    return min(since - timedelta(milliseconds=1), pulled_at - PULL_OVERLAP)


def updated_filter(since: datetime | None, pulled_at: datetime | None = None) -> str | None:
    """The data-manager query for tasks a pull after cursor ``since`` must read, oldest first."""
    if since is None:
        return json.dumps({"ordering": ["tasks:updated_at"]})
    return json.dumps({
        "filters": {"conjunction": "and", "items": [{
            "filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
            "value": format_ls_time(pull_start(since, pulled_at))}]},
        "ordering": ["tasks:updated_at"],
    })


def partition_filter(partition: str) -> str:
    return json.dumps({"filters": {"conjunction": "and", "items": [{
        "filter": "filter:tasks:data.partition", "operator": "equal", "type": "String",
        "value": partition}]}})


@dataclass(frozen=True)
class SyncResult:
    created: int
    existing: int
    task_ids: dict[str, int]  # image sha256 -> task id, for every frame of the partition


class LabelStudioClient:
    """One Label Studio server and token; counts the HTTP requests it makes.

    Every call has a timeout and up to ``max_attempts`` tries on connection errors, 429 and 5xx;
    then a :class:`LabelStudioError` names the server and the operation.
    """

    def __init__(self, url: str, api_key: str, timeout_s: float = 30.0, max_attempts: int = 4,
                 backoff_s: float = 0.5):
        self.url = url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.requests = 0
        self.server_time: datetime | None = None  # the Date of the latest response
        self._http = httpx.Client(timeout=timeout_s, event_hooks={
            "request": [self._count], "response": [self._clock]})
        # Imported here: the SDK takes ~1 s to import, and every Dagster step process loads the
        # definitions, while few steps talk to Label Studio.
        from label_studio_sdk import LabelStudio

        self.sdk = LabelStudio(base_url=self.url, api_key=api_key, httpx_client=self._http)

    def _count(self, request: httpx.Request) -> None:
        self.requests += 1

    def _clock(self, response: httpx.Response) -> None:
        # Label Studio's own clock (to the second), the one its updated_at values use.
        date = response.headers.get("date")
        if date:
            self.server_time = parsedate_to_datetime(date).astimezone(UTC)

    def close(self) -> None:
        self._http.close()

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with bounded retries on transient failures."""
        from label_studio_sdk.core.api_error import ApiError

        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn(*args, **kwargs)
            except httpx.TransportError as exc:
                error: Exception = exc
            except ApiError as exc:
                if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 429:
                    raise LabelStudioError(
                        f"Label Studio at {self.url}: {what} refused (HTTP {exc.status_code}): "
                        f"{_api_detail(exc)}") from exc
                error = exc
            if attempt < self.max_attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise LabelStudioError(f"Label Studio at {self.url}: {what} failed after "
                               f"{self.max_attempts} attempts: {error}") from error

    def pages(self, what: str, **list_kwargs: Any) -> Iterator[dict]:
        """Every task a ``tasks.list`` query returns, page by page, as plain dicts."""
        page = 1
        while True:
            result = self.call(f"{what} (page {page})", self.sdk.tasks.list, page=page,
                               page_size=PAGE_SIZE, **list_kwargs)
            items = list(result.items or [])
            for task in items:
                yield task.dict() if hasattr(task, "dict") else dict(task)
            # The SDK's has_next only says "this page was not empty"; asking past the end is a
            # 404, so stop on the total the response carries.
            total = getattr(result.response, "total", None)
            if len(items) < PAGE_SIZE or (total is not None and page * PAGE_SIZE >= total):
                return
            page += 1

    # Projects

    def ensure_project(self, title: str, taxonomy: Sequence[str]) -> int:
        """The project called ``title``, created with the taxonomy's labeling config if missing;
        an existing project whose config differs is updated (Label Studio refuses the update,
        and so do we, when existing annotations use a label the new config drops)."""
        config = label_config(taxonomy)
        projects = self.call("list projects", lambda: list(self.sdk.projects.list(title=title)))
        for project in projects:
            if project.title == title:
                if (project.label_config or "").strip() != config:
                    self.call(f"update the labeling config of project {project.id}",
                              self.sdk.projects.update, project.id, label_config=config)
                return int(project.id)
        created = self.call(f"create project {title!r}", self.sdk.projects.create, title=title,
                            label_config=config)
        return int(created.id)

    def ensure_lakefs_storage(self, project: int, repository: str, endpoint: str,
                              access_key_id: str, secret_access_key: str) -> int:
        """An S3 storage on the project that resolves ``s3://<repository>/...`` image URLs
        through lakeFS's S3 gateway (proxied by Label Studio; never synced into tasks)."""
        existing = self.call("list S3 storages", self.sdk.import_storage.s3.list, project=project)
        for storage in existing:
            if storage.title == STORAGE_TITLE and storage.bucket == repository:
                return int(storage.id)
        created = self.call(
            f"connect project {project} to lakeFS", self.sdk.import_storage.s3.create,
            project=project, title=STORAGE_TITLE, bucket=repository, s3endpoint=endpoint,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            region_name="us-east-1", presign=False, use_blob_urls=True)
        return int(created.id)

    def task_count(self, project: int) -> int:
        return int(self.call(f"get project {project}", self.sdk.projects.get, project).task_number
                   or 0)

    def users(self) -> dict[int, str]:
        """User id -> email, to name annotators."""
        return {int(u.id): u.email or u.username or str(u.id)
                for u in self.call("list users", self.sdk.users.list)}

    # Tasks

    def sync_tasks(self, project: int, partition: str, frames: Iterable[Mapping[str, Any]],
                   image_uri: Callable[[Mapping[str, Any]], str]) -> SyncResult:
        """Make one task per frame of ``partition`` (keyed by content hash); re-syncing creates
        nothing twice. Cost: the partition's existing tasks are listed, new ones imported in
        batches."""
        have: dict[str, int] = {}
        for task in self.pages(f"list tasks of {partition}", project=project,
                               fields="task_only", query=partition_filter(partition),
                               resolve_uri=False):
            sha = (task.get("data") or {}).get("sha256")
            if isinstance(sha, str):
                have.setdefault(sha, int(task["id"]))
        new = [f for f in frames if str(f["sha256"]) not in have]
        unique = list({str(f["sha256"]): f for f in new}.values())
        existing = len(have)
        for start in range(0, len(unique), IMPORT_BATCH):
            batch = unique[start:start + IMPORT_BATCH]
            payload = [task_data(f, partition, image_uri(f)) for f in batch]
            result = self.call(f"import {len(payload)} tasks", self.sdk.projects.import_tasks,
                               project, request=payload, return_task_ids=True)
            for frame, task_id in zip(batch, result.task_ids or [], strict=True):
                have[str(frame["sha256"])] = int(task_id)
        return SyncResult(created=len(unique), existing=existing, task_ids=have)

    def changed_tasks(self, project: int, since: datetime | None,
                      pulled_at: datetime | None = None) -> Iterator[dict]:
        """Tasks (with annotations) a pull after cursor ``since`` must read (see
        :func:`pull_start`), oldest first; ``server_time`` afterwards is this pull's time."""
        yield from self.pages(f"list tasks of project {project} changed since {since}",
                              project=project, fields="all",
                              query=updated_filter(since, pulled_at), resolve_uri=False)

    def predicted_tasks(self, project: int, model_version: str) -> set[int]:
        """Tasks that already hold a prediction of ``model_version`` (re-runs send none twice)."""
        found = self.call(f"list predictions of project {project}", self.sdk.predictions.list,
                          project=project)
        return {int(p.task) for p in found if p.model_version == model_version}

    def task_ids(self, project: int) -> set[int]:
        return {int(t["id"]) for t in self.pages(f"list task ids of project {project}",
                                                 project=project, fields="task_only",
                                                 resolve_uri=False)}


def task_data(frame: Mapping[str, Any], partition: str, image: str) -> dict:
    """What a task carries: the image URL and the keys that tie it to our frame."""
    return {"image": image, "sha256": str(frame["sha256"]), "partition": partition,
            "rel_path": str(frame.get("rel_path", "")), "width": int(frame["width"]),
            "height": int(frame["height"])}


def _api_detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("validation_errors") or body)
    return str(body)[:500]
