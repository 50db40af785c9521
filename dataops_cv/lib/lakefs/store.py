"""A small, typed store over lakeFS: repositories, branches, streamed objects, commits, merges,
diffs, logs and tags — every call with a timeout and a bounded retry.

JSON calls go through the ``lakefs`` SDK wrapper's configured ``lakefs_sdk`` client. Object bodies
go over the same HTTP API as ``application/octet-stream`` through a urllib3 pool, so uploads and
downloads stream from and to file objects instead of being held in memory.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import lakefs
import lakefs_sdk
import urllib3
from lakefs_sdk.exceptions import ApiException

log = logging.getLogger(__name__)

T = TypeVar("T")

# Statuses worth another try: the server is overloaded, restarting, or behind a proxy that is.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
_CHUNK = 1 << 20


class LakeFSError(RuntimeError):
    """A lakeFS call failed; the message names the operation, the ref/path and lakeFS's answer."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LakeFSNotFound(LakeFSError):
    pass


class LakeFSNoChanges(LakeFSError):
    """A commit or merge had nothing to record."""


class MergeConflictError(LakeFSError):
    """A merge found conflicting changes; ``paths`` lists them (empty if they could not be found)."""

    def __init__(self, message: str, paths: list[str]):
        super().__init__(message, status=409)
        self.paths = paths


@dataclass(frozen=True)
class LakeFSConfig:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    repository: str
    timeout_s: float = 30.0
    max_attempts: int = 4
    backoff_s: float = 0.25
    ui_endpoint: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    path: str
    checksum: str
    size: int
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitInfo:
    id: str
    message: str
    metadata: Mapping[str, str]
    parents: tuple[str, ...]
    creation_date: int


@dataclass(frozen=True)
class DiffEntry:
    path: str
    type: str  # added | removed | changed | conflict | prefix_changed
    size: int | None


def _commit_info(c: Any) -> CommitInfo:
    return CommitInfo(
        id=c.id,
        message=c.message,
        metadata=dict(c.metadata or {}),
        parents=tuple(c.parents or ()),
        creation_date=c.creation_date,
    )


def _api_message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or exc.reason)


