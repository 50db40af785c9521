"""Sensor logs follow the trajectory: the GPS moves smoothly and the IMU feels gravity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataops_cv.lib.synthetic.sensors import generate_sensor_records
from tests.lib.synthetic.day import CONFIG, DATE, slot_frames


def test_gps_moves_smoothly_and_the_imu_feels_gravity(day) -> None:
    front = [f for f in slot_frames(day) if f.session == 0 and f.device_id == "cam_front"]
    for a, b in zip(front, front[1:], strict=False):
        north = math.radians(b.gps[0] - a.gps[0]) * 6_378_137
        east = math.radians(b.gps[1] - a.gps[1]) * 6_378_137 * math.cos(math.radians(a.gps[0]))
        step = math.hypot(north, east)
        assert 0.2 < step < 2.0  # 6-14 m/s for 1/12 s
    table = next(generate_sensor_records(CONFIG, DATE)).table.to_pylist()
    az = [r["az"] for r in table if r["sensor"] == "imu"]
    assert np.mean(az) == pytest.approx(9.81, abs=0.3)
    assert all(4 < r["speed"] < 17 for r in table if r["sensor"] == "gps")
