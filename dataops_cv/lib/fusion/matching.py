"""Nearest record per frame and channel on the reference clock: in the frame's session (else the
records without a session), within the channel's tolerance, with the record of the same device
that brackets the frame for interpolation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dataops_cv.lib.fusion.config import POSE, FusionConfig
from dataops_cv.lib.fusion.frames import TimedFrames
from dataops_cv.lib.fusion.records import Records


@dataclass
class Match:
    """One channel's match of every timed frame."""

    nearest: np.ndarray  # sorted-record index of the nearest record, -1 when none
    dt_ns: np.ndarray  # nearest record's t_ref minus the frame's t_ref
    ok: np.ndarray  # within tolerance
    partner: np.ndarray  # the other bracketing record for interpolation, -1 when none
    weight: np.ndarray  # partner's share of the interpolated value
    source: np.ndarray  # per session code: the session whose records it uses, -1 none
    tol_ns: np.ndarray  # tolerance that applied to the nearest record (0 when none)


def match_channels(rec: Records, tref: np.ndarray, pose_sorted: np.ndarray, kind_names: list[str],
                   timed: TimedFrames, n_sess: int, period_ns: np.ndarray,
                   config: FusionConfig) -> dict[str, Match]:
    """A :class:`Match` per channel: the kinds of ``config.tolerance_ms`` in sorted order, then
    ``pose`` when some row carries a pose or ``pose`` has a tolerance."""
    tol_by_kind = dict(config.tolerance_ms)
    channels = sorted(k for k in tol_by_kind if k != POSE)
    if bool(pose_sorted.any()) or POSE in tol_by_kind:
        channels.append(POSE)
    kind_tol_ns = np.array([int(round(tol_by_kind.get(k, -1.0) * 1e6)) for k in kind_names]
                           + [-1], dtype=np.int64)
    usable = ~rec.dup
    matches: dict[str, Match] = {}
    for ch in channels:
        if ch == POSE:
            tol = np.full(len(rec.ts), int(round(tol_by_kind[POSE] * 1e6))) \
                if POSE in tol_by_kind else kind_tol_ns[rec.kind]
            cand = usable & pose_sorted & (tol > 0)
            gap: float | None = config.interpolate_max_gap_periods
        else:
            code = kind_names.index(ch) if ch in kind_names else -2
            cand = usable & (rec.kind == code)
            tol = np.full(len(rec.ts), int(round(tol_by_kind[ch] * 1e6)), dtype=np.int64)
            gap = config.interpolate_max_gap_periods if ch == "gps" else None
        matches[ch] = match(rec, tref, cand, tol, timed.sess, timed.t, n_sess, period_ns, gap)
    return matches


def record_kinds(matches: dict[str, Match], kind_names: list[str]) -> list[str]:
    """The matched channels that are sensor kinds present in the log (pose is not a kind)."""
    return [ch for ch in matches if ch != POSE and ch in kind_names]


