"""Acquisition assets, one at a time, on the published day: what each writes on its run branch."""

from __future__ import annotations

from dataops_cv.lib.lakefs.layout import quarantine_key, side_key, table_key
from tests.defs.conftest import DAY, FRAMES_PER_CAMERA, materialize

FRAMES = 2 * FRAMES_PER_CAMERA


def test_raw_frames_rerun_on_an_unchanged_drop_reads_and_uploads_nothing(published_day):
    done = materialize(published_day.resources, "raw_frames")
    meta = done.metadata("raw_frames")
    assert meta["count_ingested"] == FRAMES and meta["count_quarantined"] == 0
    assert meta["bytes_read"] == 0  # every file's size and fingerprint matched the table's
    assert done.check("raw_frames_resolution").passed
    assert done.check("raw_frames_contract").passed
    rows = done.run.day_rows("raw_frames", DAY)
    assert len(rows) == FRAMES and all(done.run.exists(r["object_key"]) for r in rows)
    # Same rows, same bytes: the day's tables are unchanged on the run branch.
    store = published_day.store
    for path in (table_key("raw_frames", DAY), quarantine_key("raw_frames", DAY)):
        assert done.run.stat(path).checksum == store.stat_object(published_day.main,
                                                                 path).checksum
    commit = store.get_commit(meta["lakefs_commit"])
    assert commit.metadata["dagster_asset_key"] == "raw_frames"
    assert commit.metadata["dagster_partition_key"] == DAY
    assert commit.metadata["dagster_run_id"] == done.result.run_id
    assert "preview" in meta and meta["quality_brightness_mean"] > 0


def test_imported_annotations_are_keyed_by_the_days_frames(published_day):
    done = materialize(published_day.resources, "imported_annotations")
    rows = done.run.day_rows("imported_annotations", DAY)
    frames = {f["sha256"] for f in done.run.day_rows("raw_frames", DAY)}
    assert rows and {r["image_sha256"] for r in rows} <= frames
    assert all(r["x_min"] < r["x_max"] and r["y_min"] < r["y_max"] for r in rows)
    meta = done.metadata("imported_annotations")
    assert meta["count_annotations"] == len(rows) and meta["format"] == "coco"
    assert done.check("imported_annotations_contract").passed


def test_sensor_logs_normalise_every_sensor_and_keep_the_log_manifest(published_day):
    done = materialize(published_day.resources, "sensor_logs")
    meta = done.metadata("sensor_logs")
    assert set(meta["rows_per_sensor"]) >= {"imu", "gps", "lidar"}
    table = done.run.table(table_key("sensor_logs", DAY))
    assert table.num_rows == sum(meta["rows_per_sensor"].values())
    assert done.run.rows(side_key("sensor_logs", DAY, "_logs.parquet"))
    blobs = [k for k in table["object_key"].to_pylist() if k]
    assert blobs and all(k.startswith("sensors/") for k in blobs)
    assert done.check("sensor_logs_contract").passed
