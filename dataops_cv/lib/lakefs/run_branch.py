"""Write-audit-publish on lakeFS: one branch per pipeline run, one merge into main when it succeeded.

* Every run writes on ``dagster-run-<run_id>``, created from a fixed base (main's commit when the
  run was launched, or main's head when the first step of the run starts). Creation is idempotent,
  so every step process of a multiprocess run may call :func:`ensure_run_branch`.
* Each materialization commits its writes on the run branch with metadata naming the run.
* :func:`publish_run` merges the branch into main exactly once; a second call is a no-op.
* :func:`record_run_failure` leaves main alone and records the failure on the kept branch.
* :func:`prune_run_branches` deletes unpublished run branches older than N days.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dataops_cv.lib.core.concurrency import bounded_map
from dataops_cv.lib.lakefs.store import (
    CommitInfo,
    LakeFSNoChanges,
    LakeFSNotFound,
    LakeFSStore,
    ObjectInfo,
)

RUN_BRANCH_PREFIX = "dagster-run-"
RUN_ID_KEY = "dagster_run_id"
RUN_STATUS_KEY = "dagster_run_status"
# How far back in main's history a finished publish is looked for when checking idempotency.
PUBLISH_LOOKBACK = 200
# Concurrent uploads per step: each lakeFS call costs milliseconds of server-side latency, so a
# small pool hides it (measured ~7x on small objects) while bounding memory to 2x this many
# objects in flight.
UPLOAD_WORKERS = 8


def run_branch_name(run_id: str) -> str:
    """lakeFS branch ids allow letters, digits, '_' and '-': Dagster run ids (UUIDs) fit as they are."""
    return f"{RUN_BRANCH_PREFIX}{run_id}"


def ensure_run_branch(store: LakeFSStore, run_id: str, base: str, main: str = "main") -> str:
    """Create the run's branch at ``base`` unless it exists; return the branch name.

    Args:
        base: a commit id recorded when the run was launched, or the main branch's name when no
            base was recorded (the first step to get here then fixes it for the whole run).
    """
    branch = run_branch_name(run_id)
    if not store.branch_exists(branch):
        store.create_branch(branch, source=base or main, exist_ok=True)
    return branch


@dataclass
class RunBranch:
    """Writes of one materialization on a run branch, committed together."""

    store: LakeFSStore
    branch: str
    commit_metadata: Mapping[str, str]
    written: list[ObjectInfo] = field(default_factory=list)
    skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def put(
        self, path: str, data: bytes | Path | Callable[[], IO[bytes]],
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        info = self.store.put_object(self.branch, path, data, content_type)
        assert info is not None  # unconditional uploads always store
        with self._lock:
            self.written.append(info)
        return info

    def put_content_addressed(
        self, path: str, data: bytes | Path | Callable[[], IO[bytes]], content_type: str
    ) -> bool:
        """Upload unless the key already exists; return whether a new object was stored.

        The key is derived from the content hash, so an existing key already holds these bytes.
        Existence is a stat, then the upload is unconditional: lakeFS v1.84 can lose a
        conditional (``If-None-Match``) upload that races a commit of the same branch by
        another step (the retry into the new staging token sees the entry in the sealed one,
        answers 412, and the sealed token is then dropped). An unconditional retry always
        lands. Two writers of the same key write the same bytes, so the stat's window is
        harmless.
        """
        if self.store.stat_object(self.branch, path) is not None:
            with self._lock:
                self.skipped += 1
            return False
        info = self.store.put_object(self.branch, path, data, content_type)
        assert info is not None  # unconditional uploads always store
        with self._lock:
            self.written.append(info)
        return True

    def put_content_addressed_many(
        self, items: Iterable[tuple[str, bytes | Path | Callable[[], IO[bytes]], str]],
        workers: int = UPLOAD_WORKERS,
    ) -> int:
        """Upload ``(path, data, content_type)`` items concurrently, skipping existing keys.

        Consumes ``items`` lazily with at most ``2 * workers`` objects in flight, so a partition
        is never held in memory. Returns how many objects were uploaded. The first failure
        propagates (after in-flight uploads finish); nothing is committed by this call.
        """
        def put(item: tuple[str, bytes | Path | Callable[[], IO[bytes]], str]) -> bool:
            return self.put_content_addressed(*item)

        return sum(bounded_map(put, items, workers, name="lakefs-put"))

    def exists(self, path: str) -> bool:
        return self.store.stat_object(self.branch, path) is not None

    def read(self, path: str) -> bytes:
        return self.store.get_object(self.branch, path)

    def commit(self, message: str, extra: Mapping[str, str] | None = None) -> CommitInfo:
        """Commit what was staged; with nothing staged, an empty commit still records the step."""
        meta = {**self.commit_metadata, **(extra or {})}
        return self.store.commit(self.branch, message, meta, allow_empty=True)


@dataclass(frozen=True)
class PublishResult:
    status: str  # merged | already_published | nothing_to_publish | no_branch
    run_branch: str
    main_before: str
    main_after: str
    changed_paths: int = 0

    @property
    def published(self) -> bool:
        return self.status in ("merged", "already_published", "nothing_to_publish")


def find_publish(store: LakeFSStore, run_id: str, main: str) -> CommitInfo | None:
    """The commit of ``main`` that published the run (its merge), if within the lookback."""
    for c in store.log(main, amount=PUBLISH_LOOKBACK):
        if c.metadata.get(RUN_ID_KEY) == run_id and c.metadata.get(RUN_STATUS_KEY) == "SUCCESS":
            return c
    return None


def publish_run(
    store: LakeFSStore, run_id: str, metadata: Mapping[str, str], main: str = "main",
    delete_branch: bool = True,
) -> PublishResult:
    """Merge a succeeded run's branch into main, once.

    Idempotent: when the run was already merged, or its branch changes nothing on main, main is
    left as it is. The merge commit carries ``metadata`` plus the run id and status.

    Raises:
        MergeConflictError: main changed the same paths since the run's base; main is unchanged
            and the run branch is kept.
    """
    branch = run_branch_name(run_id)
    main_before = store.head(main)
    if not store.branch_exists(branch):
        done = find_publish(store, run_id, main)
        status = "already_published" if done else "no_branch"
        return PublishResult(status, branch, main_before, main_before)
    changed = sum(1 for _ in store.diff(main, branch, three_dot=True))
    if changed == 0:
        status = "already_published" if find_publish(store, run_id, main) else "nothing_to_publish"
        if delete_branch:
            store.delete_branch(branch)
        return PublishResult(status, branch, main_before, main_before)
    meta = {**metadata, RUN_ID_KEY: run_id, RUN_STATUS_KEY: "SUCCESS"}
    try:
        main_after = store.merge(branch, main, f"Publish Dagster run {run_id}", meta)
    except LakeFSNoChanges:
        # A concurrent publisher of the same run got there first.
        return PublishResult("already_published", branch, main_before, store.head(main))
    if delete_branch:
        store.delete_branch(branch)
    return PublishResult("merged", branch, main_before, main_after, changed)


def record_run_failure(
    store: LakeFSStore, run_id: str, status: str, reason: str, metadata: Mapping[str, str]
) -> CommitInfo | None:
    """Record a failed or canceled run on its kept branch (main is never touched).

    Returns the recording commit, or None when the run never created its branch.
    """
    branch = run_branch_name(run_id)
    try:
        head = store.get_commit(branch)
    except LakeFSNotFound:
        return None
    if head.metadata.get(RUN_ID_KEY) == run_id and head.metadata.get(RUN_STATUS_KEY) == status:
        return head
    meta = {**metadata, RUN_ID_KEY: run_id, RUN_STATUS_KEY: status,
            "dagster_failure": reason[:2000]}
    return store.commit(branch, f"Dagster run {run_id} {status}: kept for inspection", meta,
                        allow_empty=True)


@dataclass(frozen=True)
class PrunedBranch:
    branch: str
    age_days: float
    status: str


def prune_run_branches(
    store: LakeFSStore, older_than_days: float, dry_run: bool = False,
    is_active: Callable[[str], bool] = lambda run_id: False, now: float | None = None,
) -> Iterator[PrunedBranch]:
    """Delete run branches left by failed, canceled or killed runs whose last commit is older
    than N days (published branches are deleted when they merge).

    Args:
        is_active: tells whether a run id is still queued or running; its branch is kept whatever
            its age (a fresh branch's head is its base commit, which may be old).
    """
    now = time.time() if now is None else now
    for branch, commit_id in list(store.list_branches(prefix=RUN_BRANCH_PREFIX)):
        if is_active(branch[len(RUN_BRANCH_PREFIX):]):
            continue
        head = store.get_commit(commit_id)
        age_days = (now - head.creation_date) / 86400
        if age_days < older_than_days:
            continue
        status = head.metadata.get(RUN_STATUS_KEY, "UNKNOWN")
        if not dry_run:
            store.delete_branch(branch)
        yield PrunedBranch(branch, age_days, status)
