"""Retention: delete the branches that failed, canceled or killed runs left behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dataops_cv.lib.lakefs.run_branch import RUN_BRANCH_PREFIX
from dataops_cv.lib.lakefs.store import LakeFSStore
from dataops_cv.lib.publishing.publish import RUN_STATUS_KEY


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
