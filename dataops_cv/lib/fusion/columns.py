"""The fused table: one row per frame with the values of its matched records -- GPS and pose
interpolated where a gap-free bracket exists, IMU and LiDAR nearest only -- the devices it used
and the channels it missed; frames without a time are kept with nothing matched."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dataops_cv.lib.acquisition.sensor_logs.format import CALIBRATION_COLUMNS, POSE_COLUMNS
from dataops_cv.lib.fusion.config import (
    FUSED_SCHEMA,
    GPS_VALUES,
    IMU_VALUES,
    POSE,
    POSITION,
    QUATERNION,
)
from dataops_cv.lib.fusion.frames import PlacedFrames, TimedFrames
from dataops_cv.lib.fusion.geohash import geohash_array
from dataops_cv.lib.fusion.interpolate import lerp, lerp_degrees, slerp
from dataops_cv.lib.fusion.matching import Match, chosen, missing_matrix
from dataops_cv.lib.fusion.records import Records, SensorColumns, Vocabulary
from dataops_cv.lib.fusion.tables import (
    codes_in,
    float_array,
    floats_at,
    int_array,
    take_strings,
)

_S, _I = pa.string(), pa.int64()
Columns = dict[str, pa.Array]


@dataclass
class _Picks:
    """The accepted record of every channel per timed frame, as sensor-table rows."""

    rec: Records
    matches: dict[str, Match]
    n: int

    def rows(self, ch: str) -> tuple[np.ndarray, np.ndarray]:
        """(input row of the accepted record or -1, accepted) per frame."""
        r, ok = chosen(self.matches, ch, self.n)
        return (np.where(ok, self.rec.row[np.maximum(r, 0)], -1) if len(self.rec.row) else r), ok

    def dt_us(self, ch: str) -> np.ndarray:
        """The nearest record's dt in µs per frame (0 when the channel is not matched)."""
        return np.rint(self.matches[ch].dt_ns / 1e3) if ch in self.matches else np.zeros(self.n)

    def partners(self, ch: str) -> tuple[np.ndarray, np.ndarray]:
        """(input row of the interpolation partner or -1, its weight) per frame."""
        m = self.matches.get(ch)
        if m is None:
            return np.full(self.n, -1, dtype=np.int64), np.zeros(self.n)
        p = m.partner
        return np.where(p >= 0, self.rec.row[np.maximum(p, 0)], -1) if len(self.rec.row) else p, \
            m.weight


def fused_table(sensors: pa.Table, cols: SensorColumns, placed: PlacedFrames,
                timed: TimedFrames, rec: Records, matches: dict[str, Match], vocab: Vocabulary,
                geo_precision: int) -> tuple[pa.Table, int, int]:
    """The FUSED_SCHEMA table of all frames, sorted, and how many frames had their GPS and
    their pose interpolated."""
    picks = _Picks(rec, matches, timed.n)
    out = _frame_columns(placed, timed)
    g_interp = _gps_columns(out, sensors, picks, cols.device, geo_precision)
    _imu_lidar_columns(out, sensors, picks, cols)
    p_interp = _pose_columns(out, sensors, picks, cols.device)
    link_t = np.where(placed.linked[timed.rows], placed.link_row[timed.rows], -1)
    for c in CALIBRATION_COLUMNS:
        out[c] = float_array(floats_at(sensors, c, link_t))
    out["devices"] = _devices(picks, cols, timed, vocab)
    out["unmatched"] = _missed(missing_matrix(matches, timed.n), list(matches))
    fused = pa.table({name: out[name] for name in FUSED_SCHEMA.names}, schema=FUSED_SCHEMA)
    untimed = np.flatnonzero(~placed.time_valid)
    if len(untimed):
        fused = pa.concat_tables([fused, _untimed_rows(placed, untimed, list(matches))])
    fused = fused.sort_by([("session_id", "ascending"), ("camera", "ascending"),
                           ("frame_time_ns", "ascending"), ("sha256", "ascending"),
                           ("rel_path", "ascending")])
    return fused, int(g_interp.sum()), int(p_interp.sum()) if timed.n else 0


