"""Clock offsets: estimated from motion and applied, refused on straight or short drives, known
offsets from the rig."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dataops_cv.lib.fusion.config import FusionConfig
from dataops_cv.lib.fusion.fuse import fuse
from tests.lib.fusion.inputs import IMU_ONLY, MS, T0, frame_table, records, rows_of, sensor_table


def _yaw(t):
    return (-0.2 * 7 / (2 * np.pi) * np.cos(2 * np.pi * t / 7)
            - 0.1 * 3.1 / (2 * np.pi) * np.cos(2 * np.pi * t / 3.1 + 1))


def _yaw_rate(t):
    return 0.2 * np.sin(2 * np.pi * t / 7) + 0.1 * np.sin(2 * np.pi * t / 3.1 + 1)


def turning_drive(imu_offset_us: int, straight: bool = False, noise_deg: float = 0.0
                  ) -> pa.Table:
    """60 s of GPS heading (10 Hz, reference clock) and IMU gz (100 Hz, offset clock) of one
    analytic trajectory."""
    rng = np.random.default_rng(0)
    tg, ti = np.arange(0, 60, 0.1), np.arange(0, 60, 0.01)
    yaw = np.zeros_like(tg) if straight else _yaw(tg)
    heading = (90 - np.degrees(yaw)) % 360 + rng.normal(0, noise_deg, len(tg))
    gz = (np.zeros_like(ti) if straight else _yaw_rate(ti)) + rng.normal(0, 0.001, len(ti))
    return sensor_table(
        records("gps", "gps0", T0 + np.rint(tg * 1e9).astype(np.int64), lat=48.0, lon=11.0,
                heading=heading),
        records("imu", "imu0", T0 + np.rint(ti * 1e9).astype(np.int64) + imu_offset_us * 1000,
                gz=gz))


@pytest.mark.parametrize("offset_us", [40_000, -23_000])
def test_clock_offset_recovered_from_motion_and_applied(offset_us):
    frame_s = np.arange(10, 50, 0.25)
    frames = frame_table(list(T0 + np.rint(frame_s * 1e9).astype(np.int64)))
    result = fuse(frames, turning_drive(offset_us))
    (imu,) = rows_of(result.clocks, device_id="imu0")
    assert imu["offset_method"] == "motion_xcorr" and imu["offset_applied"]
    assert imu["offset_us"] == pytest.approx(offset_us, abs=1000)
    assert imu["offset_confidence"] >= 0.95
    (gps,) = rows_of(result.clocks, device_id="gps0")
    assert (gps["offset_us"], gps["offset_method"], gps["offset_applied"]) == (0.0, "reference",
                                                                               True)
    (cam,) = rows_of(result.clocks, device_id="cam0")
    assert cam["offset_us"] is None and cam["note"] == "no motion signal"
    # Applied, the IMU reading beside each frame is the yaw rate at the frame's instant.
    gz = np.array(result.fused["gz"].to_pylist())
    assert np.max(np.abs(gz - _yaw_rate(frame_s))) < 0.006
    raw = fuse(frames, turning_drive(offset_us), FusionConfig(estimate_offsets=False))
    raw_gz = np.array(raw.fused["gz"].to_pylist())
    assert np.max(np.abs(raw_gz - _yaw_rate(frame_s))) > 0.008


@pytest.mark.parametrize("noise_deg", [0.0, 0.3])
def test_straight_drive_gives_no_applied_offset(noise_deg):
    frames = frame_table([T0 + 30_000 * MS])
    result = fuse(frames, turning_drive(40_000, straight=True, noise_deg=noise_deg))
    (imu,) = rows_of(result.clocks, device_id="imu0")
    assert not imu["offset_applied"] and imu["note"]
    assert imu["offset_us"] is None or imu["offset_confidence"] < 0.8
    assert result.fused["camera_offset_us"].to_pylist() == [0]


def test_short_session_is_not_estimated():
    sensors = turning_drive(40_000).filter(pc.less(pc.field("timestamp_ns"), T0 + 3000 * MS))
    result = fuse(frame_table([T0 + 1000 * MS]), sensors)
    (imu,) = rows_of(result.clocks, device_id="imu0")
    assert imu["offset_us"] is None and imu["note"].startswith("session shorter than 5 s")


def test_known_offsets_win_and_move_frames_to_the_reference_clock():
    sensors = sensor_table(records("imu", "imu0", T0 + np.arange(100) * 10 * MS + 40 * MS,
                                   ax=np.arange(100)))
    frames = frame_table([T0 + 500 * MS + 3 * MS])  # camera clock 3 ms ahead
    config = FusionConfig(tolerance_ms={"imu": 10.0},
                          known_offsets_us={"imu0": 40_000, "cam0": 3_000})
    result = fuse(frames, sensors, config)
    (row,) = result.fused.to_pylist()
    assert (row["camera_offset_us"], row["frame_time_ns"], row["frame_time_ref_ns"]) == (
        3000, T0 + 503 * MS, T0 + 500 * MS)
    assert (row["ax"], row["imu_dt_us"]) == (50.0, 0)
    clocks = {r["device_id"]: r for r in result.clocks.to_pylist()}
    assert (clocks["imu0"]["offset_method"], clocks["imu0"]["offset_us"]) == ("known", 40000.0)
    assert clocks["cam0"]["offset_method"] == "known" and clocks["cam0"]["offset_applied"]
    without = fuse(frames, sensors, IMU_ONLY).fused.to_pylist()[0]
    assert without["ax"] == 46.0
