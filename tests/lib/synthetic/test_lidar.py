"""LiDAR sweeps are point clouds of the street, referenced by the log and regenerated alone."""

from __future__ import annotations

import io

import numpy as np

from dataops_cv.lib.synthetic.lidar import lidar_sweep
from dataops_cv.lib.synthetic.sensors import generate_sensor_records
from tests.lib.synthetic.day import CONFIG, DATE


def test_lidar_sweeps_are_point_clouds_of_the_street() -> None:
    sess = next(generate_sensor_records(CONFIG, DATE))
    files = [name for name, _ in sess.sweeps()]
    assert files == [f for f in sess.table.column("file").to_pylist() if f]
    name, data = next(sess.sweeps())
    points = np.load(io.BytesIO(data), allow_pickle=False)
    assert points.dtype == np.float32 and points.shape == (CONFIG.lidar_points, 4)
    assert np.array_equal(points, lidar_sweep(CONFIG, DATE, 0, 0))
    ground = np.abs(points[:, 2] + 1.8) < 0.1
    assert ground.mean() > 0.3  # a downward-looking majority of beams hits the road
    assert (points[:, 3] >= 0).all() and (points[:, 3] <= 1).all()
    assert np.hypot(points[:, 0], points[:, 1]).max() < 101
