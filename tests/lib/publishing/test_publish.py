"""Publishing a run against the real lakeFS server: one merge when it succeeded, a record on the
kept branch when it did not, and conflicts that fail loudly."""

from __future__ import annotations

import pytest

from dataops_cv.lib.lakefs.run_branch import RunBranch, ensure_run_branch, run_branch_name
from dataops_cv.lib.lakefs.store import LakeFSStore, MergeConflictError
from dataops_cv.lib.publishing.publish import publish_run, record_run_failure


def write_run(store: LakeFSStore, run_id: str, base: str, files: dict[str, bytes]) -> RunBranch:
    branch = ensure_run_branch(store, run_id, base)
    rb = RunBranch(store, branch, {"dagster_run_id": run_id})
    for path, data in files.items():
        rb.put(path, data)
    rb.commit(f"write {run_id}")
    return rb


def test_publish_merges_once_and_is_idempotent(store: LakeFSStore):
    base = store.head("main")
    write_run(store, "r1", base, {"tables/a/date=2026-01-01/part-00000.parquet": b"1"})
    first = publish_run(store, "r1", {"dagster_job": "j"})
    assert first.status == "merged" and first.main_before == base != first.main_after
    merge = store.get_commit(first.main_after)
    assert merge.metadata["dagster_run_id"] == "r1" and merge.metadata["dagster_job"] == "j"
    again = publish_run(store, "r1", {"dagster_job": "j"})
    assert again.status == "already_published"
    assert store.head("main") == first.main_after
    assert not store.branch_exists(run_branch_name("r1"))


def test_run_without_changes_leaves_main_alone(store: LakeFSStore):
    write_run(store, "r1", "main", {"x": b"1"})
    publish_run(store, "r1", {})
    main = store.head("main")
    write_run(store, "r2", main, {"x": b"1"})  # same bytes, same key
    result = publish_run(store, "r2", {})
    assert result.status == "nothing_to_publish"
    assert store.head("main") == main


def test_failure_is_recorded_on_the_kept_branch(store: LakeFSStore):
    main = store.head("main")
    write_run(store, "bad", main, {"x": b"partial"})
    commit = record_run_failure(store, "bad", "FAILURE", "check failed", {"dagster_job": "j"})
    assert commit is not None and commit.metadata["dagster_run_status"] == "FAILURE"
    assert record_run_failure(store, "bad", "FAILURE", "again", {}).id == commit.id  # idempotent
    assert store.head("main") == main
    assert store.get_object(run_branch_name("bad"), "x") == b"partial"
    assert record_run_failure(store, "never-wrote", "FAILURE", "x", {}) is None


def test_conflict_fails_publish_loudly_with_main_unchanged(store: LakeFSStore):
    base = store.head("main")
    path = "tables/a/date=2026-01-01/part-00000.parquet"
    write_run(store, "r1", base, {path: b"one"})
    write_run(store, "r2", base, {path: b"two"})
    published = publish_run(store, "r1", {})
    with pytest.raises(MergeConflictError) as err:
        publish_run(store, "r2", {})
    assert err.value.paths == [path]
    assert store.head("main") == published.main_after
    assert store.branch_exists(run_branch_name("r2"))
