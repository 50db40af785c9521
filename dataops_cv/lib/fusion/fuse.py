"""Fuse camera frames with IMU, GPS and LiDAR readings by time and place.

Input
-----
``frames``: one row per camera frame: ``sha256``, ``object_key``, ``rel_path`` (drop-relative),
``device_id`` (the camera, may be null) and ``capture_time`` (``timestamp`` of any unit, device
clock, may be null). Other columns are ignored.

``sensors``: the normalised sensor table (:data:`~dataops_cv.lib.acquisition.sensor_logs.SENSOR_LOG_SCHEMA`,
usually with ``log_path`` and ``object_key`` from :mod:`~dataops_cv.lib.acquisition.sensor_ingest`). It is not
assumed sorted: it may hold out-of-order and duplicate timestamps, jitter and gaps.

What a frame is
---------------
A ``camera`` row of the log whose ``object_key`` is ``sensors/xx/<sha256>.<ext>`` holds the same
bytes as the frame with that sha256, and wins: time, camera, session, firmware and calibration
come from it (``time_source = "sensor_log"``). Otherwise the time is ``capture_time``, the camera
``device_id`` and the session the folder two levels above the file
(``images/<session>/<camera>/<file>``; null for shorter paths), ``time_source = "file_name"``.
A frame with no time at all cannot be placed: it stays in ``fused`` as a sample with
``time_source = "none"``, null times and matches and every kind in ``unmatched``, and is
reported in ``unmatched`` (reason ``no_capture_time``). (Images of public datasets rarely carry
a time; they are still samples to augment, curate and train on.)

Clocks
------
Every device has its own clock. Before matching, every time is moved to the reference clock
(``config.reference_sensor``, GPS by default): ``t_ref = t_device - offset``. The offset of a
device is, in this order: ``config.known_offsets_us`` (rig calibration); ``0`` for devices of the
reference kind; the motion estimate when ``config.estimate_offsets`` and its confidence is at least
``config.min_offset_confidence``; else 0. The estimate cross-correlates yaw rate -- from the
reference's GPS heading, an IMU's ``gz`` or a pose device's quaternion -- over the session, and
says so (``note``) rather than invent a number when the session is short, the motion too smooth
or the device has no motion signal (cameras never have one in the log).

Matching
--------
Per frame and per sensor kind of ``config.tolerance_ms``: the nearest record of that kind in the
frame's session (any device; ties go to the earlier record), accepted when ``|dt| <= tolerance``.
A session with no records of a kind falls back to the records of that kind without a session
(rigs that do not log sessions). GPS values and the ego pose are interpolated between the two
records of the nearest device that bracket the frame when they are at most
``interpolate_max_gap_periods`` of its median period apart, so a gap is never bridged; IMU values
and the LiDAR sweep are nearest-only. The pose is its own channel ``pose``, fed by whichever
devices carry pose columns, with the tolerance of their kind (``tolerance_ms["pose"]`` overrides);
it is matched when some row carries a pose or ``"pose"`` is in ``tolerance_ms``. Kinds outside
``tolerance_ms`` (radar, ...) are counted and reported in the clock table, not matched. Duplicate
timestamps of a device after the first (in input order) are never used.

Reported as unmatched: frames without a time, frames without a record of a kind within tolerance,
duplicate records, and records of matched kinds that no frame could use (their session has no
frames, or they lie outside the session's frames by more than the tolerance). A record that is
merely not the nearest to any frame (most of a 100 Hz IMU beside 12 Hz cameras) is not a defect
and is not reported.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.acquisition.sensor_logs import CALIBRATION_COLUMNS, POSE_COLUMNS

ALGORITHM_VERSION = "2"  # bump when fused output would change for the same config
POSE = "pose"
CAMERA = "camera"
GEOHASH_ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"
MIN_OVERLAP_S = 5.0  # shortest stretch of shared motion an offset is estimated from
MIN_YAW_RATE_STD = 0.005  # rad/s (~0.3 deg/s): below it a straight drive hides any shift
SIGNAL_MAX_GAP_PERIODS = 2.5  # motion signals are not resampled across longer holes
GAP_FACTOR = 1.5  # an interval longer than this many median periods is a gap in the log
MAD_TO_STD = 1.4826

GPS_VALUES = ("lat", "lon", "alt", "speed", "heading")
IMU_VALUES = ("ax", "ay", "az", "gx", "gy", "gz")
_QUATERNION = ("pose_qw", "pose_qx", "pose_qy", "pose_qz")
_POSITION = ("pose_x", "pose_y", "pose_z")
FRAME_COLUMNS = ("sha256", "object_key", "rel_path", "device_id", "capture_time")
SENSOR_COLUMNS = ("timestamp_ns", "sensor", "device_id")
_CAMERA_KEY_RE = r"^sensors/[0-9a-f]{2}/(?P<sha>[0-9a-f]{64})(?:\.[^/]*)?$"
_SESSION_RE = r"^(?:.*/)?(?P<session>[^/]+)/[^/]+/[^/]+$"

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
FUSED_SCHEMA = pa.schema(
    [("sha256", _S), ("object_key", _S), ("rel_path", _S), ("session_id", _S), ("camera", _S),
     ("camera_firmware", _S), ("time_source", _S), ("frame_time_ns", _I),
     ("frame_time_ref_ns", _I), ("camera_offset_us", _I), ("geo_cell", _S),
     ("gps_device", _S), ("gps_dt_us", _I), ("gps_method", _S)]
    + [(c, _F) for c in GPS_VALUES]
    + [("imu_device", _S), ("imu_dt_us", _I)] + [(c, _F) for c in IMU_VALUES]
    + [("lidar_device", _S), ("lidar_firmware", _S), ("lidar_dt_us", _I),
       ("lidar_object_key", _S), ("pose_device", _S), ("pose_dt_us", _I), ("pose_method", _S)]
    + [(c, _F) for c in POSE_COLUMNS] + [(c, _F) for c in CALIBRATION_COLUMNS]
    + [("devices", _S), ("unmatched", _S)]
)
UNMATCHED_SCHEMA = pa.schema(
    [("kind", _S), ("id", _S), ("session_id", _S), ("device_id", _S), ("sensor", _S),
     ("timestamp_ns", _I), ("reason", _S), ("detail", _S)]
)
CLOCK_SCHEMA = pa.schema(
    [("session_id", _S), ("device_id", _S), ("sensor", _S), ("firmware", _S), ("records", _I),
     ("rate_hz", _F), ("period_us", _F), ("jitter_us", _F), ("gaps", _I), ("duplicates", _I),
     ("out_of_order", _I), ("offset_us", _F), ("offset_method", _S), ("offset_confidence", _F),
     ("offset_applied", _B), ("note", _S)]
)

V = TypeVar("V")


class FusionError(ValueError):
    """Inputs that cannot be fused as given (a caller's mistake, not a bad record)."""


class FrozenMapping(Mapping[str, V]):
    """A read-only, hashable mapping, so a :class:`FusionConfig` stays frozen and hashable."""

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        self._items = dict(sorted(dict(items or {}).items()))

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._items!r})"


