"""The I/O seam against the real lakeFS server: what a step reads and writes on its run branch."""

from __future__ import annotations

import pyarrow as pa

from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.run_branch import RefView, RunBranch, ensure_run_branch
from dataops_cv.lib.lakefs.store import LakeFSStore

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def _run(store: LakeFSStore, run_id: str = "r1") -> RunBranch:
    return RunBranch(store, ensure_run_branch(store, run_id, "main"), {"dagster_run_id": run_id})


def test_branch_creation_is_idempotent(store: LakeFSStore):
    first = ensure_run_branch(store, "r1", "main")
    assert ensure_run_branch(store, "r1", "main") == first == "dagster-run-r1"


def test_tables_round_trip_and_absent_ones_read_empty(store: LakeFSStore):
    run = _run(store)
    path = layout.table_key("things", "2026-01-02")
    run.put_rows(path, [{"id": 1, "name": "a"}, {"id": 2, "name": None}], SCHEMA)
    assert run.rows(path) == [{"id": 1, "name": "a"}, {"id": 2, "name": None}]
    assert run.rows(path, ["name", "missing"]) == [{"name": "a"}, {"name": None}]
    assert run.day_rows("things", "2026-01-02") == run.rows(path)
    assert run.rows(layout.table_key("things", "2026-01-03")) == []
    assert run.table(layout.table_key("things", "2026-01-03")) is None
    assert run.read_json("nothing.json", {"default": True}) == {"default": True}


def test_same_rows_give_the_same_bytes(store: LakeFSStore):
    run = _run(store)
    a = run.put_rows("a.parquet", [{"id": 1, "name": "x"}], SCHEMA)
    b = run.put_rows("b.parquet", [{"id": 1, "name": "x"}], SCHEMA)
    assert a.checksum == b.checksum
    assert run.checksums(["a.parquet", "b.parquet", "c.parquet"]) == {
        "a.parquet": a.checksum, "b.parquet": b.checksum, "c.parquet": None}


def test_partitions_are_listed_from_the_days_tables(store: LakeFSStore):
    run = _run(store)
    for day in ("2026-01-01", "2026-01-03", "2026-01-05"):
        run.put_rows(layout.table_key("things", day), [], SCHEMA)
    run.put(layout.side_key("things", "2026-01-04", "_inputs.json"), b"{}")  # not a table
    assert run.partitions("things") == ["2026-01-01", "2026-01-03", "2026-01-05"]
    assert run.earlier_partitions("things", "2026-01-05", 1) == ["2026-01-03"]
    assert run.earlier_partitions("things", "2026-01-05", 9) == ["2026-01-01", "2026-01-03"]
    assert run.earlier_partitions("things", "2026-01-05", 0) == []


def test_unchanged_needs_the_same_inputs_and_every_output(store: LakeFSStore):
    run = _run(store)
    inputs = {"config": "v1", "tables/x": "abc", "n": None}
    assert not run.unchanged("_inputs.json", inputs, [])
    run.put_json("_inputs.json", inputs)
    assert run.unchanged("_inputs.json", inputs, [])
    assert not run.unchanged("_inputs.json", {**inputs, "config": "v2"}, [])
    assert not run.unchanged("_inputs.json", inputs, ["out.parquet"])
    run.put("out.parquet", b"1")
    assert run.unchanged("_inputs.json", inputs, ["out.parquet"])


def test_content_addressed_writes_upload_once(store: LakeFSStore):
    run = _run(store)
    key = layout.frame_key("ab" * 32, "PNG")
    assert key == f"frames/ab/{'ab' * 32}.png"
    assert run.put_content_addressed(key, b"img", "image/png")
    assert not run.put_content_addressed(key, b"img", "image/png")
    assert run.skipped == 1
    items = [(layout.frame_key(f"{i:064x}", "jpg"), b"%d" % i, "image/jpeg") for i in range(20)]
    assert run.put_content_addressed_many(items + [(key, b"img", "image/png")]) == 20


def test_quarantine_table_and_commit_with_metadata(store: LakeFSStore):
    run = _run(store)
    path = run.put_quarantine("things", "2026-01-02", [
        QuarantineRecord("file:///x.png", "image", Reason.EMPTY_FILE, "0 bytes")])
    assert path == layout.quarantine_key("things", "2026-01-02")
    assert run.rows(path)[0]["reason"] == "empty_file"
    commit = run.commit("things 2026-01-02", {"extra": "1"})
    assert commit.metadata["dagster_run_id"] == "r1" and commit.metadata["extra"] == "1"
    assert run.commit("nothing staged").id != commit.id  # an empty commit records the step
    pinned = RefView(store, commit.id)
    assert pinned.rows(path) == run.rows(path)
    assert run.last_change(path).id == commit.id
