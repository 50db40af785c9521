"""Incremental ingest of a real folder: what is read, stored, quarantined and carried over."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from dataops_cv.lib.acquisition.ingest import ingest_images
from dataops_cv.lib.acquisition.sources import LocalSource, open_source, partition_source
from dataops_cv.lib.core.quarantine import Reason


def png(color: tuple[int, int, int], size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class Store:
    """A dict standing in for the run branch: only the ingest logic is under test here (the
    lakeFS-backed path is covered by the integration tests)."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put(self, key: str, data: bytes, content_type: str) -> bool:
        if key in self.objects:
            return False
        self.objects[key] = data
        self.puts += 1
        return True


def make_drop(root: Path) -> None:
    (root / "cam0").mkdir(parents=True)
    for i in range(5):
        (root / "cam0" / f"{i}.png").write_bytes(png((i * 40, 10, 10)))
    (root / "cam0" / "copy-of-0.png").write_bytes(png((0, 10, 10)))  # exact duplicate
    (root / "cam0" / "empty.png").write_bytes(b"")
    (root / "cam0" / "fake.jpg").write_bytes(b"<html>not an image</html>")
    (root / "notes.txt").write_text("ignored: not an image")


def test_first_run_stores_good_files_once_and_quarantines_bad_ones(tmp_path: Path):
    make_drop(tmp_path)
    store = Store()
    result = ingest_images(LocalSource(tmp_path), "2026-01-01", [], [], store.put)
    c = result.counts
    assert (c["listed"], c["ingested"], c["quarantined"], c["duplicates"]) == (8, 6, 2, 1)
    assert c["uploaded"] == 5  # distinct frames; the duplicate is stored once
    assert store.puts == 5 + 1  # + the kept bytes of the non-empty bad file
    reasons = {Path(q.source_uri).name: q.reason for q in result.quarantine}
    assert reasons == {"empty.png": Reason.EMPTY_FILE, "fake.jpg": Reason.NOT_AN_IMAGE}
    fake = next(q for q in result.quarantine if q.reason == Reason.NOT_AN_IMAGE)
    assert store.objects[fake.object_key] == b"<html>not an image</html>"  # nothing lost
    dup = next(r for r in result.rows if r["rel_path"] == "cam0/copy-of-0.png")
    assert dup["duplicate_of"] == "cam0/0.png"
    assert c["ignored_non_images"] == 1


def test_rerun_reads_only_new_files_and_keeps_everything_else(tmp_path: Path):
    make_drop(tmp_path)
    store = Store()
    first = ingest_images(LocalSource(tmp_path), "2026-01-05|rig", [], [], store.put)
    (tmp_path / "cam0" / "new.png").write_bytes(png((1, 2, 3)))
    os.remove(tmp_path / "cam0" / "4.png")
    second = ingest_images(LocalSource(tmp_path), "2026-01-05|rig", first.rows,
                           [q.row() for q in first.quarantine], store.put)
    c = second.counts
    assert c["read"] == 1 and c["uploaded"] == 1 and c["unchanged"] == 7
    assert c["missing_from_source"] == 1
    assert {r["rel_path"] for r in second.rows} >= {"cam0/4.png", "cam0/new.png"}
    assert c["quarantined"] == 2


def test_changed_bytes_under_the_same_name_are_a_conflict(tmp_path: Path):
    make_drop(tmp_path)
    store = Store()
    first = ingest_images(LocalSource(tmp_path), "2026-01-05|rig", [], [], store.put)
    target = tmp_path / "cam0" / "1.png"
    old_sha = next(r["sha256"] for r in first.rows if r["rel_path"] == "cam0/1.png")
    target.write_bytes(png((9, 9, 9), size=(40, 30)))
    second = ingest_images(LocalSource(tmp_path), "2026-01-05|rig", first.rows,
                           [q.row() for q in first.quarantine], store.put)
    conflict = [q for q in second.quarantine if q.reason == Reason.NAME_CONFLICT]
    assert len(conflict) == 1 and old_sha in conflict[0].detail
    assert next(r["sha256"] for r in second.rows if r["rel_path"] == "cam0/1.png") == old_sha
    assert store.objects[conflict[0].object_key] == target.read_bytes()


def test_dated_subfolder_is_the_partition_drop(tmp_path: Path):
    (tmp_path / "2026-01-02").mkdir()
    (tmp_path / "2026-01-02" / "a.png").write_bytes(png((1, 1, 1)))
    (tmp_path / "other.png").write_bytes(png((2, 2, 2)))
    src = open_source(str(tmp_path))
    assert [o.rel_path for o in partition_source(src, "2026-01-02").list()] == ["a.png"]
    assert len(list(partition_source(src, "2026-01-03").list())) == 2


def test_capture_time_and_device_come_from_the_rig_layout(tmp_path: Path):
    cam = tmp_path / "20260301_s00" / "cam_left"
    cam.mkdir(parents=True)
    (cam / "1772352000138988.png").write_bytes(png((5, 5, 5)))
    (tmp_path / "loose.png").write_bytes(png((6, 6, 6)))
    rows = {r["rel_path"]: r for r in
            ingest_images(LocalSource(tmp_path), "2026-01-05|rig", [], [], Store().put).rows}
    rig = rows["20260301_s00/cam_left/1772352000138988.png"]
    assert rig["device_id"] == "cam_left"
    assert rig["capture_time"].isoformat() == "2026-03-01T08:00:00.138988+00:00"
    assert rows["loose.png"]["capture_time"] is None


def test_the_table_has_the_bytes_the_rows_as_dicts_would_give(tmp_path: Path):
    """Rows are held in slots and written column by column: same Parquet as from dicts."""
    from dataops_cv.lib.acquisition.ingest import FRAMES_SCHEMA
    from dataops_cv.lib.core.tables import table_to_parquet_bytes, to_parquet_bytes

    make_drop(tmp_path)
    result = ingest_images(LocalSource(tmp_path), "2026-01-01", [], [], Store().put,
                           source_name="rig")
    rows = result.rows
    assert [r["rel_path"] for r in rows] == sorted(r["rel_path"] for r in rows)
    assert {r["source"] for r in rows} == {"rig"}
    assert table_to_parquet_bytes(result.table) == to_parquet_bytes(rows, FRAMES_SCHEMA)


def test_rows_packed_into_arrow_batches_give_the_same_table(tmp_path: Path, monkeypatch):
    """A day is packed into Arrow a batch of rows at a time; the table does not depend on it."""
    from dataops_cv.lib.acquisition import ingest
    from dataops_cv.lib.core.tables import table_to_parquet_bytes

    make_drop(tmp_path)
    whole = ingest_images(LocalSource(tmp_path), "2026-01-01", [], [], Store().put, workers=1)
    monkeypatch.setattr(ingest, "_PACK_ROWS", 2)
    packed = ingest_images(LocalSource(tmp_path), "2026-01-01", [], [], Store().put, workers=3)
    assert table_to_parquet_bytes(packed.table) == table_to_parquet_bytes(whole.table)
    assert packed.counts["duplicates"] == whole.counts["duplicates"] == 1
    again = ingest_images(LocalSource(tmp_path), "2026-01-01", packed.rows, [], Store().put)
    assert table_to_parquet_bytes(again.table) == table_to_parquet_bytes(whole.table)