@dataclass(frozen=True)
class FusionConfig:
    """How frames and sensor records are aligned (see the module docstring)."""

    tolerance_ms: Mapping[str, float] = FrozenMapping({"imu": 10.0, "gps": 60.0, "lidar": 30.0})
    interpolate_max_gap_periods: float = 2.5
    geo_precision: int = 7  # geohash characters (~153 m cells)
    reference_sensor: str = "gps"
    estimate_offsets: bool = True
    min_offset_confidence: float = 0.8
    max_offset_ms: float = 200.0
    known_offsets_us: Mapping[str, int] = FrozenMapping({})

    def __post_init__(self) -> None:
        tolerances = FrozenMapping({str(k).lower(): float(v)
                                    for k, v in dict(self.tolerance_ms).items()})
        bad = {k: v for k, v in tolerances.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"tolerance_ms must be positive and finite per kind, got {bad}")
        if CAMERA in tolerances:
            raise ValueError("tolerance_ms cannot hold 'camera': frames are what is matched")
        offsets = dict(self.known_offsets_us)
        not_int = {k: v for k, v in offsets.items()
                   if isinstance(v, bool) or not isinstance(v, int | np.integer)}
        if not_int:
            raise ValueError(f"known_offsets_us must map device_id to integer µs, got {not_int}")
        object.__setattr__(self, "tolerance_ms", tolerances)
        object.__setattr__(self, "known_offsets_us",
                           FrozenMapping({str(k): int(v) for k, v in offsets.items()}))
        object.__setattr__(self, "reference_sensor", self.reference_sensor.lower())
        if not self.interpolate_max_gap_periods > 0:
            raise ValueError("interpolate_max_gap_periods must be > 0, got "
                             f"{self.interpolate_max_gap_periods}")
        if not 1 <= self.geo_precision <= 12:
            raise ValueError(f"geo_precision must be 1..12 characters, got {self.geo_precision}")
        if not 0 <= self.min_offset_confidence <= 1:
            raise ValueError("min_offset_confidence must be in [0, 1], got "
                             f"{self.min_offset_confidence}")
        if not (math.isfinite(self.max_offset_ms) and self.max_offset_ms > 0):
            raise ValueError(f"max_offset_ms must be positive, got {self.max_offset_ms}")

    def version(self) -> str:
        """Short stable hash of the canonical config and the algorithm version (for re-runs)."""
        canon = {f.name: getattr(self, f.name) for f in fields(self)}
        canon = {k: dict(v) if isinstance(v, Mapping) else v for k, v in canon.items()}
        canon["algorithm"] = ALGORITHM_VERSION
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class FusionResult:
    """What :func:`fuse` returns: fused frames, what could not be matched, and the clock report."""

    fused: pa.Table  # FUSED_SCHEMA, one row per frame (time_source "none" when it has no time)
    unmatched: pa.Table  # UNMATCHED_SCHEMA
    clocks: pa.Table  # CLOCK_SCHEMA, one row per (session_id, device_id)
    counts: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ geohash


