"""The LiDAR's point clouds: a 32-beam scanner ray-cast against the session's street.

The street (walls at its half width, a dozen posts) is sampled once per session; each sweep draws
its rays from a seed of (seed, date, session, sweep index), so any sweep regenerates alone.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np

from dataops_cv.lib.synthetic.config import LIDAR_DEVICE, SceneConfig
from dataops_cv.lib.synthetic.seeds import np_rng
from dataops_cv.lib.synthetic.timeline import reading_times
from dataops_cv.lib.synthetic.trajectory import trajectory

SENSOR_HEIGHT_M = 1.8
LIDAR_MAX_RANGE_M = 100.0
LIDAR_ELEVATIONS = np.radians(np.linspace(-25.0, 10.0, 32))


@dataclass(frozen=True)
class _LidarWorld:
    half_width: float
    posts: np.ndarray  # K×3: u, w, radius (street frame, m)


@functools.lru_cache(maxsize=64)
def _lidar_world(seed: int, date: str, session: int, length_m: float) -> _LidarWorld:
    traj = trajectory(seed, date, session)
    r = np_rng(seed, date, session, LIDAR_DEVICE, "world")
    k = 12
    u = r.uniform(-20.0, length_m + 60.0, k)
    side = np.where(r.random(k) < 0.5, -1.0, 1.0)
    w = side * r.uniform(2.5, traj.half_width - 1.0, k)
    return _LidarWorld(traj.half_width, np.stack([u, w, r.uniform(0.3, 1.5, k)], axis=1))


def lidar_file(session_id: str, device_us: int) -> str:
    """Where a sweep is stored, relative to the sensor log's folder."""
    return f"lidar/{session_id}_{LIDAR_DEVICE}_{device_us}.npy"


def lidar_sweep(config: SceneConfig, date: str, session: int, index: int) -> np.ndarray:
    """Point cloud of one sweep: N×4 float32 (x forward, y left, z up in m; intensity 0..1).

    Rays of a 32-beam scanner at 1.8 m hit the ground, the street's walls or posts; x, y, z are
    quantised to 1 mm and intensity to 1/255.

    Raises:
        ValueError: the session has no sweep ``index``.
    """
    times, _, _ = reading_times(config, date, session, LIDAR_DEVICE, config.lidar_hz)
    if not 0 <= index < len(times):
        raise ValueError(f"sweep {index} is outside 0..{len(times) - 1}")
    traj = trajectory(config.seed, date, session)
    st = traj.state(np.array([times[index]]))
    u_e, w_e, psi = float(st["u"][0]), float(st["w"][0]), float(st["psi"][0])
    world = _lidar_world(config.seed, date, session,
                         round(traj.v0 * config.session_seconds, 1))
    r = np_rng(config.seed, date, session, LIDAR_DEVICE, index)
    m = 3 * config.lidar_points
    azimuth = r.uniform(0.0, 2 * np.pi, m)
    elevation = LIDAR_ELEVATIONS[r.integers(0, len(LIDAR_ELEVATIONS), m)]
    range_noise = r.normal(0.0, 0.02, m)
    intensity_noise = r.normal(0.0, 0.02, m)
    surface, distance = _first_hits(world, u_e, w_e, psi + azimuth, elevation)
    keep = np.flatnonzero(distance < LIDAR_MAX_RANGE_M)[: config.lidar_points]
    d = distance[keep] + range_noise[keep]
    az, el = azimuth[keep], elevation[keep]
    reflectivity = np.array([0.15, 0.4, 0.7])[surface[keep]]
    intensity = np.clip(reflectivity * (1.0 - d / (2 * LIDAR_MAX_RANGE_M))
                        + intensity_noise[keep], 0.0, 1.0)
    points = np.stack([d * np.cos(az), d * np.sin(az), d * np.tan(el),
                       np.round(intensity * 255) / 255], axis=1)
    points[:, :3] = np.round(points[:, :3], 3)
    return points.astype(np.float32)


def _first_hits(world: _LidarWorld, u_e: float, w_e: float, phi: np.ndarray,
                elevation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rays from the ego position at street headings ``phi``: the surface each hits first
    (0 ground, 1 wall, 2 post) and its range (inf when it hits nothing)."""
    m = len(phi)
    dir_u, dir_w = np.cos(phi), np.sin(phi)
    with np.errstate(divide="ignore", invalid="ignore"):
        wall = np.where(dir_w > 1e-9, (world.half_width - w_e) / dir_w,
                        np.where(dir_w < -1e-9, (-world.half_width - w_e) / dir_w, np.inf))
        ground = np.where(elevation < 0, SENSOR_HEIGHT_M / np.tan(-elevation), np.inf)
    post = np.full(m, np.inf)
    for pu, pw, radius in world.posts:
        rel_u, rel_w = pu - u_e, pw - w_e
        b = rel_u * dir_u + rel_w * dir_w
        disc = b * b - (rel_u * rel_u + rel_w * rel_w - radius * radius)
        hit = np.sqrt(np.maximum(disc, 0.0))
        d = np.where((disc >= 0) & (b - hit > 0), b - hit, np.inf)
        post = np.minimum(post, d)
    candidates = np.stack([ground, wall, post])
    surface = np.argmin(candidates, axis=0)
    return surface, candidates[surface, np.arange(m)]


def lidar_sweep_npy(config: SceneConfig, date: str, session: int, index: int) -> bytes:
    """One sweep serialised as ``.npy`` bytes (what ``sensors/lidar/<file>`` holds)."""
    buf = io.BytesIO()
    np.save(buf, lidar_sweep(config, date, session, index), allow_pickle=False)
    return buf.getvalue()
