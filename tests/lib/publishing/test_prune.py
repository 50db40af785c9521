"""Retention of the branches unpublished runs leave behind, against the real lakeFS server."""

from __future__ import annotations

import time

from dataops_cv.lib.lakefs.run_branch import run_branch_name
from dataops_cv.lib.lakefs.store import LakeFSStore
from dataops_cv.lib.publishing.prune import prune_run_branches
from dataops_cv.lib.publishing.publish import record_run_failure
from tests.lib.publishing.test_publish import write_run


def test_prune_deletes_only_old_inactive_run_branches(store: LakeFSStore):
    for run_id in ("old-failed", "old-running"):
        write_run(store, run_id, "main", {f"{run_id}.txt": b"x"})
        record_run_failure(store, run_id, "FAILURE", "x", {})
    store.create_branch("not-a-run-branch", "main")
    later = time.time() + 10 * 86400
    pruned = list(prune_run_branches(store, older_than_days=7, now=later,
                                     is_active=lambda rid: rid == "old-running"))
    assert [p.branch for p in pruned] == [run_branch_name("old-failed")]
    assert pruned[0].status == "FAILURE"
    assert not store.branch_exists(run_branch_name("old-failed"))
    assert store.branch_exists(run_branch_name("old-running"))
    assert store.branch_exists("not-a-run-branch")
    assert list(prune_run_branches(store, older_than_days=7)) == []  # nothing is that old now
