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


def test_a_source_must_be_registered_and_a_single_source_repository_migrated(
        lakefs_server, tmp_path):
    """A partition of an unknown source fails naming the command that registers it; a
    repository still in the single-source layout fails naming the migration, and runs after
    it; a registered source is read from the registry at the run's base."""
    from dataops_cv.lib.acquisition.migrate import migrate_to_sources
    from dataops_cv.lib.acquisition.registry import SourceEntry, register_source
    from tests.conftest import new_repository
    from tests.defs.conftest import stage_resources

    lakefs = new_repository(lakefs_server)
    store = lakefs.store()
    resources = stage_resources(lakefs, tmp_path / "drops")
    unknown = materialize(resources, "raw_frames", partition="2026-03-04|vendor",
                          raise_on_error=False)
    (failure,) = unknown.result.get_step_failure_events()
    assert "source vendor is not registered" in failure.step_failure_data.error.message
    assert "dataops-cv sources add vendor URI" in failure.step_failure_data.error.message

    register_source(store, "main", SourceEntry("vendor", "synthetic://?seed=3"))
    vendor = materialize(resources, "raw_frames", partition="2026-03-04|vendor")
    assert {r["source"] for r in vendor.run.day_rows("raw_frames", "2026-03-04|vendor")} == {
        "vendor"}
    own = materialize(resources, "raw_frames", partition="2026-03-04|synthetic")
    assert not {r["sha256"] for r in own.run.day_rows("raw_frames", "2026-03-04|synthetic")} & {
        r["sha256"] for r in vendor.run.day_rows("raw_frames", "2026-03-04|vendor")}

    store.put_object("main", table_key("raw_frames", "2026-03-01"), store.get_object(
        vendor.run.branch, table_key("raw_frames", "2026-03-04|vendor")))
    store.commit("main", "a day in the single-source layout")
    legacy = materialize(resources, "raw_frames", raise_on_error=False)
    (failure,) = legacy.result.get_step_failure_events()
    assert "single-source layout" in failure.step_failure_data.error.message
    assert "dataops-cv sources migrate NAME" in failure.step_failure_data.error.message
    migrate_to_sources(store, "main", "labels", "old-rig")
    assert store.stat_object("main", table_key("raw_frames", "2026-03-01|old-rig"))
    assert materialize(resources, "raw_frames").result.success
