"""Clock statistics of one device's timestamps: records, period, jitter, gaps and duplicates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dataops_cv.lib.fusion.records import Records

GAP_FACTOR = 1.5  # an interval longer than this many median periods is a gap in the log
MAD_TO_STD = 1.4826


@dataclass
class ClockStats:
    """What one device's timestamps say about its clock."""

    records: int
    period_ns: float  # NaN with fewer than two distinct timestamps
    jitter_us: float
    gaps: int
    duplicates: int


def clock_stats(ts_sorted: np.ndarray) -> ClockStats:
    """Rate, jitter and gaps of one device's sorted timestamps (duplicates included)."""
    unique = ts_sorted[np.concatenate(([True], ts_sorted[1:] != ts_sorted[:-1]))] \
        if len(ts_sorted) else ts_sorted
    dups = len(ts_sorted) - len(unique)
    if len(unique) < 2:
        return ClockStats(len(ts_sorted), math.nan, math.nan, 0, dups)
    d = np.diff(unique).astype(np.float64)
    period = float(np.median(d))
    gaps = int(np.count_nonzero(d > GAP_FACTOR * period))
    jitter = math.nan
    if len(unique) >= 3:
        # Grid indices from rounded intervals, so a gap skips grid points and a median off by a
        # µs does not accumulate; the grid's phase and period are then fitted by least squares.
        n = np.concatenate(([0.0], np.cumsum(np.maximum(np.rint(d / period), 1.0))))
        y = (unique - unique[0]).astype(np.float64)
        slope, intercept = np.polyfit(n, y, 1)
        res = y - (intercept + slope * n)
        jitter = MAD_TO_STD * float(np.median(np.abs(res - np.median(res)))) / 1e3
    return ClockStats(len(ts_sorted), period, jitter, gaps, dups)


def group_stats(rec: Records) -> list[ClockStats]:
    """:func:`clock_stats` of every (session, kind, device) group."""
    return [clock_stats(rec.ts[a:b]) for a, b in zip(rec.g_start, rec.g_end, strict=True)]
