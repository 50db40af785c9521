"""Matching: nearest record within tolerance, ties, jitter, gaps, sessions and their fallback."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dataops_cv.lib.fusion.config import FusionConfig
from dataops_cv.lib.fusion.fuse import fuse
from tests.lib.fusion.inputs import IMU_ONLY, MS, T0, frame_table, records, rows_of, sensor_table


@pytest.mark.parametrize("dt_us, matched", [(10_000, True), (-10_000, True),
                                            (10_001, False), (-10_001, False)])
def test_tolerance_boundary_is_inclusive(dt_us, matched):
    sensors = sensor_table(records("imu", "imu0", [T0 + 1000 * MS], ax=1.0))
    result = fuse(frame_table([T0 + 1000 * MS + dt_us * 1000]), sensors, IMU_ONLY)
    (row,) = result.fused.to_pylist()
    assert (row["imu_dt_us"] == -dt_us) is matched
    assert (row["unmatched"] == "") is matched


def test_tie_goes_to_the_earlier_record():
    sensors = sensor_table(records("imu", "imu0", [T0, T0 + 20 * MS], ax=[1, 2]))
    (row,) = fuse(frame_table([T0 + 10 * MS]), sensors, IMU_ONLY).fused.to_pylist()
    assert (row["ax"], row["imu_dt_us"]) == (1.0, -10_000)


def test_jitter_still_picks_the_record_nearest_in_true_time():
    rng = np.random.default_rng(7)
    n = 600
    imu_t = T0 + np.arange(n) * 10 * MS + rng.integers(-100_000, 100_001, n)
    true_frame = np.arange(70) * 83_333_333 + 5 * MS
    frame_t = T0 + true_frame + rng.integers(-100_000, 100_001, len(true_frame))
    sensors = sensor_table(records("imu", "imu0", imu_t, ax=np.arange(n)))
    fused = fuse(frame_table(list(frame_t)), sensors, IMU_ONLY).fused
    got = np.array(fused["ax"].to_pylist())
    nominal = true_frame / (10 * MS)
    clear = np.abs(nominal - np.floor(nominal) - 0.5) * 10 * MS > 250_000  # not near a midpoint
    assert clear.sum() > 40
    np.testing.assert_array_equal(got[clear], np.rint(nominal[clear]))
    assert np.all(np.abs(np.array(fused["imu_dt_us"].to_pylist())) <= 5_300)


def test_gap_is_reported_and_never_bridged():
    lidar_t = np.array([t for t in range(0, 5000, 50) if not 2000 <= t < 3000]) * MS + T0
    gps_t = np.array([t for t in range(0, 5000, 100) if not 2000 <= t < 3000]) * MS + T0
    sensors = sensor_table(
        records("lidar", "lidar0", lidar_t, pose_x=np.arange(len(lidar_t)), pose_y=0.0,
                pose_z=0.0, pose_qw=1.0, pose_qx=0.0, pose_qy=0.0, pose_qz=0.0),
        records("gps", "gps0", gps_t, lat=48 + np.arange(len(gps_t)) * 1e-4, lon=11.0))
    frame_ns = np.rint(np.arange(0, 4900, 1000 / 12) * MS).astype(np.int64)
    frame_ms = frame_ns / MS
    frames = frame_table(list(T0 + frame_ns))
    config = FusionConfig(tolerance_ms={"gps": 60.0, "lidar": 30.0}, estimate_offsets=False)
    result = fuse(frames, sensors, config)
    fused = result.fused.to_pylist()

    for ms, row in zip(frame_ms, fused, strict=True):
        in_lidar_gap = bool(1950 + 30 < ms < 3000 - 30)
        assert (row["lidar_device"] is None) is in_lidar_gap, ms
        assert (row["pose_device"] is None) is in_lidar_gap, ms
        in_gps_gap = bool(1900 + 60 < ms < 3000 - 60)
        assert (row["gps_device"] is None) is in_gps_gap, ms
        bracketed = 0 <= ms <= 1900 or 3000 <= ms <= 4900
        if not in_gps_gap:
            # Beside the gap GPS is the nearest fix, never a blend across the missing second.
            assert row["gps_method"] == ("interpolated" if bracketed and ms % 100 else "nearest")
    gap_frames = [r for r, ms in zip(fused, frame_ms, strict=True) if 1900 < ms < 3000]
    assert {r["gps_method"] for r in gap_frames if r["gps_device"]} == {"nearest"}
    near_gap = [r for r in gap_frames if r["gps_device"]]
    assert near_gap and all(r["lat"] in (48 + 19e-4, 48 + 20e-4) for r in near_gap)
    reasons = {(r["sensor"], r["reason"]) for r in rows_of(result.unmatched, kind="frame")}
    assert reasons == {("lidar", "no_lidar_within_tolerance"), ("pose", "no_pose_within_tolerance"),
                       ("gps", "no_gps_within_tolerance")}
    clocks = {r["device_id"]: r for r in result.clocks.to_pylist()}
    assert clocks["lidar0"]["gaps"] == 1 and clocks["gps0"]["gaps"] == 1
    assert clocks["lidar0"]["rate_hz"] == pytest.approx(20.0)


def test_sessions_kept_apart_with_null_session_fallback():
    sensors = sensor_table(
        records("imu", "imu0", T0 + np.arange(10) * 10 * MS, session="s1", ax=1.0),
        records("imu", "imu0", T0 + np.arange(10) * 10 * MS, session="s2", ax=2.0),
        records("gps", "gps0", T0 + np.arange(2) * 100 * MS, session=None, lat=48.0, lon=11.0),
        records("gps", "gps1", T0 + np.arange(2) * 100 * MS, session="s2", lat=50.0, lon=11.0))
    frames = pa.concat_tables([frame_table([T0 + 50 * MS], session=s) for s in ("s1", "s2")])
    config = FusionConfig(tolerance_ms={"imu": 10.0, "gps": 60.0}, estimate_offsets=False)
    result = fuse(frames, sensors, config)
    by_session = {r["session_id"]: r for r in result.fused.to_pylist()}
    assert (by_session["s1"]["ax"], by_session["s1"]["gps_device"], by_session["s1"]["lat"]) \
        == (1.0, "gps0", 48.0)
    assert (by_session["s2"]["ax"], by_session["s2"]["gps_device"], by_session["s2"]["lat"]) \
        == (2.0, "gps1", 50.0)
    sessions = {(r["session_id"], r["device_id"]) for r in result.clocks.to_pylist()}
    assert sessions == {("s1", "imu0"), ("s2", "imu0"), (None, "gps0"), ("s2", "gps1"),
                        ("s1", "cam0"), ("s2", "cam0")}