def chosen(matches: dict[str, Match], ch: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted-record index of the accepted record or -1, accepted) per frame for ``ch``."""
    m = matches.get(ch)
    if m is None:
        return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
    return np.where(m.ok, m.nearest, -1), m.ok


def missing_matrix(matches: dict[str, Match], n: int) -> np.ndarray:
    """frames × channels: True where the channel has no accepted record."""
    return np.stack([~chosen(matches, ch, n)[1] for ch in matches], axis=1) if matches \
        else np.zeros((n, 0), dtype=bool)


def match(rec: Records, tref: np.ndarray, cand_mask: np.ndarray, tol_ns: np.ndarray,
          f_sess: np.ndarray, f_t: np.ndarray, n_sess: int, period_ns: np.ndarray,
          max_gap: float | None) -> Match:
    """Nearest candidate per frame in its session (null-session fallback), vectorised per
    session; with ``max_gap``, the partner that brackets the frame for interpolation."""
    cand = np.flatnonzero(cand_mask)  # in (session, kind, device, time) order
    nearest, dt, source = _nearest(rec, tref, cand, f_sess, f_t, n_sess)
    nf = len(f_t)
    found = nearest >= 0
    tol = np.where(found, tol_ns[np.maximum(nearest, 0)], 0) if len(tol_ns) \
        else np.zeros(nf, dtype=np.int64)
    ok = found & (np.abs(dt) <= tol)
    partner = np.full(nf, -1, dtype=np.int64)
    weight = np.zeros(nf)
    if max_gap is not None and ok.any():
        partner[ok], weight[ok] = _partners(rec, tref, cand, nearest[ok], dt[ok], period_ns,
                                            max_gap)
    return Match(nearest, dt, ok, partner, weight, source, tol)


def _nearest(rec: Records, tref: np.ndarray, cand: np.ndarray, f_sess: np.ndarray,
             f_t: np.ndarray, n_sess: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nearest candidate or -1, its dt, source session per session code) per frame."""
    null_code = n_sess - 1
    c_sess, c_t = rec.sess[cand], tref[cand]
    if len(cand) > 1 and not np.all((c_sess[1:] > c_sess[:-1])
                                    | ((c_sess[1:] == c_sess[:-1]) & (c_t[1:] >= c_t[:-1]))):
        by_time = np.lexsort((c_t, c_sess))  # several devices per session: merge them by time
        cand_t, c_sess, c_t = cand[by_time], c_sess[by_time], c_t[by_time]
    else:
        cand_t = cand
    bounds = np.searchsorted(c_sess, np.arange(n_sess + 1))
    has = np.diff(bounds) > 0
    source = np.where(has, np.arange(n_sess), np.where(has[null_code], null_code, -1))
    nf = len(f_t)
    nearest = np.full(nf, -1, dtype=np.int64)
    dt = np.zeros(nf, dtype=np.int64)
    src = source[f_sess] if nf else np.zeros(0, dtype=np.int64)
    f_order = np.argsort(src, kind="stable")
    f_bounds = np.searchsorted(src[f_order], np.arange(-1, n_sess + 1))
    for s in range(n_sess):
        fi = f_order[f_bounds[s + 1]:f_bounds[s + 2]]
        if not len(fi):
            continue
        lo, hi = bounds[s], bounds[s + 1]
        t = c_t[lo:hi]
        ft = f_t[fi]
        j = np.searchsorted(t, ft, side="left")
        has_prev, has_next = j > 0, j < len(t)
        d_prev = np.where(has_prev, ft - t[np.maximum(j - 1, 0)], np.iinfo(np.int64).max)
        d_next = np.where(has_next, t[np.minimum(j, len(t) - 1)] - ft, np.iinfo(np.int64).max)
        pick = np.where(d_next < d_prev, j, j - 1)  # ties go to the earlier record
        nearest[fi] = cand_t[lo + pick]
        dt[fi] = c_t[lo + pick] - ft
    return nearest, dt, source


def _partners(rec: Records, tref: np.ndarray, cand: np.ndarray, nearest: np.ndarray,
              dt: np.ndarray, period_ns: np.ndarray, max_gap: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """(partner or -1, its weight) of accepted matches: the neighbour of the chosen record among
    the same device's candidates on the frame's other side, at most ``max_gap`` periods away."""
    pos = np.searchsorted(cand, nearest)
    step = np.where(dt < 0, 1, -1)
    other = pos + step
    inside = (other >= 0) & (other < len(cand)) & (dt != 0)
    other_rec = cand[np.clip(other, 0, len(cand) - 1)]
    same = inside & (rec.group[other_rec] == rec.group[nearest])
    span = np.abs(tref[other_rec] - tref[nearest])
    limit = max_gap * period_ns[rec.group[nearest]]
    use = same & (span <= limit)  # NaN period (a lone record) never interpolates
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(use, np.abs(dt) / np.maximum(span, 1), 0.0)
    return np.where(use, other_rec, -1), weight