class LakeFSStore:
    """Operations on one lakeFS repository.

    Not shared across processes: build one per process (Dagster steps each build their own).
    """

    def __init__(self, config: LakeFSConfig):
        self.config = config
        self.repository = config.repository
        client = lakefs.Client(
            host=config.endpoint,
            username=config.access_key_id,
            password=config.secret_access_key,
        )
        # Retries are ours (bounded, with backoff, aware of which calls are idempotent); urllib3's
        # own would silently re-send non-idempotent commits.
        client.config.retries = urllib3.Retry(total=0, raise_on_status=False)
        self._sdk = client.sdk_client
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=16,
            block=True,
            retries=urllib3.Retry(total=0, raise_on_status=False),
        )
        # Per-request headers replace a pool's default headers, so auth is added to each request.
        self._auth = urllib3.make_headers(
            basic_auth=f"{config.access_key_id}:{config.secret_access_key}"
        )
        self._timeout = urllib3.Timeout(connect=min(10.0, config.timeout_s), read=config.timeout_s)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call with a timeout and a bounded, backed-off retry on transient faults."""
        last: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return fn(*args, _request_timeout=self.config.timeout_s, **kwargs)
            except ApiException as exc:
                if exc.status == 404:
                    raise LakeFSNotFound(f"{what}: {_api_message(exc)}", 404) from exc
                if exc.status in RETRYABLE_STATUS and attempt < self.config.max_attempts:
                    last = exc
                else:
                    msg = _api_message(exc)
                    if exc.status == 400 and "no changes" in msg:
                        raise LakeFSNoChanges(f"{what}: {msg}", 400) from exc
                    raise LakeFSError(f"{what}: HTTP {exc.status}: {msg}", exc.status) from exc
            except TRANSPORT_ERRORS as exc:
                last = exc
                if attempt == self.config.max_attempts:
                    break
            delay = self.config.backoff_s * (2 ** (attempt - 1))
            log.warning("lakeFS %s failed (%s); retry %d in %.2fs", what, last, attempt, delay)
            time.sleep(delay)
        raise LakeFSError(
            f"{what}: lakeFS at {self.config.endpoint} unreachable or failing after "
            f"{self.config.max_attempts} attempts: {last}"
        ) from last

    def _url(self, *parts: str, **query: str) -> str:
        path = "/".join(urllib.parse.quote(p, safe="") for p in parts)
        url = f"{self.config.endpoint.rstrip('/')}/api/v1/{path}"
        return f"{url}?{urllib.parse.urlencode(query)}" if query else url

    def _http_request(
        self, what: str, method: str, url: str, *, body_factory: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None, stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        last: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                resp = self._http.request(
                    method, url, body=body_factory() if body_factory else None,
                    headers={**self._auth, **(headers or {})}, timeout=self._timeout,
                    preload_content=not stream,
                )
            except TRANSPORT_ERRORS as exc:
                last = exc
            else:
                if resp.status < 300:
                    return resp
                data = resp.data if not stream else resp.read()
                resp.release_conn()
                try:
                    msg = json.loads(data).get("message", data.decode(errors="replace"))
                except ValueError:
                    msg = data.decode(errors="replace")
                if resp.status == 404:
                    raise LakeFSNotFound(f"{what}: {msg}", 404)
                if resp.status not in RETRYABLE_STATUS or attempt == self.config.max_attempts:
                    raise LakeFSError(f"{what}: HTTP {resp.status}: {msg}", resp.status)
                last = LakeFSError(msg, resp.status)
            if attempt < self.config.max_attempts:
                time.sleep(self.config.backoff_s * (2 ** (attempt - 1)))
        raise LakeFSError(
            f"{what}: lakeFS at {self.config.endpoint} unreachable or failing after "
            f"{self.config.max_attempts} attempts: {last}"
        ) from last

    def ensure_repository(self, storage_namespace: str | None, default_branch: str = "main") -> bool:
        """Create the repository if missing; return whether it was created.

        Raises:
            LakeFSError: the repository is missing and no storage namespace was given.
        """
        try:
            self._call(f"get repository {self.repository}",
                       self._sdk.repositories_api.get_repository, self.repository)
            return False
        except LakeFSNotFound:
            pass
        if not storage_namespace:
            raise LakeFSError(
                f"repository {self.repository!r} does not exist on {self.config.endpoint} and no "
                "storage namespace was given: set LAKEFS_STORAGE_NAMESPACE (e.g. s3://bucket/prefix)"
            )
        creation = lakefs_sdk.RepositoryCreation(
            name=self.repository, storage_namespace=storage_namespace, default_branch=default_branch
        )
        try:
            self._call(f"create repository {self.repository}",
                       self._sdk.repositories_api.create_repository, creation)
        except LakeFSError as exc:
            if exc.status == 409:  # created concurrently by another process
                return False
            raise
        return True

    def head(self, ref: str) -> str:
        """The commit id a branch, tag or commit ref points at."""
        commit = self._call(f"resolve {ref}", self._sdk.commits_api.get_commit, self.repository, ref)
        return commit.id

    def get_commit(self, ref: str) -> CommitInfo:
        return _commit_info(
            self._call(f"get commit {ref}", self._sdk.commits_api.get_commit, self.repository, ref)
        )

    def branch_exists(self, branch: str) -> bool:
        try:
            self._call(f"get branch {branch}", self._sdk.branches_api.get_branch,
                       self.repository, branch)
            return True
        except LakeFSNotFound:
            return False

    def create_branch(self, branch: str, source: str, exist_ok: bool = True) -> str:
        """Create ``branch`` at ``source``; with ``exist_ok`` an existing branch is kept as it is.

        Safe to call from many processes at once: exactly one creates the branch, the others see it.

        Returns:
            The commit id the branch points at now.
        """
        creation = lakefs_sdk.BranchCreation(name=branch, source=source)
        try:
            self._call(f"create branch {branch} from {source}",
                       self._sdk.branches_api.create_branch, self.repository, creation)
        except LakeFSError as exc:
            if not (exist_ok and exc.status == 409):
                raise
        return self.head(branch)

    def delete_branch(self, branch: str, missing_ok: bool = True) -> None:
        try:
            self._call(f"delete branch {branch}", self._sdk.branches_api.delete_branch,
                       self.repository, branch)
        except LakeFSNotFound:
            if not missing_ok:
                raise

    def list_branches(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        """Yield ``(branch, commit_id)`` pairs whose name starts with ``prefix``."""
        after = ""
        while True:
            page = self._call("list branches", self._sdk.branches_api.list_branches,
                              self.repository, prefix=prefix or None, after=after, amount=1000)
            for ref in page.results:
                yield ref.id, ref.commit_id
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def put_object(
        self, branch: str, path: str, data: bytes | Path | Callable[[], IO[bytes]],
        content_type: str = "application/octet-stream", if_absent: bool = False,
    ) -> ObjectInfo | None:
        """Upload one object, streaming from a file when given a path or an opener.

        ``data`` may be bytes, a file path, or a zero-argument callable returning a fresh binary
        stream (called again on retry, so a retried upload never sends a half-read stream).
        With ``if_absent`` the upload is conditional (``If-None-Match: *``) and None is returned
        when the path already holds an object. Do not use it on a branch another process may
        commit meanwhile: lakeFS v1.84 can then drop the write (see
        ``RunBranch.put_content_addressed``).
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
            size = len(payload)
            factory: Callable[[], Any] = lambda: payload  # noqa: E731
        elif isinstance(data, Path):
            size = data.stat().st_size
            factory = lambda: _chunks(data.open("rb"))  # noqa: E731
        else:
            factory = lambda: _chunks(data())  # noqa: E731
            size = None
        headers = {"Content-Type": content_type}
        if size is not None:
            headers["Content-Length"] = str(size)
        if if_absent:
            headers["If-None-Match"] = "*"
        url = self._url("repositories", self.repository, "branches", branch, "objects", path=path)
        try:
            resp = self._http_request(f"upload {branch}:{path}", "POST", url,
                                      body_factory=factory, headers=headers)
        except LakeFSError as exc:
            if if_absent and exc.status == 412:
                return None
            raise
        stats = json.loads(resp.data)
        return ObjectInfo(path=stats["path"], checksum=stats["checksum"],
                          size=stats.get("size_bytes", size or 0),
                          content_type=stats.get("content_type"),
                          metadata=stats.get("metadata") or {})

    @contextmanager
    def open_object(self, ref: str, path: str) -> Iterator[IO[bytes]]:
        """Stream one object's bytes from a ref without loading them whole."""
        url = self._url("repositories", self.repository, "refs", ref, "objects", path=path)
        resp = self._http_request(f"read {ref}:{path}", "GET", url, stream=True)
        try:
            yield resp  # type: ignore[misc]
        finally:
            resp.release_conn()

    def get_object(self, ref: str, path: str) -> bytes:
        with self.open_object(ref, path) as stream:
            return stream.read()

    def stat_object(self, ref: str, path: str) -> ObjectInfo | None:
        try:
            s = self._call(f"stat {ref}:{path}", self._sdk.objects_api.stat_object,
                           self.repository, ref, path, user_metadata=True)
        except LakeFSNotFound:
            return None
        return ObjectInfo(s.path, s.checksum, s.size_bytes or 0, s.content_type, s.metadata or {})

    def delete_object(self, branch: str, path: str, missing_ok: bool = True) -> None:
        """Stage the deletion of one object on ``branch``."""
        try:
            self._call(f"delete {branch}:{path}", self._sdk.objects_api.delete_object,
                       self.repository, branch, path)
        except LakeFSNotFound:
            if not missing_ok:
                raise

    def list_objects(self, ref: str, prefix: str = "") -> Iterator[ObjectInfo]:
        after = ""
        while True:
            page = self._call(f"list {ref}:{prefix}", self._sdk.objects_api.list_objects,
                              self.repository, ref, prefix=prefix or None, after=after,
                              amount=1000, user_metadata=False)
            for s in page.results:
                if s.path_type == "object":
                    yield ObjectInfo(s.path, s.checksum, s.size_bytes or 0, s.content_type)
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def commit(
        self, branch: str, message: str, metadata: Mapping[str, str] | None = None,
        allow_empty: bool = False,
    ) -> CommitInfo:
        """Commit the branch's staged changes.

        Raises:
            LakeFSNoChanges: nothing was staged and ``allow_empty`` is false.
        """
        meta = {k: str(v) for k, v in (metadata or {}).items()}
        creation = lakefs_sdk.CommitCreation(message=message, metadata=meta, allow_empty=allow_empty)
        try:
            c = self._call(f"commit on {branch}", self._sdk.commits_api.commit,
                           self.repository, branch, creation)
        except LakeFSNoChanges:
            # A retried commit whose first attempt landed answers "no changes": recognise our own.
            head = self.get_commit(branch)
            if head.message == message and dict(head.metadata) == meta:
                return head
            raise
        return _commit_info(c)

    def merge(
        self, source_ref: str, dest_branch: str, message: str,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Merge ``source_ref`` into ``dest_branch``; return the new head of ``dest_branch``.

        Never resolves conflicts by a blanket strategy: a conflict raises with the paths involved.

        Raises:
            MergeConflictError: both sides changed the same paths since their merge base.
            LakeFSNoChanges: the source has nothing the destination lacks.
        """
        merge = lakefs_sdk.Merge(
            message=message, metadata={k: str(v) for k, v in (metadata or {}).items()}
        )
        try:
            result = self._call(f"merge {source_ref} into {dest_branch}",
                                self._sdk.refs_api.merge_into_branch,
                                self.repository, source_ref, dest_branch, merge=merge)
        except LakeFSError as exc:
            if exc.status == 409:
                paths = self.conflicting_paths(source_ref, dest_branch)
                shown = ", ".join(paths[:20]) + (" …" if len(paths) > 20 else "")
                raise MergeConflictError(
                    f"merge {source_ref} into {dest_branch} conflicts on {len(paths)} path(s): "
                    f"{shown or '(lakeFS reported a conflict; no overlapping path found)'}",
                    paths,
                ) from exc
            raise
        return result.reference

    def conflicting_paths(self, source_ref: str, dest_branch: str) -> list[str]:
        """Paths changed on both sides since their merge base."""
        ours = {d.path for d in self.diff(dest_branch, source_ref, three_dot=True)}
        theirs = {d.path for d in self.diff(source_ref, dest_branch, three_dot=True)}
        return sorted(ours & theirs)

    def diff(
        self, left_ref: str, right_ref: str, prefix: str = "", three_dot: bool = False
    ) -> Iterator[DiffEntry]:
        """Entries that differ from ``left_ref`` to ``right_ref``.

        With ``three_dot`` only the changes made on ``right_ref`` since the merge base count
        (what a merge of right into left would bring).
        """
        after = ""
        while True:
            page = self._call(
                f"diff {left_ref}..{right_ref}", self._sdk.refs_api.diff_refs,
                self.repository, left_ref, right_ref, after=after, amount=1000,
                prefix=prefix or None, type="three_dot" if three_dot else "two_dot",
            )
            for d in page.results:
                yield DiffEntry(d.path, d.type, d.size_bytes)
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def uncommitted(self, branch: str, prefix: str = "") -> Iterator[DiffEntry]:
        after = ""
        while True:
            page = self._call(f"diff uncommitted on {branch}", self._sdk.branches_api.diff_branch,
                              self.repository, branch, after=after, amount=1000,
                              prefix=prefix or None)
            for d in page.results:
                yield DiffEntry(d.path, d.type, d.size_bytes)
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def log(self, ref: str, amount: int = 100) -> list[CommitInfo]:
        page = self._call(f"log {ref}", self._sdk.refs_api.log_commits, self.repository, ref,
                          amount=amount, limit=True)
        return [_commit_info(c) for c in page.results]

    def last_change(self, ref: str, path: str) -> CommitInfo | None:
        """The newest commit reachable from ``ref`` that changed the object ``path`` (None when
        no commit did). Empty commits and commits of other paths do not count, so re-writing the
        same bytes keeps the answer."""
        page = self._call(f"log {ref} of {path}", self._sdk.refs_api.log_commits,
                          self.repository, ref, amount=1, objects=[path], limit=True)
        return _commit_info(page.results[0]) if page.results else None

    def list_tags(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        """(tag, commit id) of every tag whose name starts with ``prefix``, in name order."""
        after = ""
        while True:
            page = self._call(f"list tags {prefix}*", self._sdk.tags_api.list_tags,
                              self.repository, prefix=prefix or None, after=after, amount=1000)
            for t in page.results:
                yield t.id, t.commit_id
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def create_tag(self, tag: str, ref: str, exist_ok: bool = False) -> str:
        """Tag the commit ``ref`` resolves to; return the commit id.

        An existing tag is accepted with ``exist_ok`` only if it already points at that commit.
        """
        commit_id = self.head(ref)
        try:
            self._call(f"create tag {tag}", self._sdk.tags_api.create_tag, self.repository,
                       lakefs_sdk.TagCreation(id=tag, ref=commit_id))
        except LakeFSError as exc:
            if not (exist_ok and exc.status == 409):
                raise
            existing = self.head(tag)
            if existing != commit_id:
                raise LakeFSError(f"tag {tag} exists at {existing}, not at {commit_id}", 409) from exc
        return commit_id

    def commit_url(self, commit_id: str) -> str:
        base = (self.config.ui_endpoint or self.config.endpoint).rstrip("/")
        return f"{base}/repositories/{self.repository}/commits/{commit_id}"

    def branch_url(self, branch: str) -> str:
        base = (self.config.ui_endpoint or self.config.endpoint).rstrip("/")
        return f"{base}/repositories/{self.repository}/objects?ref={urllib.parse.quote(branch)}"


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(_CHUNK):
            yield chunk
