"""The source registry on main and the one-command migration of a single-source repository,
against the real lakeFS."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataops_cv.lib.acquisition.migrate import migrate_to_sources
from dataops_cv.lib.acquisition.registry import (
    RegistryError,
    SourceEntry,
    register_source,
    registered_sources,
    unregister_source,
)
from dataops_cv.lib.lakefs.run_branch import RefView
from tests.conftest import new_repository


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _read(store, ref, path) -> list[dict]:
    return pq.read_table(io.BytesIO(store.get_object(ref, path))).to_pylist()


def test_sources_are_registered_on_main_through_a_merge(lakefs_server):
    store = new_repository(lakefs_server).store()
    entry = SourceEntry("aerial", "s3://landing/aerial", "voc")
    assert register_source(store, "main", entry)
    assert not register_source(store, "main", entry)  # as is: nothing to change
    with pytest.raises(RegistryError, match="registered as s3://landing/aerial"):
        register_source(store, "main", SourceEntry("aerial", "/elsewhere"))
    assert register_source(store, "main", SourceEntry("aerial", "/elsewhere"), replace=True)
    head = store.get_commit("main")
    assert len(head.parents) == 2 and "register aerial" in head.message  # a merge, not a write
    assert registered_sources(RefView(store, "main")) == {
        "aerial": SourceEntry("aerial", "/elsewhere", "auto")}
    assert unregister_source(store, "main", "aerial").uri == "/elsewhere"
    with pytest.raises(RegistryError, match="not registered"):
        unregister_source(store, "main", "aerial")
    with pytest.raises(RegistryError, match="lowercase"):
        SourceEntry("Rig A", "/x")
    with pytest.raises(RegistryError, match="format"):
        SourceEntry("rig", "/x", "tfrecord")
    assert not [b for b, _ in store.list_branches("sources-")]  # no branch left behind


def test_migration_moves_a_single_source_repository_under_one_source(lakefs_server):
    store = new_repository(lakefs_server).store()
    day = "2026-01-05"
    frames = pa.table({"sha256": ["ab" * 32], "rel_path": ["cam/0.jpg"], "size": [3]})
    store.put_object("main", f"tables/raw_frames/date={day}/part-00000.parquet",
                     _parquet(frames))
    store.put_object("main", f"tables/raw_frames/date={day}/_inputs.json", b"{}")
    store.put_object("main", f"validation/raw_frames/date={day}/contract.json",
                     json.dumps({"success": True}).encode())
    store.put_object("main", f"quarantine/raw_frames/date={day}/_quarantine.parquet",
                     _parquet(pa.table({"reason": ["empty_file"]})))
    store.put_object("main", "frames/ab/" + "ab" * 32 + ".jpg", b"jpg")
    store.commit("main", "a day written before sources were a dimension")
    store.create_branch("labels", source="main")
    store.put_object("labels", f"drops/date={day}/vendor/coco.json", b"{}")
    store.put_object("labels", f"tables/label_snapshot/date={day}/part-00000.parquet",
                     _parquet(pa.table({"partition": [day], "class_name": ["car"]})))
    store.put_object("labels", "tables/label_snapshot/_tasks.parquet",
                     _parquet(pa.table({"task_id": [1], "partition": [day]})))
    store.commit("labels", "labels of that day")

    report = migrate_to_sources(store, "main", "labels", "rig-a")
    assert report["days"] == [day] and report["objects"] == 7
    main = {o.path for o in store.list_objects("main")}
    assert main == {f"tables/raw_frames/date={day}/source=rig-a/part-00000.parquet",
                    f"tables/raw_frames/date={day}/source=rig-a/_inputs.json",
                    f"validation/raw_frames/date={day}/source=rig-a/contract.json",
                    f"quarantine/raw_frames/date={day}/source=rig-a/_quarantine.parquet",
                    "frames/ab/" + "ab" * 32 + ".jpg"}  # content-addressed bytes stay
    (row,) = _read(store, "main", f"tables/raw_frames/date={day}/source=rig-a/part-00000.parquet")
    assert row["source"] == "rig-a" and row["rel_path"] == "cam/0.jpg"
    (label,) = _read(store, "labels",
                     f"tables/label_snapshot/date={day}/source=rig-a/part-00000.parquet")
    assert label["partition"] == f"{day}|rig-a"
    assert _read(store, "labels", "tables/label_snapshot/_tasks.parquet")[0]["partition"] == \
        f"{day}|rig-a"
    assert store.stat_object("labels", f"drops/date={day}/source=rig-a/vendor/coco.json")
    assert len(store.get_commit("main").parents) == 2

    again = migrate_to_sources(store, "main", "labels", "rig-a")
    assert again["objects"] == 0 and again["main_after"] == report["main_after"]
