"""Publishing a run: one merge of its branch into main when it succeeded, a record on the kept
branch when it did not.

* :func:`publish_run` merges the branch into main exactly once; a second call is a no-op.
* :func:`record_run_failure` leaves main alone and records the failure on the kept branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dataops_cv.lib.lakefs.run_branch import run_branch_name
from dataops_cv.lib.lakefs.store import CommitInfo, LakeFSNoChanges, LakeFSNotFound, LakeFSStore

RUN_ID_KEY = "dagster_run_id"
RUN_STATUS_KEY = "dagster_run_status"
# How far back in main's history a finished publish is looked for when checking idempotency.
PUBLISH_LOOKBACK = 200


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
