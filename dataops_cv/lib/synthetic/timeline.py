"""When things happen on a capture day: session starts, device clocks and reading times.

GPS time is the reference clock. Every other device (each camera, the IMU, the LiDAR) has a
per-session offset, uniform in ``±clock_offset_max_us``, plus per-reading Gaussian jitter
(``clock_jitter_us``). File names and sensor-log timestamps are in the device's own clock;
:func:`clock_offsets` and ``SyntheticFrame.true_time_us`` are the ground truth for fusion.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from dataops_cv.lib.synthetic.config import GPS_DEVICE, IMU_DEVICE, LIDAR_DEVICE, SceneConfig
from dataops_cv.lib.synthetic.seeds import np_rng, py_rng

US_PER_S = 1_000_000


def day_start_us(date: str) -> int:
    """Midnight UTC of ``date`` in epoch µs.

    Raises:
        ValueError: ``date`` is not ``YYYY-MM-DD``.
    """
    try:
        day = dt.date.fromisoformat(date)
    except ValueError as exc:
        raise ValueError(f"capture date must be YYYY-MM-DD, got {date!r}") from exc
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * US_PER_S


def datetime_us(us: int) -> dt.datetime:
    """The UTC datetime of an epoch-µs timestamp, exact to the microsecond."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def session_id(date: str, session: int) -> str:
    """Stable id of a day's session, unique across days: ``20240601_s00``."""
    return f"{date.replace('-', '')}_s{session:02d}"


def session_start_us(config: SceneConfig, date: str, session: int) -> int:
    """Reference-clock start of a session: from 08:00 UTC, spaced so sessions never overlap."""
    duration = round(config.session_seconds * US_PER_S)
    spacing = max(duration + 60 * US_PER_S,
                  min(90 * 60 * US_PER_S, 14 * 3600 * US_PER_S // config.sessions_per_day))
    jitter = py_rng(config.seed, date, session, "start").randrange(30 * US_PER_S)
    return day_start_us(date) + 8 * 3600 * US_PER_S + session * spacing + jitter


def clock_offset_us(config: SceneConfig, date: str, session: int, device: str) -> int:
    """Device clock minus reference clock during a session (GPS is the reference: 0)."""
    if device == GPS_DEVICE or config.clock_offset_max_us == 0:
        return 0
    bound = config.clock_offset_max_us
    return py_rng(config.seed, date, session, device, "clock").randint(-bound, bound)


def clock_offsets(config: SceneConfig, date: str, session: int) -> dict[str, int]:
    """Ground-truth clock offsets (µs) of every device in a session."""
    devices = (*config.cameras, IMU_DEVICE, GPS_DEVICE, LIDAR_DEVICE)
    return {d: clock_offset_us(config, date, session, d) for d in devices}


def phase_s(config: SceneConfig, date: str, session: int, device: str, rate: float) -> float:
    """Seconds from the session start to a device's first reading: free-running devices start at
    a random point of their first period."""
    return py_rng(config.seed, date, session, device, "phase").random() / rate


def reading_times(config: SceneConfig, date: str, session: int, device: str, rate: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds since session start, reference µs, device-clock µs) of a sensor's readings."""
    n = int(math.floor(config.session_seconds * rate))
    start = session_start_us(config, date, session)
    t = phase_s(config, date, session, device, rate) + np.arange(n) / rate
    true_us = start + np.rint(t * US_PER_S).astype(np.int64)
    device_us = true_us + clock_offset_us(config, date, session, device)
    if device != GPS_DEVICE and config.clock_jitter_us > 0:
        jitter = np_rng(config.seed, date, session, device, "jitter").normal(
            0.0, config.clock_jitter_us, n)
        device_us = device_us + np.rint(jitter).astype(np.int64)
    return (true_us - start) / US_PER_S, true_us, device_us
