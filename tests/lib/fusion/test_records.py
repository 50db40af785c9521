"""Sensor records: duplicate timestamps and out-of-order input."""

from __future__ import annotations

import numpy as np

from dataops_cv.lib.fusion.config import FusionConfig
from dataops_cv.lib.fusion.fuse import fuse
from tests.lib.fusion.inputs import IMU_ONLY, MS, T0, frame_table, records, rows_of, sensor_table


def test_duplicate_timestamp_is_reported_and_not_used():
    t = T0 + np.array([0, 10, 20, 20, 30]) * MS
    sensors = sensor_table(records("imu", "imu0", t, ax=[0, 1, 2, 999, 3]))
    result = fuse(frame_table([T0 + 20 * MS, T0 + 22 * MS]), sensors, IMU_ONLY)
    assert result.fused["ax"].to_pylist() == [2.0, 2.0]
    (dup,) = rows_of(result.unmatched, reason="duplicate_timestamp")
    assert dup["id"] == f"s1.pq#imu0@{T0 + 20 * MS}" and dup["kind"] == "sensor_record"
    (clock,) = rows_of(result.clocks, device_id="imu0")
    assert clock["duplicates"] == 1 and clock["records"] == 5
    assert result.counts["duplicates"] == 1


def test_out_of_order_input_fuses_like_sorted_input_and_is_counted():
    rng = np.random.default_rng(3)
    imu = records("imu", "imu0", T0 + np.arange(300) * 10 * MS, ax=rng.normal(size=300))
    gps = records("gps", "gps0", T0 + np.arange(30) * 100 * MS, lat=48 + rng.normal(size=30),
                  lon=11.0, heading=rng.uniform(0, 360, 30))
    frames = frame_table(list(T0 + np.arange(30) * 83 * MS + 7 * MS))
    rows = imu + gps
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    config = FusionConfig(tolerance_ms={"imu": 10.0, "gps": 60.0}, estimate_offsets=False)
    ordered = fuse(frames, sensor_table(rows), config)
    mixed = fuse(frames, sensor_table(shuffled), config)

    assert mixed.fused.equals(ordered.fused)
    assert mixed.unmatched.equals(ordered.unmatched)
    expected = {}
    for dev in ("imu0", "gps0"):
        ts = [r["timestamp_ns"] for r in shuffled if r["device_id"] == dev]
        expected[dev] = sum(b < a for a, b in zip(ts, ts[1:]))
    got = {r["device_id"]: r["out_of_order"] for r in mixed.clocks.to_pylist()
           if r["sensor"] != "camera"}
    assert got == expected and min(expected.values()) > 0
    assert mixed.counts["out_of_order"] == sum(expected.values())
    assert ordered.counts["out_of_order"] == 0
