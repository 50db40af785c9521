"""Sensor rows read once, coded by session, kind and device, and sorted into per-device groups.

A group is one (session, kind, device); within it rows are in timestamp order, equal timestamps
in input order, so the first of a duplicate is the one kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.fusion.config import POSITION, QUATERNION, FusionError
from dataops_cv.lib.fusion.tables import codes_in, sorted_vocab, string_column


@dataclass
class SensorColumns:
    """The columns of the sensor table fusion reads by row, in input order."""

    sensor: pa.Array  # kind, lower-cased
    device: pa.Array
    session: pa.Array
    firmware: pa.Array
    object_key: pa.Array
    ts: np.ndarray  # timestamp_ns, device clock


def read_sensor_columns(sensors: pa.Table) -> SensorColumns:
    """The kind, device, session, firmware, object key and timestamp of every sensor row.

    Raises:
        FusionError: a row has a null ``timestamp_ns``.
    """
    sensor = pc.utf8_lower(string_column(sensors, "sensor"))
    device = string_column(sensors, "device_id")
    session = string_column(sensors, "session_id")
    firmware = string_column(sensors, "firmware")
    object_key = string_column(sensors, "object_key")
    ts_col = sensors.column("timestamp_ns")
    if ts_col.null_count:
        raise FusionError(f"sensors: {ts_col.null_count} row(s) have a null timestamp_ns; the "
                          "normalised table never has one (read logs with read_sensor_log)")
    ts = ts_col.to_numpy(zero_copy_only=False).astype(np.int64)
    return SensorColumns(sensor, device, session, firmware, object_key, ts)


@dataclass
class Vocabulary:
    """Sorted distinct sessions, devices, kinds and firmwares; codes index into them."""

    sessions: pa.Array
    devices: pa.Array
    kinds: pa.Array
    firmwares: pa.Array
    n_sess: int = field(init=False)  # + the null session, the last code
    kind_names: list[str] = field(init=False)
    dev_names: list[str] = field(init=False)
    sess_names: list[str | None] = field(init=False)
    fw_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.n_sess = len(self.sessions) + 1
        self.kind_names = self.kinds.to_pylist()
        self.dev_names = self.devices.to_pylist()
        self.sess_names = self.sessions.to_pylist() + [None]
        self.fw_names = self.firmwares.to_pylist()


def vocabulary(cols: SensorColumns, frame_sessions: pa.Array, frame_cameras: pa.Array
               ) -> Vocabulary:
    """The vocabularies of the sensor rows and the frames together."""
    return Vocabulary(sorted_vocab(cols.session, frame_sessions),
                      sorted_vocab(cols.device, frame_cameras),
                      sorted_vocab(cols.sensor), sorted_vocab(cols.firmware))


@dataclass
class Records:
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


def code_records(cols: SensorColumns, vocab: Vocabulary) -> Records:
    """The sensor rows coded against ``vocab`` and sorted (:func:`sort_records`)."""
    sess = codes_in(cols.session, vocab.sessions, vocab.n_sess - 1)
    kind = codes_in(cols.sensor, vocab.kinds, 0)
    dev = codes_in(cols.device, vocab.devices, 0)
    return sort_records(cols.ts, sess, kind, dev, max(len(vocab.kinds), 1),
                        max(len(vocab.devices), 1))


def sort_records(ts: np.ndarray, sess: np.ndarray, kind: np.ndarray, dev: np.ndarray,
                 n_kind: int, n_dev: int) -> Records:
    """One stable sort of all rows into groups, with duplicates and out-of-order rows marked."""
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
    return Records(order, ts_s, sess[order], kind[order], dev[order], group, dup, starts, ends,
                   g_sess, g_kind, g_dev, ooo.astype(np.int64))


def pose_rows(sensors: pa.Table) -> np.ndarray:
    """Per input row: whether it carries any finite pose value."""
    has_pose = np.zeros(sensors.num_rows, dtype=bool)
    for name in QUATERNION + POSITION:
        if name in sensors.column_names:
            has_pose |= pc.fill_null(pc.is_finite(sensors.column(name)), False) \
                .to_numpy(zero_copy_only=False)
    return has_pose


def groups_with(rec: Records, sorted_mask: np.ndarray) -> np.ndarray:
    """Per group: whether any of its (sorted) rows is set in ``sorted_mask``."""
    out = np.zeros(len(rec.g_start), dtype=bool)
    out[np.unique(rec.group[sorted_mask])] = True
    return out
