"""Clock shift between two yaw-rate signals by masked normalised cross-correlation, refined
below the grid step; or the reason the data cannot show one."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

MIN_OVERLAP_S = 5.0  # shortest stretch of shared motion an offset is estimated from
MIN_YAW_RATE_STD = 0.005  # rad/s (~0.3 deg/s): below it a straight drive hides any shift
SIGNAL_MAX_GAP_PERIODS = 2.5  # motion signals are not resampled across longer holes


def _coverage(x: np.ndarray, t: np.ndarray, max_step: float) -> np.ndarray:
    """Grid points ``x`` that lie between two samples of ``t`` at most ``max_step`` apart."""
    j = np.clip(np.searchsorted(t, x, side="right"), 1, len(t) - 1)
    return (x >= t[0]) & (x <= t[-1]) & (t[j] - t[j - 1] <= max_step)


def _box(values: np.ndarray, valid: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving average (zero phase, so no shift bias); valid where the window is full."""
    if width <= 1:
        return np.where(valid, values, 0.0), valid
    v = np.where(valid, values, 0.0)
    cs = np.concatenate(([0.0], np.cumsum(v)))
    cn = np.concatenate(([0], np.cumsum(valid.astype(np.int64))))
    half = width // 2
    out = np.zeros(len(v))
    ok = np.zeros(len(v), dtype=bool)
    if len(v) > 2 * half:
        s = np.arange(half, len(v) - half)
        out[s] = (cs[s + half + 1] - cs[s - half]) / width
        ok[s] = (cn[s + half + 1] - cn[s - half]) == width
    return np.where(ok, out, 0.0), ok


def _masked_ncc(r: np.ndarray, vr: np.ndarray, d: np.ndarray, vd: np.ndarray,
                min_n: int) -> np.ndarray:
    """Normalised correlation of ``r`` with every window of ``d`` (len(d) >= len(r)), counting
    only samples valid in both."""
    vr_f, vd_f = vr.astype(np.float64), vd.astype(np.float64)
    rr, dd = r * vr_f, d * vd_f

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.correlate(a, b, mode="valid")

    n = corr(vd_f, vr_f)
    sr, srr = corr(vd_f, rr), corr(vd_f, rr * r)
    sd, sdd = corr(dd, vr_f), corr(dd * d, vr_f)
    srd = corr(dd, rr)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = srd - sr * sd / n
        var = (srr - sr * sr / n) * (sdd - sd * sd / n)
        c = cov / np.sqrt(var)
    c[(n < min_n) | ~np.isfinite(c)] = np.nan
    return c


def _refine_peak(score: Callable[[float], float], lag: float, h: float) -> float:
    """Grid-free peak of ``score`` near ``lag``: hill-climb and parabola, step h/2 down to
    0.5 ms in quarters."""
    step = h / 2
    while True:
        for _ in range(8):  # hill-climb at this step, then fit a parabola through the peak
            cm, c0, cp = score(lag - step), score(lag), score(lag + step)
            if cm > c0 and cm >= cp:
                lag -= step
            elif cp > c0:
                lag += step
            else:
                break
        denom = cm - 2 * c0 + cp
        if denom < 0 and math.isfinite(denom):
            lag += float(np.clip(0.5 * (cm - cp) / denom, -0.5, 0.5)) * step
        if step <= 0.5e-3:
            break
        step /= 4
    return lag


def xcorr_offset(ref_t: np.ndarray, ref_y: np.ndarray, dev_t: np.ndarray, dev_y: np.ndarray,
                 max_lag_s: float, reference: str) -> tuple[float | None, float | None, str]:
    """Device clock minus reference clock (s) maximising the yaw-rate correlation.

    Times are seconds on each device's own clock (same origin). Returns (offset, confidence,
    note); offset is None when the data cannot show a shift.
    """
    ok_r, ok_d = np.isfinite(ref_y), np.isfinite(dev_y)
    ref_t, ref_y, dev_t, dev_y = ref_t[ok_r], ref_y[ok_r], dev_t[ok_d], dev_y[ok_d]
    if len(ref_t) < 3 or len(dev_t) < 3:
        return None, None, "too few motion samples"
    span = ref_t[-1] - ref_t[0]
    if span < MIN_OVERLAP_S:
        return None, None, (f"session shorter than {MIN_OVERLAP_S:g} s of {reference} motion "
                            f"({span:.1f} s)")
    p_ref, p_dev = float(np.median(np.diff(ref_t))), float(np.median(np.diff(dev_t)))
    h = min(0.01, max_lag_s / 8)
    # Long sessions: a coarser grid keeps the cost bounded; the refinement below is grid-free.
    h = max(h, (span + 2 * max_lag_s) / 400_000)
    lo, hi = max(ref_t[0], dev_t[0] + max_lag_s), min(ref_t[-1], dev_t[-1] - max_lag_s)
    if hi - lo < MIN_OVERLAP_S:
        return None, None, (f"overlap with the {reference} shorter than {MIN_OVERLAP_S:g} s "
                            f"({max(hi - lo, 0.0):.1f} s)")
    k = int(math.ceil(max_lag_s / h))
    g = lo + h * np.arange(int((hi - lo) / h) + 1)
    g_ext = lo - k * h + h * np.arange(len(g) + 2 * k)
    width = max(1, int(round(2 * max(p_ref, p_dev) / h)) | 1)
    r, vr = _box(np.interp(g, ref_t, ref_y),
                 _coverage(g, ref_t, SIGNAL_MAX_GAP_PERIODS * p_ref), width)
    d, vd = _box(np.interp(g_ext, dev_t, dev_y),
                 _coverage(g_ext, dev_t, SIGNAL_MAX_GAP_PERIODS * p_dev), width)
    if vr.sum() * h < MIN_OVERLAP_S:
        return None, None, f"under {MIN_OVERLAP_S:g} s of gap-free {reference} motion"
    spread = float(np.std(r[vr]))
    if spread < MIN_YAW_RATE_STD:
        return None, None, (f"motion too smooth to observe (yaw-rate std {spread:.4f} rad/s "
                            f"< {MIN_YAW_RATE_STD})")
    min_n = int(MIN_OVERLAP_S / h)
    coarse = _masked_ncc(r, vr, d, vd, min_n)
    if not np.isfinite(coarse).any():
        return None, None, f"under {MIN_OVERLAP_S:g} s of shared motion with the {reference}"
    best = int(np.nanargmax(coarse))
    if best in (0, 2 * k):
        return None, float(coarse[best]), (f"correlation peaks at the edge of the "
                                           f"±{max_lag_s * 1e3:g} ms search window")
    vd_f = vd.astype(np.float64)

    def at(lag: float) -> float:
        x = g + lag
        dl = np.interp(x, g_ext, d)
        vl = np.interp(x, g_ext, vd_f) > 0.999
        c = _masked_ncc(r, vr, dl, vl, min_n)
        return float(c[0]) if np.isfinite(c[0]) else -math.inf

    lag = _refine_peak(at, (best - k) * h, h)
    return lag, at(lag), ""
