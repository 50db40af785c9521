"""Sensor logs of a synthetic drop: normalised, sweeps stored once, unchanged logs not re-read."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from dataops_cv.lib.acquisition.sensor_ingest import ingest_sensor_logs
from dataops_cv.lib.acquisition.sources import LocalSource
from dataops_cv.lib.core.quarantine import Reason
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.drops import write_drop
from tests.lib.acquisition.test_ingest import Store


def test_drop_logs_normalised_and_incremental(tmp_path: Path):
    config = SceneConfig(sessions_per_day=2, frames_per_session=6, cameras=("cam_front",),
                         defects=DefectConfig.none())
    manifest = write_drop(config, "2026-03-01", tmp_path / "drop")
    store = Store()
    first = ingest_sensor_logs(LocalSource(manifest.root), None, [], store.put)
    t = first.table
    assert set(t["sensor"].to_pylist()) >= {"imu", "gps", "lidar"}
    assert first.counts["sensor_logs"] == 2 and first.counts["sensor_rows_quarantined"] == 0
    lidar = t.filter(pc.equal(t["sensor"], "lidar"))
    assert lidar.num_rows == manifest.counts["lidar_sweeps"]
    assert all(k and k.startswith("sensors/") and k in store.objects
               for k in lidar["object_key"].to_pylist())
    ts = list(zip(t["device_id"].to_pylist(), t["timestamp_ns"].to_pylist(), strict=True))
    assert ts == sorted(ts)

    puts = store.puts
    second = ingest_sensor_logs(LocalSource(manifest.root), first.table, first.manifest,
                                store.put)
    assert second.counts["sensor_logs_read"] == 0 and second.counts["sensor_logs_unchanged"] == 2
    assert second.table.equals(first.table) and store.puts == puts


def test_missing_sweep_is_quarantined_with_its_row(tmp_path: Path):
    config = SceneConfig(sessions_per_day=1, frames_per_session=4, cameras=("cam_front",),
                         defects=DefectConfig.none())
    manifest = write_drop(config, "2026-03-01", tmp_path / "drop")
    victim = sorted((manifest.root / "sensors" / "lidar").iterdir())[0]
    victim.unlink()
    result = ingest_sensor_logs(LocalSource(manifest.root), None, [], Store().put)
    assert [q.reason for q in result.quarantine] == [Reason.MALFORMED_SENSOR_RECORD]
    assert victim.name in result.quarantine[0].detail
    assert result.table.num_rows > 0  # every other reading survives


def test_a_csv_that_is_no_sensor_log_is_quarantined_not_a_crash(tmp_path: Path):
    """Public datasets ship stray CSVs (deeva's toy data plants one); with no rows left, the
    log is set aside with its reason and the drop's sensor table is empty."""
    (tmp_path / "notes.csv").write_text("Doesn't matter\n")
    result = ingest_sensor_logs(LocalSource(tmp_path), None, [], Store().put)
    assert result.table.num_rows == 0 and result.counts["sensor_logs"] == 1
    assert [q.reason for q in result.quarantine] == [Reason.MALFORMED_SENSOR_RECORD]
    assert "missing required column(s)" in result.quarantine[0].detail


def test_sweeps_stored_in_threads_give_the_table_of_one_thread(tmp_path: Path, monkeypatch):
    from dataops_cv.lib.acquisition import sensor_ingest

    config = SceneConfig(sessions_per_day=2, frames_per_session=8, cameras=("cam_front",),
                         defects=DefectConfig.none())
    manifest = write_drop(config, "2026-03-01", tmp_path / "drop")
    (manifest.root / "sensors" / "lidar").iterdir().__next__().unlink()
    threaded_store = Store()
    threaded = ingest_sensor_logs(LocalSource(manifest.root), None, [], threaded_store.put)
    serial_store_blobs = sensor_ingest._store_blobs
    monkeypatch.setattr(sensor_ingest, "_store_blobs",
                        lambda *a: serial_store_blobs(*a, workers=1))
    serial_store = Store()
    serial = ingest_sensor_logs(LocalSource(manifest.root), None, [], serial_store.put)
    assert threaded.table.equals(serial.table) and threaded.quarantine == serial.quarantine
    assert threaded.counts == serial.counts and threaded_store.objects == serial_store.objects
    assert threaded.counts["sensor_blobs_uploaded"] > 1 and len(threaded.quarantine) == 1
