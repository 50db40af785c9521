"""The ego vehicle's motion in a session: analytic, so any instant (a frame, a reading) is exact."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from dataops_cv.lib.synthetic.config import SceneConfig
from dataops_cv.lib.synthetic.seeds import py_rng
from dataops_cv.lib.synthetic.timeline import US_PER_S, session_start_us

EARTH_RADIUS_M = 6_378_137.0
GRAVITY = 9.80665


@dataclass(frozen=True)
class Trajectory:
    """Ego motion in a street frame (u along, w across, z up), analytic so any instant is exact."""

    lat0: float
    lon0: float
    alt0: float
    theta0: float  # street direction, radians counter-clockwise from east
    v0: float
    a1: float
    w1: float
    p1: float
    a2: float
    w2: float
    p2: float
    a3: float
    w3: float
    p3: float
    half_width: float  # street half width, for the LiDAR's walls

    def state(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Position, heading, speed and body-frame specific force at ``t`` (s since the start)."""
        s1, c1 = np.sin(self.w1 * t + self.p1), np.cos(self.w1 * t + self.p1)
        s2, c2 = np.sin(self.w2 * t + self.p2), np.cos(self.w2 * t + self.p2)
        s3, c3 = np.sin(self.w3 * t + self.p3), np.cos(self.w3 * t + self.p3)
        u = self.v0 * t + self.a1 * s1
        w = self.a2 * s2
        z = self.a3 * s3
        du = self.v0 + self.a1 * self.w1 * c1
        dw, dz = self.a2 * self.w2 * c2, self.a3 * self.w3 * c3
        ddu, ddw = -self.a1 * self.w1**2 * s1, -self.a2 * self.w2**2 * s2
        ddz = -self.a3 * self.w3**2 * s3
        psi = np.arctan2(dw, du)  # heading relative to the street
        yaw_rate = (du * ddw - dw * ddu) / (du**2 + dw**2)
        ct, st = math.cos(self.theta0), math.sin(self.theta0)
        east, north = u * ct - w * st, u * st + w * ct
        lat = self.lat0 + np.degrees(north / EARTH_RADIUS_M)
        lon = self.lon0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(self.lat0))))
        return {
            "u": u, "w": w, "psi": psi, "yaw_rate": yaw_rate,
            "east": east, "north": north, "up": z, "lat": lat, "lon": lon, "alt": self.alt0 + z,
            "speed": np.sqrt(du**2 + dw**2 + dz**2), "yaw_enu": self.theta0 + psi,
            # Specific force in the body frame (x forward, y left, z up), roll and pitch ignored.
            "ax": ddu * np.cos(psi) + ddw * np.sin(psi),
            "ay": -ddu * np.sin(psi) + ddw * np.cos(psi),
            "az": ddz + GRAVITY,
        }


@functools.lru_cache(maxsize=64)
def trajectory(seed: int, date: str, session: int) -> Trajectory:
    """The session's trajectory (sampled once per seed, date and session)."""
    r = py_rng(seed, date, session, "trajectory")
    return Trajectory(
        lat0=48.10 + r.uniform(0, 0.08), lon0=11.50 + r.uniform(0, 0.12),
        alt0=r.uniform(500, 560), theta0=r.uniform(0, 2 * math.pi), v0=r.uniform(6, 14),
        a1=r.uniform(0.5, 2.0), w1=r.uniform(0.1, 0.3), p1=r.uniform(0, 2 * math.pi),
        a2=r.uniform(0.5, 2.0), w2=r.uniform(0.1, 0.4), p2=r.uniform(0, 2 * math.pi),
        a3=r.uniform(0.2, 1.0), w3=r.uniform(0.02, 0.08), p3=r.uniform(0, 2 * math.pi),
        half_width=r.uniform(7, 14),
    )


def gps_truth(config: SceneConfig, date: str, session: int, true_us: int
              ) -> tuple[float, float, float]:
    """True lat, lon (deg) and alt (m) at a reference-clock instant, rounded as GPS stores them."""
    t = (true_us - session_start_us(config, date, session)) / US_PER_S
    st = trajectory(config.seed, date, session).state(np.array([t]))
    return (round(float(st["lat"][0]), 7), round(float(st["lon"][0]), 7),
            round(float(st["alt"][0]), 3))
