"""The two tables that explain a fusion: what could not be matched, with the reason
(UNMATCHED_SCHEMA), and every device's clock (CLOCK_SCHEMA)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.fusion.clocks import ClockStats, clock_stats
from dataops_cv.lib.fusion.config import CAMERA, CLOCK_SCHEMA, UNMATCHED_SCHEMA, FusionConfig
from dataops_cv.lib.fusion.frames import PlacedFrames, TimedFrames
from dataops_cv.lib.fusion.matching import Match, record_kinds
from dataops_cv.lib.fusion.offsets import Offset, known_offset
from dataops_cv.lib.fusion.records import Records, SensorColumns, Vocabulary
from dataops_cv.lib.fusion.tables import string_column, take_strings

_S, _I = pa.string(), pa.int64()


def unmatched_table(sensors: pa.Table, cols: SensorColumns, placed: PlacedFrames,
                    timed: TimedFrames, rec: Records, tref: np.ndarray,
                    matches: dict[str, Match], vocab: Vocabulary, config: FusionConfig
                    ) -> pa.Table:
    """Frames without a time or without a record of a channel, and records of matched kinds
    that no frame could use (duplicates, sessions without frames, outside the frames' span)."""
    parts = _frame_parts(placed, timed, rec, matches, cols.device)
    parts += _record_parts(sensors, cols, timed, rec, tref, matches, vocab, config)
    unmatched = pa.concat_tables(parts) if parts else UNMATCHED_SCHEMA.empty_table()
    return unmatched.sort_by([("kind", "ascending"), ("session_id", "ascending"),
                              ("device_id", "ascending"), ("timestamp_ns", "ascending"),
                              ("sensor", "ascending"), ("reason", "ascending"),
                              ("id", "ascending")])


def _unmatched(kind: str, ident: pa.Array, session: pa.Array, device: pa.Array, sensor: str,
               ts: pa.Array, reason: str, detail: pa.Array) -> pa.Table:
    n = len(ident)
    return pa.table({"kind": pa.array([kind] * n, _S), "id": ident, "session_id": session,
                     "device_id": device, "sensor": pa.array([sensor] * n, _S),
                     "timestamp_ns": ts, "reason": pa.array([reason] * n, _S),
                     "detail": detail}, schema=UNMATCHED_SCHEMA)


def _frame_parts(placed: PlacedFrames, timed: TimedFrames, rec: Records,
                 matches: dict[str, Match], device: pa.Array) -> list[pa.Table]:
    parts: list[pa.Table] = []
    no_time = np.flatnonzero(~placed.time_valid)
    if len(no_time):
        idx = pa.array(no_time, _I)
        parts.append(_unmatched("frame", placed.sha.take(idx), placed.session.take(idx),
                                placed.camera.take(idx), CAMERA, pa.nulls(len(no_time), _I),
                                "no_capture_time",
                                pa.array(["no time in the sensor log, the file name or EXIF"]
                                         * len(no_time), _S)))
    for ch, m in matches.items():
        missing = np.flatnonzero(~m.ok)
        if len(missing):
            parts.append(_channel_misses(ch, m, missing, placed, timed, rec, device))
    return parts


def _channel_misses(ch: str, m: Match, missing: np.ndarray, placed: PlacedFrames,
                    timed: TimedFrames, rec: Records, device: pa.Array) -> pa.Table:
    """Timed frames (``missing``) without an accepted record of ``ch``, with the nearest."""
    t_idx = pa.array(timed.rows, _I)
    mi = pa.array(missing, _I)
    none = m.nearest[missing] < 0
    far = pc.binary_join_element_wise(
        "nearest record ", take_strings(device, np.where(
            none, -1, rec.row[np.maximum(m.nearest[missing], 0)] if len(rec.row) else -1)),
        " is ", pc.cast(pa.array(np.round(m.dt_ns[missing] / 1e6, 3)), _S),
        " ms away (tolerance ", pc.cast(pa.array(m.tol_ns[missing] / 1e6), _S), " ms)", "")
    detail = pc.if_else(pa.array(none), pa.array(
        [f"no {ch} records in the session nor without a session"] * len(missing), _S), far)
    reason = pa.array(np.where(none, f"no_{ch}_records", f"no_{ch}_within_tolerance"), _S)
    return pa.table({
        "kind": pa.array(["frame"] * len(missing), _S),
        "id": placed.sha.take(t_idx).take(mi),
        "session_id": placed.session.take(t_idx).take(mi),
        "device_id": placed.camera.take(t_idx).take(mi),
        "sensor": pa.array([ch] * len(missing), _S),
        "timestamp_ns": pa.array(timed.t_dev[missing], _I),
        "reason": reason, "detail": detail,
    }, schema=UNMATCHED_SCHEMA)


def _served_span(m: Match, timed: TimedFrames, n_sess: int) -> tuple[np.ndarray, np.ndarray]:
    """Per record session: first and last reference time of the frames it serves (its own
    frames, or fallers-back to the null session); lo > hi where it serves none."""
    src = m.source[timed.sess] if timed.n else np.zeros(0, dtype=np.int64)
    lo = np.full(n_sess, np.iinfo(np.int64).max)
    hi = np.full(n_sess, np.iinfo(np.int64).min)
    served = src >= 0
    np.minimum.at(lo, src[served], timed.t[served])
    np.maximum.at(hi, src[served], timed.t[served])
    return lo, hi


def _record_parts(sensors: pa.Table, cols: SensorColumns, timed: TimedFrames, rec: Records,
                  tref: np.ndarray, matches: dict[str, Match], vocab: Vocabulary,
                  config: FusionConfig) -> list[pa.Table]:
    parts: list[pa.Table] = []
    s_log = pc.fill_null(string_column(sensors, "log_path"), "")
    tol_by_kind = dict(config.tolerance_ms)
    for ch in record_kinds(matches, vocab.kind_names):
        tol_ns = int(round(tol_by_kind[ch] * 1e6))
        of_kind = rec.kind == vocab.kind_names.index(ch)
        lo, hi = _served_span(matches[ch], timed, vocab.n_sess)
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
            edge = None if side is None else (lo if side == "before" else hi)[rec.sess[pos]]
            detail = _record_detail(reason, side, tref[pos], edge, tol_by_kind[ch])
            ident = pc.binary_join_element_wise(
                s_log.take(rows), "#", cols.device.take(rows), "@",
                pc.cast(pa.array(rec.ts[pos], _I), _S), "")
            parts.append(_unmatched("sensor_record", ident, cols.session.take(rows),
                                    cols.device.take(rows), ch, pa.array(rec.ts[pos], _I),
                                    reason, detail))
    return parts


def _record_detail(reason: str, side: str | None, tref: np.ndarray, edge: np.ndarray | None,
                   tol_ms: float) -> pa.Array:
    n = len(tref)
    if reason == "duplicate_timestamp":
        return pa.array(["an earlier row of the device has the same timestamp; "
                         "the first is kept"] * n, _S)
    if reason == "no_frames_in_session":
        return pa.array(["no camera frame in the session uses this record"] * n, _S)
    gap_ms = np.round(np.abs(tref - edge) / 1e6, 3)
    return pc.binary_join_element_wise(
        pc.cast(pa.array(gap_ms), _S),
        f" ms {side} the session's {'first' if side == 'before' else 'last'} "
        f"frame (tolerance {tol_ms:g} ms)", "")


def clock_table(rec: Records, stats: list[ClockStats], offsets: list[Offset], g_kind: list[str],
                vocab: Vocabulary, firmware: pa.Array, timed: TimedFrames,
                config: FusionConfig) -> pa.Table:
    """One CLOCK_SCHEMA row per (session, device): sensor groups from their records, cameras
    from their frames' times."""
    rows = _sensor_clock_rows(rec, stats, offsets, g_kind, vocab, firmware)
    rows += _camera_clock_rows(timed, vocab, config)
    table = pa.Table.from_pylist(rows, schema=CLOCK_SCHEMA) if rows \
        else CLOCK_SCHEMA.empty_table()
    return table.sort_by([("session_id", "ascending"), ("device_id", "ascending"),
                          ("sensor", "ascending")])


def _clock_row(session: str | None, device: str, sensor: str, firmware: str | None,
               st: ClockStats, ooo: int, off: Offset) -> dict[str, object]:
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


def _sensor_clock_rows(rec: Records, stats: list[ClockStats], offsets: list[Offset],
                       g_kind: list[str], vocab: Vocabulary, firmware: pa.Array
                       ) -> list[dict[str, object]]:
    rows = []
    # One firmware per device: the first non-null in time order.
    fw_sorted = firmware.take(pa.array(rec.row, _I)) if len(rec.row) else firmware
    fw_valid = pc.is_valid(fw_sorted).to_numpy(zero_copy_only=False)
    for g in range(len(rec.g_start)):
        if g_kind[g] == CAMERA:
            continue  # cameras are reported from their frames
        a, b = rec.g_start[g], rec.g_end[g]
        first = a + int(np.argmax(fw_valid[a:b])) if fw_valid[a:b].any() else -1
        fw = fw_sorted[first].as_py() if first >= 0 else None
        rows.append(_clock_row(vocab.sess_names[rec.g_sess[g]], vocab.dev_names[rec.g_dev[g]],
                               g_kind[g], fw, stats[g], int(rec.g_out_of_order[g]), offsets[g]))
    return rows


def _camera_clock_rows(timed: TimedFrames, vocab: Vocabulary, config: FusionConfig
                       ) -> list[dict[str, object]]:
    """Cameras from their frames' times; a frame table has no capture order, so out_of_order
    is 0."""
    rows: list[dict[str, object]] = []
    valid_dev = timed.dev >= 0
    if not valid_dev.any():
        return rows
    n_dev = len(vocab.dev_names)
    key = timed.sess[valid_dev] * (n_dev + 1) + timed.dev[valid_dev]
    t = timed.t_dev[valid_dev]
    fw_code = timed.fw[valid_dev]
    order = np.lexsort((t, key))
    key, t, fw_code = key[order], t[order], fw_code[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    ends = np.append(starts[1:], len(key))
    for a, b in zip(starts, ends, strict=True):
        s, d = divmod(int(key[a]), n_dev + 1)
        device = vocab.dev_names[d]
        known_fw = fw_code[a:b][fw_code[a:b] >= 0]
        off = known_offset(device, config)
        if off is None:
            off = Offset(None, None, None, False, "no motion signal")
        rows.append(_clock_row(vocab.sess_names[s], device, CAMERA,
                               vocab.fw_names[known_fw[0]] if len(known_fw) else None,
                               clock_stats(t[a:b]), 0, off))
    return rows
