"""Write-audit-publish primitives against the real lakeFS server."""

from __future__ import annotations

import time

import pytest

from dataops_cv.lib.lakefs.store import LakeFSStore, MergeConflictError
from dataops_cv.lib.lakefs.run_branch import (
    RunBranch,
    ensure_run_branch,
    prune_run_branches,
    publish_run,
    record_run_failure,
    run_branch_name,
)


def _write(store: LakeFSStore, run_id: str, base: str, files: dict[str, bytes]) -> RunBranch:
    branch = ensure_run_branch(store, run_id, base)
    rb = RunBranch(store, branch, {"dagster_run_id": run_id})
    for path, data in files.items():
        rb.put(path, data)
    rb.commit(f"write {run_id}")
    return rb


def test_publish_merges_once_and_is_idempotent(store: LakeFSStore):
    base = store.head("main")
    _write(store, "r1", base, {"tables/a/date=2026-01-01/part-00000.parquet": b"1"})
    first = publish_run(store, "r1", {"dagster_job": "j"})
    assert first.status == "merged" and first.main_before == base != first.main_after
    merge = store.get_commit(first.main_after)
    assert merge.metadata["dagster_run_id"] == "r1" and merge.metadata["dagster_job"] == "j"
    again = publish_run(store, "r1", {"dagster_job": "j"})
    assert again.status == "already_published"
    assert store.head("main") == first.main_after
    assert not store.branch_exists(run_branch_name("r1"))


def test_run_without_changes_leaves_main_alone(store: LakeFSStore):
    _write(store, "r1", "main", {"x": b"1"})
    publish_run(store, "r1", {})
    main = store.head("main")
    _write(store, "r2", main, {"x": b"1"})  # same bytes, same key
    result = publish_run(store, "r2", {})
    assert result.status == "nothing_to_publish"
    assert store.head("main") == main


def test_failure_is_recorded_on_the_kept_branch(store: LakeFSStore):
    main = store.head("main")
    _write(store, "bad", main, {"x": b"partial"})
    commit = record_run_failure(store, "bad", "FAILURE", "check failed", {"dagster_job": "j"})
    assert commit is not None and commit.metadata["dagster_run_status"] == "FAILURE"
    assert record_run_failure(store, "bad", "FAILURE", "again", {}).id == commit.id  # idempotent
    assert store.head("main") == main
    assert store.get_object(run_branch_name("bad"), "x") == b"partial"
    assert record_run_failure(store, "never-wrote", "FAILURE", "x", {}) is None


def test_conflict_fails_publish_loudly_with_main_unchanged(store: LakeFSStore):
    base = store.head("main")
    path = "tables/a/date=2026-01-01/part-00000.parquet"
    _write(store, "r1", base, {path: b"one"})
    _write(store, "r2", base, {path: b"two"})
    published = publish_run(store, "r1", {})
    with pytest.raises(MergeConflictError) as err:
        publish_run(store, "r2", {})
    assert err.value.paths == [path]
    assert store.head("main") == published.main_after
    assert store.branch_exists(run_branch_name("r2"))


def test_prune_deletes_only_old_inactive_run_branches(store: LakeFSStore):
    for run_id in ("old-failed", "old-running"):
        _write(store, run_id, "main", {f"{run_id}.txt": b"x"})
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
