"""A session's sensor log: IMU, GPS and LiDAR readings along the trajectory, in the generic
sensor-log format (:mod:`dataops_cv.lib.acquisition.sensor_logs`).

Readings carry device-clock timestamps (see :mod:`.timeline`), noise and bias; values are
quantised to the sensor's resolution (16-bit IMU, 1 cm GPS), which is realistic and keeps stored
values independent of last-bit differences between platforms' maths libraries.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.acquisition.sensor_logs.format import UNIT_METADATA_KEY
from dataops_cv.lib.synthetic.config import GPS_DEVICE, IMU_DEVICE, LIDAR_DEVICE, SceneConfig
from dataops_cv.lib.synthetic.lidar import lidar_file, lidar_sweep_npy
from dataops_cv.lib.synthetic.seeds import np_rng
from dataops_cv.lib.synthetic.timeline import reading_times, session_id
from dataops_cv.lib.synthetic.trajectory import EARTH_RADIUS_M, Trajectory, trajectory

FIRMWARE = {IMU_DEVICE: "bmi088-2.4.1", GPS_DEVICE: "zed-f9p-1.32", LIDAR_DEVICE: "vls32-3.0.41"}

_SENSOR_VALUE_COLUMNS = ("ax", "ay", "az", "gx", "gy", "gz", "lat", "lon", "alt", "speed",
                         "heading", "pose_x", "pose_y", "pose_z", "pose_qw", "pose_qx", "pose_qy",
                         "pose_qz", "n_points")


@dataclass(frozen=True)
class SensorSession:
    """One session's sensor log in the generic format (see ``sensor_logs``) and its sweeps.

    ``table`` holds every IMU, GPS and LiDAR reading with ``timestamp`` in device-clock epoch µs
    (its schema metadata ``timestamp_unit`` says ``us``), grouped by sensor in time order. LiDAR
    rows name their sweep in ``file`` (relative to the log's folder); :meth:`sweeps` renders them on
    demand, so a session never holds all its point clouds.
    """

    config: SceneConfig
    date: str
    session: int
    session_id: str
    table: pa.Table

    def sweeps(self) -> Iterator[tuple[str, bytes]]:
        """(file as referenced by the log, ``.npy`` bytes) for every LiDAR sweep, in order."""
        lidar = self.table.filter(pc.equal(self.table["sensor"], "lidar"))
        for i, name in enumerate(lidar.column("file").to_pylist()):
            yield name, lidar_sweep_npy(self.config, self.date, self.session, i)


def sensor_session(config: SceneConfig, date: str, session: int) -> SensorSession:
    """The sensor log of one session (regenerated alone, like a frame).

    Raises:
        ValueError: ``session`` is not a session of the day.
    """
    if not 0 <= session < config.sessions_per_day:
        raise ValueError(f"session {session} is outside 0..{config.sessions_per_day - 1}")
    sid = session_id(date, session)
    traj = trajectory(config.seed, date, session)
    parts = [_imu_log(config, date, session, sid, traj), _gps_log(config, date, session, sid, traj),
             _lidar_log(config, date, session, sid, traj)]
    table = pa.concat_tables(parts).replace_schema_metadata({UNIT_METADATA_KEY: b"us"})
    return SensorSession(config, date, session, sid, table)


def generate_sensor_records(config: SceneConfig, date: str) -> Iterator[SensorSession]:
    """The day's sensor logs, one session at a time (bounded memory)."""
    for s in range(config.sessions_per_day):
        yield sensor_session(config, date, s)


def _block(sensor: str, device: str, sid: str, device_us: np.ndarray,
           values: dict[str, np.ndarray], files: list[str] | None = None) -> pa.Table:
    """One sensor's rows in the log's columns; value columns it does not measure are null."""
    n = len(device_us)
    cols: dict[str, pa.Array] = {
        "timestamp": pa.array(device_us, pa.int64()),
        "sensor": pa.array([sensor] * n, pa.string()),
        "device_id": pa.array([device] * n, pa.string()),
        "session_id": pa.array([sid] * n, pa.string()),
        "firmware": pa.array([FIRMWARE[device]] * n, pa.string()),
        "file": pa.array(files if files is not None else [None] * n, pa.string()),
    }
    for name in _SENSOR_VALUE_COLUMNS:
        cols[name] = pa.array(values[name], pa.float64()) if name in values \
            else pa.nulls(n, pa.float64())
    return pa.table(cols)


def _imu_log(config: SceneConfig, date: str, session: int, sid: str, traj: Trajectory
             ) -> pa.Table:
    t, _, dev = reading_times(config, date, session, IMU_DEVICE, config.imu_hz)
    st = traj.state(t)
    r = np_rng(config.seed, date, session, IMU_DEVICE, "noise")
    bias_a, bias_g = r.normal(0, 0.05, 3), r.normal(0, 0.002, 3)
    noise_a, noise_g = r.normal(0, 0.02, (3, len(t))), r.normal(0, 0.001, (3, len(t)))
    imu = {
        "ax": st["ax"] + bias_a[0] + noise_a[0], "ay": st["ay"] + bias_a[1] + noise_a[1],
        "az": st["az"] + bias_a[2] + noise_a[2], "gx": bias_g[0] + noise_g[0],
        "gy": bias_g[1] + noise_g[1], "gz": st["yaw_rate"] + bias_g[2] + noise_g[2],
    }
    return _block("imu", IMU_DEVICE, sid, dev, {
        k: np.round(v, 4 if k.startswith("a") else 5) for k, v in imu.items()})


def _gps_log(config: SceneConfig, date: str, session: int, sid: str, traj: Trajectory
             ) -> pa.Table:
    t, _, dev = reading_times(config, date, session, GPS_DEVICE, config.gps_hz)
    st = traj.state(t)
    r = np_rng(config.seed, date, session, GPS_DEVICE, "noise")
    pos_noise = r.normal(0, 0.03, (3, len(t)))
    speed_noise = r.normal(0, 0.02, len(t))
    lat_m = math.radians(1) * EARTH_RADIUS_M
    lon_m = lat_m * math.cos(math.radians(traj.lat0))
    return _block("gps", GPS_DEVICE, sid, dev, {
        "lat": np.round(st["lat"] + pos_noise[0] / lat_m, 7),
        "lon": np.round(st["lon"] + pos_noise[1] / lon_m, 7),
        "alt": np.round(st["alt"] + pos_noise[2], 3),
        "speed": np.round(st["speed"] + speed_noise, 3),
        "heading": np.round(np.degrees(np.pi / 2 - st["yaw_enu"]) % 360.0, 3),
    })


def _lidar_log(config: SceneConfig, date: str, session: int, sid: str, traj: Trajectory
               ) -> pa.Table:
    """The LiDAR's pose per sweep; the points live in the sweep files the rows name."""
    t, _, dev = reading_times(config, date, session, LIDAR_DEVICE, config.lidar_hz)
    st = traj.state(t)
    yaw = st["yaw_enu"]
    return _block("lidar", LIDAR_DEVICE, sid, dev, {
        "pose_x": np.round(st["east"], 3), "pose_y": np.round(st["north"], 3),
        "pose_z": np.round(st["up"], 3), "pose_qw": np.round(np.cos(yaw / 2), 6),
        "pose_qx": np.zeros(len(t)), "pose_qy": np.zeros(len(t)),
        "pose_qz": np.round(np.sin(yaw / 2), 6),
        "n_points": np.full(len(t), float(config.lidar_points)),
    }, files=[lidar_file(sid, int(d)) for d in dev])