def _frame_columns(placed: PlacedFrames, timed: TimedFrames) -> Columns:
    idx = pa.array(timed.rows, _I)
    return {
        "sha256": placed.sha.take(idx),
        "object_key": placed.object_key.take(idx),
        "rel_path": placed.rel_path.take(idx),
        "session_id": placed.session.take(idx),
        "camera": placed.camera.take(idx),
        "camera_firmware": placed.camera_fw.take(idx),
        "time_source": pa.array(np.where(placed.linked[timed.rows], "sensor_log", "file_name"),
                                _S),
        "frame_time_ns": pa.array(timed.t_dev, _I),
        "frame_time_ref_ns": pa.array(timed.t, _I),
        "camera_offset_us": pa.array(timed.camera_offset_us, _I),
    }


def _device_columns(out: Columns, picks: _Picks, ch: str, prefix: str, device: pa.Array
                    ) -> np.ndarray:
    """``<prefix>_device`` and ``<prefix>_dt_us``; returns the accepted rows."""
    rows, ok = picks.rows(ch)
    out[f"{prefix}_device"] = take_strings(device, rows)
    out[f"{prefix}_dt_us"] = int_array(picks.dt_us(ch), ok)
    return rows


def _gps_columns(out: Columns, sensors: pa.Table, picks: _Picks, device: pa.Array,
                 geo_precision: int) -> np.ndarray:
    """GPS values, interpolated where a gap-free bracket exists, and ``geo_cell``; returns
    which frames were interpolated."""
    g_rows = _device_columns(out, picks, "gps", "gps", device)
    g_part, g_w = picks.partners("gps")
    gps_vals = {c: floats_at(sensors, c, g_rows) for c in GPS_VALUES}
    gps_part = {c: floats_at(sensors, c, g_part) for c in GPS_VALUES}
    g_interp = (g_part >= 0) & np.isfinite(gps_part["lat"]) & np.isfinite(gps_part["lon"]) \
        & np.isfinite(gps_vals["lat"]) & np.isfinite(gps_vals["lon"])
    for c in GPS_VALUES:
        mix = lerp_degrees if c == "heading" else lerp
        both = g_interp & np.isfinite(gps_part[c])
        mixed = mix(gps_vals[c], np.where(both, gps_part[c], gps_vals[c]), g_w)
        gps_vals[c] = np.where(both, mixed, gps_vals[c])
        out[c] = float_array(gps_vals[c])
    g_ok = g_rows >= 0
    out["gps_method"] = pa.array(np.where(g_interp, "interpolated", "nearest"), _S, mask=~g_ok)
    out["geo_cell"] = geohash_array(gps_vals["lat"], gps_vals["lon"], geo_precision)
    return g_interp


def _imu_lidar_columns(out: Columns, sensors: pa.Table, picks: _Picks, cols: SensorColumns
                       ) -> None:
    """IMU values and the LiDAR sweep: nearest only (a sweep cannot be interpolated)."""
    i_rows = _device_columns(out, picks, "imu", "imu", cols.device)
    for c in IMU_VALUES:
        out[c] = float_array(floats_at(sensors, c, i_rows))
    l_rows = _device_columns(out, picks, "lidar", "lidar", cols.device)
    out["lidar_firmware"] = take_strings(cols.firmware, l_rows)
    out["lidar_object_key"] = take_strings(cols.object_key, l_rows)


