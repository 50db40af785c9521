"""Sensors and cameras run at their rates; device clocks carry their ground-truth offsets."""

from __future__ import annotations

import numpy as np
import pytest

from dataops_cv.lib.synthetic.config import GPS_DEVICE, IMU_DEVICE, LIDAR_DEVICE
from dataops_cv.lib.synthetic.sensors import generate_sensor_records
from dataops_cv.lib.synthetic.timeline import clock_offsets
from tests.lib.synthetic.day import CONFIG, DATE, slot_frames


def _median_period_us(timestamps: list[int]) -> float:
    return float(np.median(np.diff(np.sort(np.asarray(timestamps)))))


def test_sensors_and_cameras_run_at_their_rates(day) -> None:
    seconds = CONFIG.frames_per_session / CONFIG.camera_hz
    for sess in generate_sensor_records(CONFIG, DATE):
        rows = sess.table.to_pylist()
        for sensor, device, hz in (("imu", IMU_DEVICE, 100), ("gps", GPS_DEVICE, 10),
                                   ("lidar", LIDAR_DEVICE, 20)):
            ts = [r["timestamp"] for r in rows if r["sensor"] == sensor]
            assert {r["device_id"] for r in rows if r["sensor"] == sensor} == {device}
            assert _median_period_us(ts) == pytest.approx(1e6 / hz, rel=0.02)
            assert abs(len(ts) - seconds * hz) <= 1
    for session in range(CONFIG.sessions_per_day):
        for camera in CONFIG.cameras:
            ts = [f.timestamp_us for f in slot_frames(day)
                  if f.session == session and f.device_id == camera]
            assert len(ts) == CONFIG.frames_per_session
            assert _median_period_us(ts) == pytest.approx(1e6 / 12, rel=0.02)


def test_device_clocks_carry_their_ground_truth_offsets(day) -> None:
    for session in range(CONFIG.sessions_per_day):
        offsets = clock_offsets(CONFIG, DATE, session)
        assert offsets[GPS_DEVICE] == 0
        assert all(abs(o) <= CONFIG.clock_offset_max_us for o in offsets.values())
        assert len({offsets[c] for c in CONFIG.cameras}) > 1  # not one shared clock
        for camera in CONFIG.cameras:
            skew = [f.timestamp_us - f.true_time_us for f in slot_frames(day)
                    if f.session == session and f.device_id == camera]
            # Jitter is 100 µs: the median of 20 readings sits well within 100 µs of the offset.
            assert abs(np.median(skew) - offsets[camera]) < 100
