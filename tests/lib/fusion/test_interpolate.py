"""Interpolation of the matched records: GPS linear and on the circle, the pose by slerp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataops_cv.lib.fusion.config import FusionConfig
from dataops_cv.lib.fusion.fuse import fuse
from dataops_cv.lib.fusion.geohash import geohash
from tests.lib.fusion.inputs import MS, T0, frame_table, records, sensor_table


@pytest.mark.parametrize("frame_ms, lat, heading, dt_us", [
    (25, 10.00025, 359.5, -25_000), (50, 10.0005, 0.0, -50_000), (75, 10.00075, 0.5, 25_000)])
def test_gps_interpolation_linear_and_circular(frame_ms, lat, heading, dt_us):
    sensors = sensor_table(records("gps", "gps0", [T0, T0 + 100 * MS], lat=[10.0, 10.001],
                                   lon=[20.0, 20.002], alt=[100.0, 110.0], speed=[5.0, 7.0],
                                   heading=[359.0, 1.0]))
    config = FusionConfig(tolerance_ms={"gps": 60.0})
    (row,) = fuse(frame_table([T0 + frame_ms * MS]), sensors, config).fused.to_pylist()
    w = frame_ms / 100
    assert row["gps_method"] == "interpolated" and row["gps_dt_us"] == dt_us
    assert row["lat"] == pytest.approx(lat, abs=1e-12)
    assert row["lon"] == pytest.approx(20.0 + 0.002 * w, abs=1e-12)
    assert row["alt"] == pytest.approx(100 + 10 * w) and row["speed"] == pytest.approx(5 + 2 * w)
    assert min(abs(row["heading"] - heading), 360 - abs(row["heading"] - heading)) < 1e-9
    assert row["geo_cell"] == geohash(np.array([lat]), np.array([20.0 + 0.002 * w]), 7)[0]


@pytest.mark.parametrize("flip_sign", [False, True])
def test_pose_slerp_takes_the_short_arc(flip_sign):
    def quat(yaw_deg):
        half = math.radians(yaw_deg) / 2
        return [math.cos(half), 0.0, 0.0, math.sin(half)]

    qa, qb = quat(170), quat(-170)
    if flip_sign:  # q and -q are the same rotation
        qb = [-v for v in qb]
    sensors = sensor_table(records(
        "lidar", "lidar0", [T0, T0 + 50 * MS], pose_x=[0.0, 1.0], pose_y=[0.0, -2.0],
        pose_z=[0.0, 0.0], pose_qw=[qa[0], qb[0]], pose_qx=[0.0, 0.0], pose_qy=[0.0, 0.0],
        pose_qz=[qa[3], qb[3]]))
    config = FusionConfig(tolerance_ms={"lidar": 30.0})
    (row,) = fuse(frame_table([T0 + 25 * MS]), sensors, config).fused.to_pylist()
    assert row["pose_method"] == "interpolated" and row["pose_device"] == "lidar0"
    assert (row["pose_x"], row["pose_y"]) == pytest.approx((0.5, -1.0))
    yaw = math.degrees(2 * math.atan2(row["pose_qz"], row["pose_qw"]))
    assert abs(abs(yaw) - 180) < 1e-6 or abs(abs(yaw) - 540) < 1e-6  # through 180, not 0
    q = [row[c] for c in ("pose_qw", "pose_qx", "pose_qy", "pose_qz")]
    assert math.isclose(sum(v * v for v in q), 1.0)
    # At a quarter: yaw 175 (the short way), not 85.
    (row,) = fuse(frame_table([T0 + 12_500_000]), sensors, config).fused.to_pylist()
    yaw = math.degrees(2 * math.atan2(row["pose_qz"], row["pose_qw"])) % 360
    assert yaw == pytest.approx(175.0)
