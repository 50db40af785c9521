"""LakeFSStore against the real lakeFS server."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from pathlib import Path

import pytest

from dataops_cv.lib.lakefs.store import (
    LakeFSConfig,
    LakeFSError,
    LakeFSNoChanges,
    LakeFSStore,
    MergeConflictError,
)


def test_objects_stream_in_and_out(store: LakeFSStore, tmp_path: Path):
    store.create_branch("w", "main")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB, sent in 1 MB chunks
    info = store.put_object("w", "blobs/big.bin", big)
    assert info.size == big.stat().st_size
    assert info.checksum == hashlib.md5(big.read_bytes()).hexdigest()
    streamed = store.put_object("w", "blobs/opened.bin", lambda: big.open("rb"))
    assert streamed.checksum == info.checksum
    digest = hashlib.sha256()
    with store.open_object("w", "blobs/big.bin") as stream:
        while chunk := stream.read(1 << 16):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(big.read_bytes()).hexdigest()
    assert store.stat_object("w", "blobs/missing.bin") is None


def test_commit_merge_diff_log_tag(store: LakeFSStore):
    main_before = store.head("main")
    store.create_branch("feature", "main")
    store.put_object("feature", "a.txt", b"a")
    commit = store.commit("feature", "add a", {"dagster_run_id": "r1"})
    assert commit.metadata["dagster_run_id"] == "r1"
    assert [d.path for d in store.diff("main", "feature", three_dot=True)] == ["a.txt"]
    with pytest.raises(LakeFSNoChanges):
        store.commit("feature", "nothing staged")
    merged = store.merge("feature", "main", "publish", {"why": "test"})
    assert store.head("main") == merged != main_before
    assert store.get_commit(merged).metadata["why"] == "test"
    assert list(store.diff("main", "feature", three_dot=True)) == []
    assert [c.message for c in store.log("main", amount=2)] == ["publish", "add a"]
    assert store.create_tag("v1", "main") == merged
    assert store.create_tag("v1", "main", exist_ok=True) == merged
    with pytest.raises(LakeFSError):
        store.create_tag("v1", main_before, exist_ok=True)


def test_conditional_upload_stores_only_when_absent(store: LakeFSStore):
    store.create_branch("w", "main")
    assert store.put_object("w", "k", b"first", if_absent=True) is not None
    assert store.put_object("w", "k", b"second", if_absent=True) is None
    assert store.get_object("w", "k") == b"first"


def test_identical_rewrite_is_no_change(store: LakeFSStore):
    store.create_branch("w", "main")
    store.put_object("w", "x.bin", b"same", "image/png")
    store.commit("w", "first")
    store.put_object("w", "x.bin", b"same", "image/png")
    assert list(store.uncommitted("w")) == []


def test_branch_creation_is_race_safe(store: LakeFSStore):
    base = store.head("main")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        heads = list(pool.map(lambda _: store.create_branch("raced", base), range(16)))
    assert set(heads) == {base}
    with pytest.raises(LakeFSError) as err:
        store.create_branch("raced", base, exist_ok=False)
    assert err.value.status == 409


def test_merge_conflict_names_the_paths_and_leaves_main(store: LakeFSStore):
    store.create_branch("left", "main")
    store.create_branch("right", "main")
    for branch, body in (("left", b"L"), ("right", b"R")):
        store.put_object(branch, "tables/t/date=2026-01-01/part-00000.parquet", body)
        store.put_object(branch, f"only-{branch}.txt", body)
        store.commit(branch, branch)
    store.merge("left", "main", "left wins the race")
    main_after_left = store.head("main")
    with pytest.raises(MergeConflictError) as err:
        store.merge("right", "main", "right conflicts")
    assert err.value.paths == ["tables/t/date=2026-01-01/part-00000.parquet"]
    assert "tables/t/date=2026-01-01/part-00000.parquet" in str(err.value)
    assert store.head("main") == main_after_left


def test_unreachable_server_fails_loudly_after_bounded_retries():
    store = LakeFSStore(LakeFSConfig("http://127.0.0.1:9", "AKIAX", "secret", "repo",
                                     timeout_s=1.0, max_attempts=3, backoff_s=0.05))
    start = time.monotonic()
    with pytest.raises(LakeFSError, match="unreachable or failing after 3 attempts"):
        store.head("main")
    assert time.monotonic() - start < 10


def test_missing_repository_without_namespace_is_a_clear_error(lakefs_server):
    env = lakefs_server.client_env()
    store = LakeFSStore(LakeFSConfig(env["LAKEFS_ENDPOINT"], env["LAKEFS_ACCESS_KEY_ID"],
                                     env["LAKEFS_SECRET_ACCESS_KEY"], "no-such-repo"))
    with pytest.raises(LakeFSError, match="LAKEFS_STORAGE_NAMESPACE"):
        store.ensure_repository(None)