def _geohash_bytes(lat: np.ndarray, lon: np.ndarray, precision: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(N×precision uint8 characters, valid mask)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    bits = 5 * precision
    lon_bits, lat_bits = (bits + 1) // 2, bits // 2  # interleaving starts with longitude
    # Quantising to 2^n cells equals geohash's bisection (value >= midpoint -> 1) at every level.
    lon_q = np.clip(np.floor((np.where(valid, lon, 0) + 180.0) / 360.0 * 2.0**lon_bits),
                    0, 2**lon_bits - 1).astype(np.int64)
    lat_q = np.clip(np.floor((np.where(valid, lat, 0) + 90.0) / 180.0 * 2.0**lat_bits),
                    0, 2**lat_bits - 1).astype(np.int64)
    code = np.zeros(len(lat), dtype=np.int64)
    for j in range(bits):
        if j % 2 == 0:
            bit = (lon_q >> (lon_bits - 1 - j // 2)) & 1
        else:
            bit = (lat_q >> (lat_bits - 1 - j // 2)) & 1
        code = (code << 1) | bit
    alphabet = np.frombuffer(GEOHASH_ALPHABET.encode(), dtype=np.uint8)
    shifts = 5 * np.arange(precision - 1, -1, -1)
    chars = alphabet[(code[:, None] >> shifts[None, :]) & 31]
    return chars, valid


def geohash(lat: np.ndarray, lon: np.ndarray, precision: int) -> list[str | None]:
    """Geohash cells of many positions at once.

    Args:
        lat, lon: degrees WGS84; NaN (a null converted by pyarrow) or out of range gives None.
        precision: characters, 1..12.

    Raises:
        ValueError: precision outside 1..12 or lat/lon of different lengths.
    """
    return _geohash_array(lat, lon, precision).to_pylist()


def _geohash_array(lat: np.ndarray, lon: np.ndarray, precision: int) -> pa.Array:
    if not 1 <= precision <= 12:
        raise ValueError(f"geohash precision must be 1..12 characters, got {precision}")
    if len(lat) != len(lon):
        raise ValueError(f"lat and lon differ in length: {len(lat)} and {len(lon)}")
    chars, valid = _geohash_bytes(lat, lon, precision)
    text = np.ascontiguousarray(chars).view(f"S{precision}").ravel().astype(str)
    return pa.array(text, _S, mask=~valid)


# ------------------------------------------------------------------------------ table helpers


def _require(table: pa.Table, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise FusionError(f"{what} table lacks column(s) {missing}; found {table.column_names}")


def _text(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, _S)
    col = table.column(name)
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col if col.type == _S else col.cast(_S)


def _floats(table: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    """Values of ``name`` at ``rows`` (NaN for null, missing column or row -1)."""
    out = np.full(len(rows), np.nan)
    ok = rows >= 0
    if name not in table.column_names or not ok.any():
        return out
    taken = table.column(name).take(pa.array(rows[ok], _I))
    out[ok] = taken.to_numpy(zero_copy_only=False).astype(np.float64)
    return out


def _take_text(values: pa.Array, rows: np.ndarray) -> pa.Array:
    """``values[rows]``, null where rows is -1."""
    return values.take(pa.array(np.where(rows >= 0, rows, 0), _I, mask=rows < 0))


def _codes(values: pa.Array, vocab: pa.Array, null_code: int) -> np.ndarray:
    idx = pc.index_in(values, value_set=vocab)
    return pc.fill_null(idx, null_code).to_numpy(zero_copy_only=False).astype(np.int64)


def _vocab(*arrays: pa.Array) -> pa.Array:
    """Sorted distinct non-null strings of the arrays."""
    values: set[str] = set()
    for a in arrays:
        values.update(v for v in pc.unique(a).to_pylist() if v is not None)
    return pa.array(sorted(values), _S)


def _int_array(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int64), _I, mask=~valid)


def _float_array(values: np.ndarray) -> pa.Array:
    return pa.array(values, _F, from_pandas=True)


# --------------------------------------------------------------------------------- records


@dataclass
class _Records:
    """Sensor rows sorted by (session, kind, device, timestamp, input order) and their groups."""

    row: np.ndarray  # original row index
    ts: np.ndarray  # device clock, ns
    sess: np.ndarray  # session code; the null session is the last code
    kind: np.ndarray
    dev: np.ndarray
    group: np.ndarray  # index into the group arrays below
    dup: np.ndarray  # a repeat of the previous timestamp of the device
    g_start: np.ndarray
    g_end: np.ndarray
    g_sess: np.ndarray
    g_kind: np.ndarray
    g_dev: np.ndarray
    g_out_of_order: np.ndarray


def _sort_records(ts: np.ndarray, sess: np.ndarray, kind: np.ndarray, dev: np.ndarray,
                  n_kind: int, n_dev: int) -> _Records:
    key = (sess * n_kind + kind) * n_dev + dev
    order = np.lexsort((ts, key))  # stable: equal timestamps keep their input order
    key_s, ts_s = key[order], ts[order]
    n = len(order)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = key_s[1:] != key_s[:-1]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n).astype(np.int64) if n else starts
    dup = np.zeros(n, dtype=bool)
    dup[1:] = ~new_group[1:] & (ts_s[1:] == ts_s[:-1])
    # Out of order: lower than the previous row of the same device in input order.
    if n and np.all(key[1:] >= key[:-1]):
        key_i, ts_i = key, ts
    else:
        by_key = np.argsort(key, kind="stable")
        key_i, ts_i = key[by_key], ts[by_key]
    late = np.flatnonzero((key_i[1:] == key_i[:-1]) & (ts_i[1:] < ts_i[:-1])) + 1
    g_keys = key_s[starts]
    ooo = np.bincount(np.searchsorted(g_keys, key_i[late]), minlength=len(starts))
    g_dev = g_keys % n_dev
    g_kind = (g_keys // n_dev) % n_kind
    g_sess = g_keys // (n_dev * n_kind)
    return _Records(order, ts_s, sess[order], kind[order], dev[order], group, dup, starts, ends,
                    g_sess, g_kind, g_dev, ooo.astype(np.int64))


@dataclass
class _ClockStats:
    records: int
    period_ns: float  # NaN with fewer than two distinct timestamps
    jitter_us: float
    gaps: int
    duplicates: int


def _clock_stats(ts_sorted: np.ndarray) -> _ClockStats:
    """Rate, jitter and gaps of one device's sorted timestamps (duplicates included)."""
    unique = ts_sorted[np.concatenate(([True], ts_sorted[1:] != ts_sorted[:-1]))] \
        if len(ts_sorted) else ts_sorted
    dups = len(ts_sorted) - len(unique)
    if len(unique) < 2:
        return _ClockStats(len(ts_sorted), math.nan, math.nan, 0, dups)
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
    return _ClockStats(len(ts_sorted), period, jitter, gaps, dups)


# ---------------------------------------------------------------------- clock-offset estimate


@dataclass
class _Offset:
    offset_us: float | None
    method: str | None
    confidence: float | None
    applied: bool
    note: str | None

    @property
    def applied_ns(self) -> int:
        return int(round(self.offset_us * 1e3)) if self.applied and self.offset_us else 0


def _yaw_from_heading(heading_deg: np.ndarray) -> np.ndarray:
    # Heading is clockwise from north, yaw counter-clockwise from east: opposite senses.
    return -np.unwrap(np.radians(heading_deg))


def _yaw_from_quaternion(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.unwrap(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def _rate(t_s: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    return np.gradient(yaw, t_s) if len(t_s) >= 2 else np.full(len(t_s), np.nan)


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


def _xcorr_offset(ref_t: np.ndarray, ref_y: np.ndarray, dev_t: np.ndarray, dev_y: np.ndarray,
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

    lag = (best - k) * h
    step = h / 2
    while True:
        for _ in range(8):  # hill-climb at this step, then fit a parabola through the peak
            cm, c0, cp = at(lag - step), at(lag), at(lag + step)
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
    return lag, at(lag), ""


# --------------------------------------------------------------------------------- matching


@dataclass
class _Match:
    nearest: np.ndarray  # sorted-record index of the nearest record, -1 when none
    dt_ns: np.ndarray  # nearest record's t_ref minus the frame's t_ref
    ok: np.ndarray  # within tolerance
    partner: np.ndarray  # the other bracketing record for interpolation, -1 when none
    weight: np.ndarray  # partner's share of the interpolated value
    source: np.ndarray  # per session code: the session whose records it uses, -1 none
    tol_ns: np.ndarray  # tolerance that applied to the nearest record (0 when none)


def _match(rec: _Records, tref: np.ndarray, cand_mask: np.ndarray, tol_ns: np.ndarray,
           f_sess: np.ndarray, f_t: np.ndarray, n_sess: int, period_ns: np.ndarray,
           max_gap: float | None) -> _Match:
    """Nearest candidate per frame in its session (null-session fallback), vectorised per
    session; with ``max_gap``, the partner that brackets the frame for interpolation."""
    null_code = n_sess - 1
    cand = np.flatnonzero(cand_mask)  # in (session, kind, device, time) order
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
    found = nearest >= 0
    tol = np.where(found, tol_ns[np.maximum(nearest, 0)], 0) if len(tol_ns) \
        else np.zeros(nf, dtype=np.int64)
    ok = found & (np.abs(dt) <= tol)
    partner = np.full(nf, -1, dtype=np.int64)
    weight = np.zeros(nf)
    if max_gap is not None and ok.any():
        # Neighbours of the chosen record among the same device's candidates.
        pos = np.searchsorted(cand, nearest[ok])
        step = np.where(dt[ok] < 0, 1, -1)
        other = pos + step
        inside = (other >= 0) & (other < len(cand)) & (dt[ok] != 0)
        other_rec = cand[np.clip(other, 0, len(cand) - 1)]
        same = inside & (rec.group[other_rec] == rec.group[nearest[ok]])
        span = np.abs(tref[other_rec] - tref[nearest[ok]])
        limit = max_gap * period_ns[rec.group[nearest[ok]]]
        use = same & (span <= limit)  # NaN period (a lone record) never interpolates
        p = np.where(use, other_rec, -1)
        partner[ok] = p
        with np.errstate(divide="ignore", invalid="ignore"):
            weight[ok] = np.where(use, np.abs(dt[ok]) / np.maximum(span, 1), 0.0)
    return _Match(nearest, dt, ok, partner, weight, source, tol)


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    return a + w * (b - a)


def _lerp_degrees(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    delta = (b - a + 180.0) % 360.0 - 180.0  # the short way round: 359 -> 1 passes 0
    return (a + w * delta) % 360.0


def _slerp(qa: np.ndarray, qb: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of N×4 quaternions, taking the short arc (q and -q agree)."""
    qa = qa / np.linalg.norm(qa, axis=1, keepdims=True)
    qb = qb / np.linalg.norm(qb, axis=1, keepdims=True)
    dot = np.sum(qa * qb, axis=1)
    qb = np.where(dot[:, None] < 0, -qb, qb)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        sin_t = np.sin(theta)
        wa = np.where(dot > 0.9995, 1 - w, np.sin((1 - w) * theta) / sin_t)
        wb = np.where(dot > 0.9995, w, np.sin(w * theta) / sin_t)
    q = wa[:, None] * qa + wb[:, None] * qb
    # A unit quaternion's component can land one ulp past 1 after normalising; consumers check.
    return np.clip(q / np.linalg.norm(q, axis=1, keepdims=True), -1.0, 1.0)


# ------------------------------------------------------------------------------------- fuse


def fuse(frames: pa.Table, sensors: pa.Table, config: FusionConfig = FusionConfig()
         ) -> FusionResult:
    """Align every camera frame with the IMU, GPS, LiDAR and pose records nearest in time.

    See the module docstring for the rules.

    Args:
        frames: one row per frame (columns in :data:`FRAME_COLUMNS`).
        sensors: the normalised sensor table (columns :data:`SENSOR_COLUMNS` at least).
        config: tolerances, interpolation and clock settings.

    Returns:
        :class:`FusionResult` with FUSED_SCHEMA, UNMATCHED_SCHEMA and CLOCK_SCHEMA tables.

    Raises:
        FusionError: a required column is missing, ``capture_time`` is not a timestamp, or a
            sensor row has no timestamp.
    """
    _require(frames, FRAME_COLUMNS, "frames")
    _require(sensors, SENSOR_COLUMNS, "sensors")
    counts: dict[str, int] = {}

    # --- sensor rows: codes and one sort
    s_sensor = pc.utf8_lower(_text(sensors, "sensor"))
    s_device = _text(sensors, "device_id")
    s_session = _text(sensors, "session_id")
    s_firmware = _text(sensors, "firmware")
    s_key = _text(sensors, "object_key")
    ts_col = sensors.column("timestamp_ns")
    if ts_col.null_count:
        raise FusionError(f"sensors: {ts_col.null_count} row(s) have a null timestamp_ns; the "
                          "normalised table never has one (read logs with read_sensor_log)")
    ts = ts_col.to_numpy(zero_copy_only=False).astype(np.int64)

    # --- frames: time, camera and session, from the camera row of the log when there is one
    ct = frames.column("capture_time")
    if not pa.types.is_timestamp(ct.type):
        raise FusionError(f"frames.capture_time must be a timestamp, found {ct.type}")
    nf_in = frames.num_rows
    f_time_file = ct.cast(pa.timestamp("ns", ct.type.tz)).cast(_I).combine_chunks() \
        if nf_in else pa.array([], _I)
    f_sha = _text(frames, "sha256")
    is_camera_row = pc.fill_null(pc.equal(s_sensor, CAMERA), False)
    cam_rows = np.flatnonzero(is_camera_row.to_numpy(zero_copy_only=False))
    cam_sha = pc.struct_field(pc.extract_regex(s_key.take(pa.array(cam_rows, _I)), _CAMERA_KEY_RE),
                              [0])
    link = pc.index_in(f_sha, value_set=cam_sha)  # first camera row (input order) per hash
    link_np = pc.fill_null(link, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    linked = link_np >= 0
    link_row = np.where(linked, cam_rows[np.maximum(link_np, 0)] if len(cam_rows) else 0, -1)
    link_mask = pa.array(linked)
    path_session = pc.struct_field(pc.extract_regex(_text(frames, "rel_path"), _SESSION_RE), [0])
    f_session = pc.if_else(link_mask, _take_text(s_session, link_row), path_session)
    f_camera = pc.if_else(link_mask, _take_text(s_device, link_row), _text(frames, "device_id"))
    f_camera_fw = _take_text(s_firmware, link_row)
    f_time = pc.if_else(link_mask, pa.array(np.where(linked, ts[np.maximum(link_row, 0)]
                                                     if len(ts) else 0, 0), _I), f_time_file)
    f_time_valid = pc.is_valid(f_time).to_numpy(zero_copy_only=False)
    f_time_np = pc.fill_null(f_time, 0).to_numpy(zero_copy_only=False).astype(np.int64)

    sessions = _vocab(s_session, f_session)
    n_sess = len(sessions) + 1  # + the null session
    devices = _vocab(s_device, f_camera)
    kinds = _vocab(s_sensor)
    firmwares = _vocab(s_firmware)
    sess = _codes(s_session, sessions, n_sess - 1)
    kind = _codes(s_sensor, kinds, 0)
    dev = _codes(s_device, devices, 0)
    fw = _codes(s_firmware, firmwares, -1)
    rec = _sort_records(ts, sess, kind, dev, max(len(kinds), 1), max(len(devices), 1))
    kind_names = kinds.to_pylist()
    dev_names = devices.to_pylist()
    sess_names = sessions.to_pylist() + [None]
    n_groups = len(rec.g_start)
    g_kind_name = [kind_names[k] for k in rec.g_kind]

    # --- clock statistics per (session, kind, device)
    stats = [_clock_stats(rec.ts[a:b]) for a, b in zip(rec.g_start, rec.g_end, strict=True)]
    period_ns = np.array([s.period_ns for s in stats], dtype=np.float64)

    # --- which rows carry what
    has_pose = np.zeros(len(ts), dtype=bool)
    for name in _QUATERNION + _POSITION:
        if name in sensors.column_names:
            has_pose |= pc.fill_null(pc.is_finite(sensors.column(name)), False) \
                .to_numpy(zero_copy_only=False)
    pose_sorted = has_pose[rec.row]
    g_has_pose = np.zeros(n_groups, dtype=bool)
    g_has_pose[np.unique(rec.group[pose_sorted])] = True

    # --- clock offsets per group
    offsets = _estimate_offsets(sensors, rec, g_kind_name, g_has_pose, stats, config,
                                dev_names, n_sess)
    offset_ns = np.array([o.applied_ns for o in offsets], dtype=np.int64)
    tref = rec.ts - offset_ns[rec.group] if len(rec.ts) else rec.ts

    # --- frames with a time
    timed = np.flatnonzero(f_time_valid)
    f_sess_all = _codes(f_session, sessions, n_sess - 1)
    f_dev_all = _codes(f_camera, devices, -1)
    cam_known = np.array([config.known_offsets_us.get(d, 0) for d in dev_names] + [0],
                         dtype=np.int64)
    f_cam_offset_us = cam_known[f_dev_all]  # -1 (null camera) picks the trailing 0
    f_sess = f_sess_all[timed]
    f_t_dev = f_time_np[timed]
    f_t = f_t_dev - f_cam_offset_us[timed] * 1000
    nt = len(timed)

    # --- matching per channel
    tol_by_kind = dict(config.tolerance_ms)
    channels = sorted(k for k in tol_by_kind if k != POSE)
    pose_active = bool(has_pose.any()) or POSE in tol_by_kind
    if pose_active:
        channels.append(POSE)
    kind_tol_ns = np.array([int(round(tol_by_kind.get(k, -1.0) * 1e6)) for k in kind_names]
                           + [-1], dtype=np.int64)
    usable = ~rec.dup
    matches: dict[str, _Match] = {}
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
        matches[ch] = _match(rec, tref, cand, tol, f_sess, f_t, n_sess, period_ns, gap)

    # --- values
    orig_rows = np.arange(nf_in)[timed]
    cols: dict[str, pa.Array] = {
        "sha256": f_sha.take(pa.array(orig_rows, _I)),
        "object_key": _text(frames, "object_key").take(pa.array(orig_rows, _I)),
        "rel_path": _text(frames, "rel_path").take(pa.array(orig_rows, _I)),
        "session_id": f_session.take(pa.array(orig_rows, _I)),
        "camera": f_camera.take(pa.array(orig_rows, _I)),
        "camera_firmware": f_camera_fw.take(pa.array(orig_rows, _I)),
        "time_source": pa.array(np.where(linked[timed], "sensor_log", "file_name"), _S),
        "frame_time_ns": pa.array(f_t_dev, _I),
        "frame_time_ref_ns": pa.array(f_t, _I),
        "camera_offset_us": pa.array(f_cam_offset_us[timed], _I),
    }

    def chosen(ch: str) -> tuple[np.ndarray, np.ndarray]:
        m = matches.get(ch)
        if m is None:
            return np.full(nt, -1, dtype=np.int64), np.zeros(nt, dtype=bool)
        return np.where(m.ok, m.nearest, -1), m.ok

    def device_cols(ch: str, prefix: str) -> np.ndarray:
        r, ok = chosen(ch)
        rows = np.where(ok, rec.row[np.maximum(r, 0)], -1) if len(rec.row) else r
        cols[f"{prefix}_device"] = _take_text(s_device, rows)
        dt_us = np.rint(matches[ch].dt_ns / 1e3) if ch in matches else np.zeros(nt)
        cols[f"{prefix}_dt_us"] = _int_array(dt_us, ok)
        return rows

    def partner_rows(ch: str) -> tuple[np.ndarray, np.ndarray]:
        m = matches.get(ch)
        if m is None:
            return np.full(nt, -1, dtype=np.int64), np.zeros(nt)
        p = m.partner
        return np.where(p >= 0, rec.row[np.maximum(p, 0)], -1) if len(rec.row) else p, m.weight

    # GPS: interpolated where a gap-free bracket exists.
    g_rows = device_cols("gps", "gps")
    g_part, g_w = partner_rows("gps")
    gps_vals = {c: _floats(sensors, c, g_rows) for c in GPS_VALUES}
    gps_part = {c: _floats(sensors, c, g_part) for c in GPS_VALUES}
    g_interp = (g_part >= 0) & np.isfinite(gps_part["lat"]) & np.isfinite(gps_part["lon"]) \
        & np.isfinite(gps_vals["lat"]) & np.isfinite(gps_vals["lon"])
    for c in GPS_VALUES:
        lerp = _lerp_degrees if c == "heading" else _lerp
        both = g_interp & np.isfinite(gps_part[c])
        mixed = lerp(gps_vals[c], np.where(both, gps_part[c], gps_vals[c]), g_w)
        gps_vals[c] = np.where(both, mixed, gps_vals[c])
        cols[c] = _float_array(gps_vals[c])
    g_ok = g_rows >= 0
    cols["gps_method"] = pa.array(np.where(g_interp, "interpolated", "nearest"), _S, mask=~g_ok)
    cols["geo_cell"] = _geohash_array(gps_vals["lat"], gps_vals["lon"], config.geo_precision)

    # IMU and LiDAR: nearest only (a sweep cannot be interpolated).
    i_rows = device_cols("imu", "imu")
    for c in IMU_VALUES:
        cols[c] = _float_array(_floats(sensors, c, i_rows))
    l_rows = device_cols("lidar", "lidar")
    cols["lidar_firmware"] = _take_text(s_firmware, l_rows)
    cols["lidar_object_key"] = _take_text(s_key, l_rows)

    # Pose: position linear, rotation slerp.
    p_rows = device_cols(POSE, "pose")
    p_part, p_w = partner_rows(POSE)
    pose = {c: _floats(sensors, c, p_rows) for c in POSE_COLUMNS}
    pose_p = {c: _floats(sensors, c, p_part) for c in POSE_COLUMNS}
    p_interp = (p_part >= 0) & np.all([np.isfinite(pose_p[c]) & np.isfinite(pose[c])
                                       for c in POSE_COLUMNS], axis=0) if nt \
        else np.zeros(0, dtype=bool)
    for c in _POSITION:
        pose[c] = np.where(p_interp, _lerp(pose[c], pose_p[c], p_w), pose[c])
    if p_interp.any():
        qa = np.stack([pose[c][p_interp] for c in _QUATERNION], axis=1)
        qb = np.stack([pose_p[c][p_interp] for c in _QUATERNION], axis=1)
        q = _slerp(qa, qb, p_w[p_interp])
        for i, c in enumerate(_QUATERNION):
            pose[c][p_interp] = q[:, i]
    for c in POSE_COLUMNS:
        cols[c] = _float_array(pose[c])
    cols["pose_method"] = pa.array(np.where(p_interp, "interpolated", "nearest"), _S,
                                   mask=~(p_rows >= 0))
    link_t = np.where(linked[timed], link_row[timed], -1)
    for c in CALIBRATION_COLUMNS:
        cols[c] = _float_array(_floats(sensors, c, link_t))

    # devices: JSON of device -> firmware per frame, built once per distinct combination.
    slots = [f_dev_all[timed], _codes(f_camera_fw, firmwares, -1)[timed]]
    for ch in channels:
        r, ok = chosen(ch)
        slots.append(np.where(ok, rec.dev[np.maximum(r, 0)], -1) if len(rec.dev) else r)
        slots.append(np.where(ok, fw[rec.row[np.maximum(r, 0)]], -1) if len(rec.row) else r)
    fw_names = firmwares.to_pylist()
    if nt:
        combos, inverse = np.unique(np.stack(slots, axis=1), axis=0, return_inverse=True)
        texts = []
        for combo in combos:
            used = {dev_names[d]: (fw_names[f] if f >= 0 else None)
                    for d, f in zip(combo[0::2], combo[1::2], strict=True) if d >= 0}
            texts.append(json.dumps(used, sort_keys=True, separators=(",", ":")))
        cols["devices"] = pa.array(texts, _S).take(pa.array(inverse.ravel(), _I))
    else:
        cols["devices"] = pa.array([], _S)
    miss = np.stack([~chosen(ch)[1] for ch in channels], axis=1) if channels \
        else np.zeros((nt, 0), dtype=bool)
    if nt and channels:
        flags, inverse = np.unique(miss, axis=0, return_inverse=True)
        texts = [",".join(ch for ch, f in zip(channels, row, strict=True) if f) for row in flags]
        cols["unmatched"] = pa.array(texts, _S).take(pa.array(inverse.ravel(), _I))
    else:
        cols["unmatched"] = pa.array([""] * nt, _S)
    fused = pa.table({name: cols[name] for name in FUSED_SCHEMA.names}, schema=FUSED_SCHEMA)
    untimed = np.flatnonzero(~f_time_valid)
    if len(untimed):
        # Kept as samples (a public dataset's images rarely carry a time): nothing is matched,
        # time_source says why, and unmatched names every kind.
        ui = pa.array(untimed, _I)
        n_untimed = len(untimed)
        extra = {name: pa.nulls(n_untimed, FUSED_SCHEMA.field(name).type)
                 for name in FUSED_SCHEMA.names}
        extra.update({
            "sha256": f_sha.take(ui), "object_key": _text(frames, "object_key").take(ui),
            "rel_path": _text(frames, "rel_path").take(ui), "session_id": f_session.take(ui),
            "camera": f_camera.take(ui), "camera_firmware": f_camera_fw.take(ui),
            "time_source": pa.array(["none"] * n_untimed, _S),
            "devices": pa.array(["{}"] * n_untimed, _S),
            "unmatched": pa.array([",".join(channels)] * n_untimed, _S),
        })
        fused = pa.concat_tables([fused, pa.table(extra, schema=FUSED_SCHEMA)])
    fused = fused.sort_by([("session_id", "ascending"), ("camera", "ascending"),
                           ("frame_time_ns", "ascending"), ("sha256", "ascending"),
                           ("rel_path", "ascending")])

    # --- unmatched: frames
    parts: list[pa.Table] = []
    no_time = np.flatnonzero(~f_time_valid)
    if len(no_time):
        idx = pa.array(no_time, _I)
        parts.append(_unmatched("frame", f_sha.take(idx), f_session.take(idx),
                                f_camera.take(idx), CAMERA, pa.nulls(len(no_time), _I),
                                "no_capture_time",
                                pa.array(["no time in the sensor log, the file name or EXIF"]
                                         * len(no_time), _S)))
    t_idx = pa.array(orig_rows, _I)
    for ch in channels:
        m = matches[ch]
        missing = np.flatnonzero(~m.ok)
        if not len(missing):
            continue
        mi = pa.array(missing, _I)
        none = m.nearest[missing] < 0
        far = pc.binary_join_element_wise(
            "nearest record ", _take_text(s_device, np.where(
                none, -1, rec.row[np.maximum(m.nearest[missing], 0)] if len(rec.row) else -1)),
            " is ", pc.cast(pa.array(np.round(m.dt_ns[missing] / 1e6, 3)), _S),
            " ms away (tolerance ", pc.cast(pa.array(m.tol_ns[missing] / 1e6), _S), " ms)", "")
        detail = pc.if_else(pa.array(none), pa.array(
            [f"no {ch} records in the session nor without a session"] * len(missing), _S), far)
        reason = pa.array(np.where(none, f"no_{ch}_records", f"no_{ch}_within_tolerance"), _S)
        parts.append(pa.table({
            "kind": pa.array(["frame"] * len(missing), _S),
            "id": f_sha.take(t_idx).take(mi),
            "session_id": f_session.take(t_idx).take(mi),
            "device_id": f_camera.take(t_idx).take(mi),
            "sensor": pa.array([ch] * len(missing), _S),
            "timestamp_ns": pa.array(f_t_dev[missing], _I),
            "reason": reason, "detail": detail,
        }, schema=UNMATCHED_SCHEMA))

    # --- unmatched: sensor records of matched kinds
    s_log = pc.fill_null(_text(sensors, "log_path"), "")
    record_kinds = [ch for ch in channels if ch != POSE and ch in kind_names]
    for ch in record_kinds:
        code = kind_names.index(ch)
        tol_ns = int(round(tol_by_kind[ch] * 1e6))
        of_kind = rec.kind == code
        m = matches[ch]
        # Frames served by each record session (its own frames, or fallers-back to null).
        src = m.source[f_sess] if nt else np.zeros(0, dtype=np.int64)
        lo = np.full(n_sess, np.iinfo(np.int64).max)
        hi = np.full(n_sess, np.iinfo(np.int64).min)
        served = src >= 0
        np.minimum.at(lo, src[served], f_t[served])
        np.maximum.at(hi, src[served], f_t[served])
        none = lo[rec.sess] > hi[rec.sess]
        early = tref < lo[rec.sess] - tol_ns
        late = tref > hi[rec.sess] + tol_ns
        reasons = [
            (of_kind & rec.dup, "duplicate_timestamp", None),
            (of_kind & ~rec.dup & none, "no_frames_in_session", None),
            (of_kind & ~rec.dup & ~none & early, "outside_camera_span", "before"),
            (of_kind & ~rec.dup & ~none & late, "outside_camera_span", "after"),
        ]
        for mask, reason, side in reasons:
            pos = np.flatnonzero(mask)
            if not len(pos):
                continue
            rows = pa.array(rec.row[pos], _I)
            n = len(pos)
            if reason == "duplicate_timestamp":
                detail = pa.array(["an earlier row of the device has the same timestamp; "
                                   "the first is kept"] * n, _S)
            elif reason == "no_frames_in_session":
                detail = pa.array(["no camera frame in the session uses this record"] * n, _S)
            else:
                edge = lo[rec.sess[pos]] if side == "before" else hi[rec.sess[pos]]
                gap_ms = np.round(np.abs(tref[pos] - edge) / 1e6, 3)
                detail = pc.binary_join_element_wise(
                    pc.cast(pa.array(gap_ms), _S),
                    f" ms {side} the session's {'first' if side == 'before' else 'last'} "
                    f"frame (tolerance {tol_by_kind[ch]:g} ms)", "")
            ident = pc.binary_join_element_wise(
                s_log.take(rows), "#", s_device.take(rows), "@",
                pc.cast(pa.array(rec.ts[pos], _I), _S), "")
            parts.append(_unmatched("sensor_record", ident, s_session.take(rows),
                                    s_device.take(rows), ch, pa.array(rec.ts[pos], _I), reason,
                                    detail))
    unmatched = pa.concat_tables(parts) if parts else UNMATCHED_SCHEMA.empty_table()
    unmatched = unmatched.sort_by([("kind", "ascending"), ("session_id", "ascending"),
                                   ("device_id", "ascending"), ("timestamp_ns", "ascending"),
                                   ("sensor", "ascending"), ("reason", "ascending"),
                                   ("id", "ascending")])

    # --- clock report
    clocks = _clock_table(rec, stats, offsets, g_kind_name, dev_names, sess_names, s_firmware,
                          f_sess, f_dev_all[timed], f_t_dev,
                          _codes(f_camera_fw, firmwares, -1)[timed], firmwares.to_pylist(),
                          config)

    # --- counts
    counts["frames"] = nf_in
    counts["frames_timed"] = nt
    counts["frames_no_time"] = len(no_time)
    counts["frames_time_from_sensor_log"] = int(linked[timed].sum())
    counts["frames_fused"] = int((~miss.any(axis=1)).sum()) if nt else 0
    for ch in channels:
        counts[f"frames_unmatched_{ch}"] = int((~matches[ch].ok).sum())
    counts["frames_interpolated_gps"] = int(g_interp.sum())
    counts["frames_interpolated_pose"] = int(p_interp.sum()) if nt else 0
    counts["sensor_records"] = sensors.num_rows
    matched_kind = np.isin(rec.kind, [kind_names.index(k) for k in record_kinds]) \
        if record_kinds else np.zeros(len(rec.kind), dtype=bool)
    counts["sensor_records_matched_kinds"] = int(matched_kind.sum())
    counts["sensor_records_camera"] = len(cam_rows)
    counts["sensor_records_ignored"] = sensors.num_rows - int(matched_kind.sum()) - len(cam_rows)
    counts["sensor_records_unmatched"] = int(pc.sum(pc.equal(
        unmatched["kind"], "sensor_record")).as_py() or 0)
    counts["duplicates"] = int(rec.dup.sum())
    counts["out_of_order"] = int(rec.g_out_of_order.sum())
    counts["offsets_estimated"] = sum(o.method == "motion_xcorr" for o in offsets)
    counts["offsets_applied"] = sum(o.applied and o.method != "reference" for o in offsets)
    counts["sessions"] = len(sessions)
    return FusionResult(fused, unmatched, clocks, counts)


def _unmatched(kind: str, ident: pa.Array, session: pa.Array, device: pa.Array, sensor: str,
               ts: pa.Array, reason: str, detail: pa.Array) -> pa.Table:
    n = len(ident)
    return pa.table({"kind": pa.array([kind] * n, _S), "id": ident, "session_id": session,
                     "device_id": device, "sensor": pa.array([sensor] * n, _S),
                     "timestamp_ns": ts, "reason": pa.array([reason] * n, _S),
                     "detail": detail}, schema=UNMATCHED_SCHEMA)


def _estimate_offsets(sensors: pa.Table, rec: _Records, g_kind: list[str],
                      g_has_pose: np.ndarray, stats: list[_ClockStats], config: FusionConfig,
                      dev_names: list[str], n_sess: int) -> list[_Offset]:
    """Offset of every (session, kind, device) group: known, reference, estimated or none."""
    n = len(rec.g_start)
    out: list[_Offset | None] = [None] * n
    ref_kind = config.reference_sensor
    for g in range(n):
        known = config.known_offsets_us.get(dev_names[rec.g_dev[g]])
        if known is not None:
            out[g] = _Offset(float(known), "known", None, True, "from rig calibration")
        elif g_kind[g] == ref_kind:
            out[g] = _Offset(0.0, "reference", None, True, None)

    def signal(g: int) -> tuple[np.ndarray, np.ndarray] | None:
        a, b = rec.g_start[g], rec.g_end[g]
        keep = ~rec.dup[a:b]
        rows = rec.row[a:b][keep]
        t_s = rec.ts[a:b][keep]
        if g_kind[g] == "gps" and "heading" in sensors.column_names:
            h = _floats(sensors, "heading", rows)
            ok = np.isfinite(h)
            if ok.sum() >= 3:
                t = (t_s[ok] - rec.ts[a]) / 1e9
                return t_s[ok], _rate(t, _yaw_from_heading(h[ok]))
        if g_kind[g] == "imu" and "gz" in sensors.column_names:
            gz = _floats(sensors, "gz", rows)
            ok = np.isfinite(gz)
            if ok.sum() >= 3:
                return t_s[ok], gz[ok]
        if g_has_pose[g]:
            q = np.stack([_floats(sensors, c, rows) for c in _QUATERNION])
            ok = np.all(np.isfinite(q), axis=0)
            if ok.sum() >= 3:
                t = (t_s[ok] - rec.ts[a]) / 1e9
                return t_s[ok], _rate(t, _yaw_from_quaternion(q[:, ok]))
        return None

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
            if out[g] is not None:
                continue
            if g_kind[g] == CAMERA or (g_kind[g] != "imu" and not g_has_pose[g]):
                out[g] = _Offset(None, None, None, False, "no motion signal")
                continue
            if not config.estimate_offsets:
                out[g] = _Offset(None, None, None, False, "estimate_offsets is off")
                continue
            if ref is None:
                out[g] = _Offset(None, None, None, False,
                                 f"no {ref_kind} device in the session to compare with")
                continue
            if ref_signal is None:
                out[g] = _Offset(None, None, None, False,
                                 f"the {ref_kind} reference has no motion signal")
                continue
            mine = signal(g)
            if mine is None:
                out[g] = _Offset(None, None, None, False, "no motion signal")
                continue
            origin = min(int(ref_signal[0][0]), int(mine[0][0]))
            lag, conf, note = _xcorr_offset(
                (ref_signal[0] - ref_shift - origin) / 1e9, ref_signal[1],
                (mine[0] - origin) / 1e9, mine[1], config.max_offset_ms / 1e3, ref_kind)
            if lag is None:
                out[g] = _Offset(None, None, conf, False, note)
                continue
            applied = conf is not None and conf >= config.min_offset_confidence
            out[g] = _Offset(lag * 1e6, "motion_xcorr", conf, applied,
                             None if applied else
                             f"confidence below min_offset_confidence "
                             f"({config.min_offset_confidence:g}); not applied")
    return [o if o is not None else _Offset(None, None, None, False, None) for o in out]


def _clock_table(rec: _Records, stats: list[_ClockStats], offsets: list[_Offset],
                 g_kind: list[str], dev_names: list[str], sess_names: list[str | None],
                 s_firmware: pa.Array, f_sess: np.ndarray, f_dev: np.ndarray,
                 f_t_dev: np.ndarray, f_fw: np.ndarray, fw_names: list[str],
                 config: FusionConfig) -> pa.Table:
    rows: list[dict[str, object]] = []

    def row(session: str | None, device: str, sensor: str, firmware: str | None,
            st: _ClockStats, ooo: int, off: _Offset) -> dict[str, object]:
        period_us = st.period_ns / 1e3
        return {
            "session_id": session, "device_id": device, "sensor": sensor, "firmware": firmware,
            "records": st.records, "rate_hz": 1e6 / period_us if period_us > 0 else None,
            "period_us": None if math.isnan(period_us) else period_us,
            "jitter_us": None if math.isnan(st.jitter_us) else st.jitter_us,
            "gaps": st.gaps, "duplicates": st.duplicates, "out_of_order": ooo,
            "offset_us": off.offset_us, "offset_method": off.method,
            "offset_confidence": off.confidence, "offset_applied": off.applied,
            "note": off.note or None,
        }

    # One firmware per device: the first non-null in time order.
    fw_sorted = s_firmware.take(pa.array(rec.row, _I)) if len(rec.row) else s_firmware
    fw_valid = pc.is_valid(fw_sorted).to_numpy(zero_copy_only=False)
    for g in range(len(rec.g_start)):
        if g_kind[g] == CAMERA:
            continue  # cameras are reported from their frames below
        a, b = rec.g_start[g], rec.g_end[g]
        first = a + int(np.argmax(fw_valid[a:b])) if fw_valid[a:b].any() else -1
        firmware = fw_sorted[first].as_py() if first >= 0 else None
        rows.append(row(sess_names[rec.g_sess[g]], dev_names[rec.g_dev[g]], g_kind[g],
                        firmware, stats[g], int(rec.g_out_of_order[g]), offsets[g]))
    # Cameras: from the frames' times; a frame table has no capture order, so out_of_order is 0.
    valid_dev = f_dev >= 0
    if valid_dev.any():
        key = f_sess[valid_dev] * (len(dev_names) + 1) + f_dev[valid_dev]
        t = f_t_dev[valid_dev]
        fw_code = f_fw[valid_dev]
        order = np.lexsort((t, key))
        key, t, fw_code = key[order], t[order], fw_code[order]
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        ends = np.append(starts[1:], len(key))
        for a, b in zip(starts, ends, strict=True):
            s, d = divmod(int(key[a]), len(dev_names) + 1)
            device = dev_names[d]
            known_fw = fw_code[a:b][fw_code[a:b] >= 0]
            known = config.known_offsets_us.get(device)
            off = _Offset(float(known), "known", None, True, "from rig calibration") \
                if known is not None else _Offset(None, None, None, False, "no motion signal")
            rows.append(row(sess_names[s], device, CAMERA,
                            fw_names[known_fw[0]] if len(known_fw) else None,
                            _clock_stats(t[a:b]), 0, off))
    table = pa.Table.from_pylist(rows, schema=CLOCK_SCHEMA) if rows \
        else CLOCK_SCHEMA.empty_table()
    return table.sort_by([("session_id", "ascending"), ("device_id", "ascending"),
                          ("sensor", "ascending")])