def _pose_columns(out: Columns, sensors: pa.Table, picks: _Picks, device: pa.Array
                  ) -> np.ndarray:
    """The ego pose: position linear, rotation slerp; returns which frames were interpolated."""
    nt = picks.n
    p_rows = _device_columns(out, picks, POSE, "pose", device)
    p_part, p_w = picks.partners(POSE)
    pose = {c: floats_at(sensors, c, p_rows) for c in POSE_COLUMNS}
    pose_p = {c: floats_at(sensors, c, p_part) for c in POSE_COLUMNS}
    p_interp = (p_part >= 0) & np.all([np.isfinite(pose_p[c]) & np.isfinite(pose[c])
                                       for c in POSE_COLUMNS], axis=0) if nt \
        else np.zeros(0, dtype=bool)
    for c in POSITION:
        pose[c] = np.where(p_interp, lerp(pose[c], pose_p[c], p_w), pose[c])
    if p_interp.any():
        qa = np.stack([pose[c][p_interp] for c in QUATERNION], axis=1)
        qb = np.stack([pose_p[c][p_interp] for c in QUATERNION], axis=1)
        q = slerp(qa, qb, p_w[p_interp])
        for i, c in enumerate(QUATERNION):
            pose[c][p_interp] = q[:, i]
    for c in POSE_COLUMNS:
        out[c] = float_array(pose[c])
    out["pose_method"] = pa.array(np.where(p_interp, "interpolated", "nearest"), _S,
                                  mask=~(p_rows >= 0))
    return p_interp


def _devices(picks: _Picks, cols: SensorColumns, timed: TimedFrames, vocab: Vocabulary
             ) -> pa.Array:
    """JSON of device -> firmware per frame, built once per distinct combination."""
    rec = picks.rec
    fw = codes_in(cols.firmware, vocab.firmwares, -1)
    slots = [timed.dev, timed.fw]
    for ch in picks.matches:
        r, ok = chosen(picks.matches, ch, picks.n)
        slots.append(np.where(ok, rec.dev[np.maximum(r, 0)], -1) if len(rec.dev) else r)
        slots.append(np.where(ok, fw[rec.row[np.maximum(r, 0)]], -1) if len(rec.row) else r)
    if not picks.n:
        return pa.array([], _S)
    combos, inverse = np.unique(np.stack(slots, axis=1), axis=0, return_inverse=True)
    texts = []
    for combo in combos:
        used = {vocab.dev_names[d]: (vocab.fw_names[f] if f >= 0 else None)
                for d, f in zip(combo[0::2], combo[1::2], strict=True) if d >= 0}
        texts.append(json.dumps(used, sort_keys=True, separators=(",", ":")))
    return pa.array(texts, _S).take(pa.array(inverse.ravel(), _I))


def _missed(miss: np.ndarray, channels: list[str]) -> pa.Array:
    """Comma-joined channels without an accepted record, per frame."""
    nt = len(miss)
    if not (nt and channels):
        return pa.array([""] * nt, _S)
    flags, inverse = np.unique(miss, axis=0, return_inverse=True)
    texts = [",".join(ch for ch, f in zip(channels, row, strict=True) if f) for row in flags]
    return pa.array(texts, _S).take(pa.array(inverse.ravel(), _I))


def _untimed_rows(placed: PlacedFrames, untimed: np.ndarray, channels: list[str]) -> pa.Table:
    """Frames without a time, kept as samples (a public dataset's images rarely carry one):
    nothing is matched, time_source says why, and unmatched names every kind."""
    ui = pa.array(untimed, _I)
    n_untimed = len(untimed)
    extra = {name: pa.nulls(n_untimed, FUSED_SCHEMA.field(name).type)
             for name in FUSED_SCHEMA.names}
    extra.update({
        "sha256": placed.sha.take(ui), "object_key": placed.object_key.take(ui),
        "rel_path": placed.rel_path.take(ui), "session_id": placed.session.take(ui),
        "camera": placed.camera.take(ui), "camera_firmware": placed.camera_fw.take(ui),
        "time_source": pa.array(["none"] * n_untimed, _S),
        "devices": pa.array(["{}"] * n_untimed, _S),
        "unmatched": pa.array([",".join(channels)] * n_untimed, _S),
    })
    return pa.table(extra, schema=FUSED_SCHEMA)
