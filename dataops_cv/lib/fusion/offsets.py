"""Clock offset of every (session, kind, device) group -- known from the rig, zero for the
reference, estimated from motion, or none with the reason -- and sensor times on the reference
clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dataops_cv.lib.fusion.clocks import ClockStats
from dataops_cv.lib.fusion.config import CAMERA, QUATERNION, FusionConfig
from dataops_cv.lib.fusion.records import Records
from dataops_cv.lib.fusion.tables import floats_at
from dataops_cv.lib.fusion.xcorr import xcorr_offset

Signal = tuple[np.ndarray, np.ndarray]  # (device-clock ns, yaw rate rad/s)


@dataclass
class Offset:
    """A device's clock offset (device minus reference) and how it was found."""

    offset_us: float | None
    method: str | None
    confidence: float | None
    applied: bool
    note: str | None

    @property
    def applied_ns(self) -> int:
        """The shift moved off the device's times: the offset when applied, else 0."""
        return int(round(self.offset_us * 1e3)) if self.applied and self.offset_us else 0


def known_offset(device: str, config: FusionConfig) -> Offset | None:
    """The rig-calibrated offset of ``device`` from ``config.known_offsets_us``, if any."""
    known = config.known_offsets_us.get(device)
    return Offset(float(known), "known", None, True, "from rig calibration") \
        if known is not None else None


def _yaw_from_heading(heading_deg: np.ndarray) -> np.ndarray:
    # Heading is clockwise from north, yaw counter-clockwise from east: opposite senses.
    return -np.unwrap(np.radians(heading_deg))


def _yaw_from_quaternion(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.unwrap(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def _rate(t_s: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    return np.gradient(yaw, t_s) if len(t_s) >= 2 else np.full(len(t_s), np.nan)


def motion_signal(sensors: pa.Table, rec: Records, g: int, kind: str, has_pose: bool
                  ) -> Signal | None:
    """Yaw rate of group ``g`` over its non-duplicate rows: GPS heading, IMU ``gz`` or pose
    quaternion, the first with at least three samples; None without one."""
    a, b = rec.g_start[g], rec.g_end[g]
    keep = ~rec.dup[a:b]
    rows = rec.row[a:b][keep]
    t_s = rec.ts[a:b][keep]
    if kind == "gps" and "heading" in sensors.column_names:
        h = floats_at(sensors, "heading", rows)
        ok = np.isfinite(h)
        if ok.sum() >= 3:
            t = (t_s[ok] - rec.ts[a]) / 1e9
            return t_s[ok], _rate(t, _yaw_from_heading(h[ok]))
    if kind == "imu" and "gz" in sensors.column_names:
        gz = floats_at(sensors, "gz", rows)
        ok = np.isfinite(gz)
        if ok.sum() >= 3:
            return t_s[ok], gz[ok]
    if has_pose:
        q = np.stack([floats_at(sensors, c, rows) for c in QUATERNION])
        ok = np.all(np.isfinite(q), axis=0)
        if ok.sum() >= 3:
            t = (t_s[ok] - rec.ts[a]) / 1e9
            return t_s[ok], _rate(t, _yaw_from_quaternion(q[:, ok]))
    return None


def estimate_offsets(sensors: pa.Table, rec: Records, g_kind: list[str],
                     g_has_pose: np.ndarray, stats: list[ClockStats], config: FusionConfig,
                     dev_names: list[str], n_sess: int) -> list[Offset]:
    """Offset of every (session, kind, device) group: known, reference, estimated or none."""
    n = len(rec.g_start)
    out: list[Offset | None] = [None] * n
    ref_kind = config.reference_sensor
    for g in range(n):
        known = known_offset(dev_names[rec.g_dev[g]], config)
        if known is not None:
            out[g] = known
        elif g_kind[g] == ref_kind:
            out[g] = Offset(0.0, "reference", None, True, None)

    def signal(g: int) -> Signal | None:
        return motion_signal(sensors, rec, g, g_kind[g], g_has_pose[g])

    for s in range(n_sess):
        groups = np.flatnonzero(rec.g_sess == s)
        if not len(groups):
            continue
        refs = [g for g in groups if g_kind[g] == ref_kind]
        # The reference device with the most records carries the session's reference motion.
        ref = max(refs, key=lambda g: (stats[g].records, -g)) if refs else None
        ref_signal = signal(ref) if ref is not None and config.estimate_offsets else None
        ref_shift = out[ref].applied_ns if ref is not None and out[ref] is not None else 0
        for g in groups:
            if out[g] is None:
                out[g] = _motion_offset(g_kind[g], g_has_pose[g], lambda g=g: signal(g),
                                        ref is not None, ref_signal, ref_shift, config)
    return [o if o is not None else Offset(None, None, None, False, None) for o in out]


def _motion_offset(kind: str, has_pose: bool, mine: Callable[[], Signal | None],
                   has_ref: bool, ref_signal: Signal | None, ref_shift: int,
                   config: FusionConfig) -> Offset:
    """The estimate for one group of a session, or why there is none."""
    ref_kind = config.reference_sensor
    if kind == CAMERA or (kind != "imu" and not has_pose):
        return Offset(None, None, None, False, "no motion signal")
    if not config.estimate_offsets:
        return Offset(None, None, None, False, "estimate_offsets is off")
    if not has_ref:
        return Offset(None, None, None, False,
                      f"no {ref_kind} device in the session to compare with")
    if ref_signal is None:
        return Offset(None, None, None, False, f"the {ref_kind} reference has no motion signal")
    signal = mine()
    if signal is None:
        return Offset(None, None, None, False, "no motion signal")
    origin = min(int(ref_signal[0][0]), int(signal[0][0]))
    lag, conf, note = xcorr_offset(
        (ref_signal[0] - ref_shift - origin) / 1e9, ref_signal[1],
        (signal[0] - origin) / 1e9, signal[1], config.max_offset_ms / 1e3, ref_kind)
    if lag is None:
        return Offset(None, None, conf, False, note)
    applied = conf is not None and conf >= config.min_offset_confidence
    return Offset(lag * 1e6, "motion_xcorr", conf, applied,
                  None if applied else
                  f"confidence below min_offset_confidence "
                  f"({config.min_offset_confidence:g}); not applied")


def reference_times(rec: Records, offsets: list[Offset]) -> np.ndarray:
    """Every sorted record's time on the reference clock: ``t_device - applied offset``."""
    offset_ns = np.array([o.applied_ns for o in offsets], dtype=np.int64)
    return rec.ts - offset_ns[rec.group] if len(rec.ts) else rec.ts
