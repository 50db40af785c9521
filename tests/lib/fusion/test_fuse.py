"""The whole fusion: output schemas, what is reported, counts, a synthetic rig end to end and
empty inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from dataops_cv.lib.acquisition.sensor_logs.reader import read_sensor_log
from dataops_cv.lib.acquisition.sensor_logs.writer import write_sensor_log
from dataops_cv.lib.fusion.config import CLOCK_SCHEMA, FUSED_SCHEMA, UNMATCHED_SCHEMA
from dataops_cv.lib.fusion.fuse import fuse
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day
from dataops_cv.lib.synthetic.sensors import sensor_session
from tests.lib.fusion.inputs import IMU_ONLY, MS, T0, frame_table, records, rows_of, sensor_table


def test_schemas_and_nearest_within_tolerance_with_the_rest_reported():
    imu_ms = np.concatenate([np.arange(100) * 10, [2015, 2030]])
    imu = records("imu", "imu0", T0 + imu_ms * MS, ax=np.arange(len(imu_ms)))
    other = records("imu", "imu9", T0 + np.arange(3) * 10 * MS, session="s2", ax=0.0)
    frames = frame_table([T0 + 13 * MS, T0 + 500 * MS, T0 + 2000 * MS])
    result = fuse(frames, sensor_table(imu, other), IMU_ONLY)

    assert result.fused.schema == FUSED_SCHEMA
    assert result.unmatched.schema == UNMATCHED_SCHEMA
    assert result.clocks.schema == CLOCK_SCHEMA
    fused = result.fused.to_pylist()
    assert [(r["imu_device"], r["imu_dt_us"], r["ax"]) for r in fused] == [
        ("imu0", -3000, 1.0), ("imu0", 0, 50.0), (None, None, None)]
    assert [r["unmatched"] for r in fused] == ["", "", "imu"]
    assert json.loads(fused[0]["devices"]) == {"cam0": None, "imu0": "imu0-fw"}

    (far,) = rows_of(result.unmatched, kind="frame")
    assert far["id"] == fused[2]["sha256"] and far["reason"] == "no_imu_within_tolerance"
    assert "imu0 is 15 ms away (tolerance 10 ms)" in far["detail"] and far["sensor"] == "imu"
    # Only records no frame could use: those beyond the frames +- 10 ms, and another session's;
    # the 97 records merely not nearest to a frame are not defects.
    reported = rows_of(result.unmatched, kind="sensor_record")
    assert sorted((r["device_id"], r["timestamp_ns"], r["reason"]) for r in reported) == [
        ("imu0", T0, "outside_camera_span"), ("imu0", T0 + 2015 * MS, "outside_camera_span"),
        ("imu0", T0 + 2030 * MS, "outside_camera_span")] + [
        ("imu9", T0 + i * 10 * MS, "no_frames_in_session") for i in range(3)]
    assert reported[0]["id"] == f"s1.pq#imu0@{T0}"
    assert "before the session's first frame" in reported[0]["detail"]
    assert "5 ms after the session's last frame" in reported[1]["detail"]
    assert result.counts["frames_unmatched_imu"] == 1
    assert result.counts["sensor_records_unmatched"] == 6


def test_other_kinds_are_counted_not_matched():
    sensors = sensor_table(records("imu", "imu0", [T0], ax=1.0),
                           records("radar", "radar0", [T0, T0 + 500 * MS]))
    frames = frame_table([T0, T0 + 40 * MS])
    result = fuse(frames, sensors, IMU_ONLY)
    assert result.counts["sensor_records_ignored"] == 2
    assert not rows_of(result.unmatched, sensor="radar")
    (radar,) = rows_of(result.clocks, device_id="radar0")
    assert radar["note"] == "no motion signal" and radar["records"] == 2


def test_synthetic_rig(tmp_path: Path):
    # Tiny images: frame times do not depend on the size, and rendering stays ~0.1 s.
    config = SceneConfig(sessions_per_day=2, frames_per_session=24,
                         defects=DefectConfig.none(), width=32, height=24)
    date = "2024-06-01"
    frames = list(generate_day(config, date))
    frame_tab = pa.table({
        "sha256": [f.sha256 for f in frames],
        "object_key": [f"frames/{f.sha256}.png" for f in frames],
        "rel_path": [f.path for f in frames],
        "device_id": [f.device_id for f in frames],
        "capture_time": pa.array([f.timestamp_us for f in frames], pa.timestamp("us", "UTC")),
    })
    parts = []
    for s in range(config.sessions_per_day):
        sess = sensor_session(config, date, s)
        table, bad = read_sensor_log(write_sensor_log(sess.table, tmp_path / "log.parquet"))
        assert not bad
        keys = [None if f is None else f"sensors/ab/{hashlib.sha256(f.encode()).hexdigest()}.npy"
                for f in table["file"].to_pylist()]
        parts.append(table.append_column("log_path", pa.array([f"{s}.parquet"] * len(keys)))
                     .append_column("object_key", pa.array(keys, pa.string())))
        (tmp_path / "log.parquet").unlink()
    sensors = pa.concat_tables(parts)
    result = fuse(frame_tab, sensors)
    fused = result.fused.to_pylist()
    assert len(fused) == len(frames) == 144

    # Oracle: sessions are 2 s, too short for a motion estimate, so times stay device times.
    tol = {"imu": 10, "gps": 60, "lidar": 30, "pose": 30}
    truth = {f.sha256: f for f in frames}
    log = sensors.to_pylist()
    matched_all = 0
    for row in fused:
        frame = truth[row["sha256"]]
        assert (row["session_id"], row["camera"]) == (frame.session_id, frame.device_id)
        for kind, prefix in (("imu", "imu"), ("gps", "gps"), ("lidar", "lidar"),
                             ("lidar", "pose")):
            dts = [r["timestamp_ns"] - row["frame_time_ns"] for r in log
                   if r["sensor"] == kind and r["session_id"] == frame.session_id]
            nearest = min(dts, key=lambda d: (abs(d), d))
            if abs(nearest) <= tol[prefix] * MS:
                assert row[f"{prefix}_dt_us"] == round(nearest / 1000), (prefix, row["rel_path"])
            else:
                assert row[f"{prefix}_dt_us"] is None and prefix in row["unmatched"].split(",")
        matched_all += row["unmatched"] == ""
        if row["gps_method"] == "interpolated":
            lat, lon, _ = frame.gps  # truth at the frame's true instant; offsets <= 2 ms
            assert abs(row["lat"] - lat) < 1e-6 and abs(row["lon"] - lon) < 1.5e-6
        if row["gps_device"]:
            assert row["geo_cell"] and len(row["geo_cell"]) == 7
    # Edge frames may precede the first GPS fix by more than 60 ms (free-running phases); the
    # rest is fully fused.
    assert matched_all >= len(fused) - 6
    assert result.counts["frames_fused"] == matched_all

    rates = {"imu": 100.0, "gps": 10.0, "lidar": 20.0, "camera": 12.0}
    clocks = result.clocks.to_pylist()
    assert len(clocks) == 2 * 6
    for row in clocks:
        assert row["rate_hz"] == pytest.approx(rates[row["sensor"]], rel=0.01)
        assert row["jitter_us"] < (1 if row["sensor"] == "gps" else 200)
        assert row["offset_applied"] is (row["sensor"] == "gps")


@pytest.mark.parametrize("n_frames, n_records", [(0, 0), (2, 0), (0, 3)])
def test_empty_inputs_give_empty_tables_not_errors(n_frames, n_records):
    frames = frame_table([T0 + i * 83 * MS for i in range(n_frames)])
    sensors = sensor_table(records("imu", "imu0", T0 + np.arange(n_records) * 10 * MS, ax=1.0))
    result = fuse(frames, sensors)
    assert result.fused.num_rows == n_frames
    assert result.fused["unmatched"].to_pylist() == ["gps,imu,lidar"] * n_frames
    assert len(rows_of(result.unmatched, kind="frame")) == 3 * n_frames
    assert len(rows_of(result.unmatched, reason="no_frames_in_session")) == n_records
    assert result.clocks.num_rows == (n_frames > 0) + (n_records > 0)
