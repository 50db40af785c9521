"""Fuse camera frames with IMU, GPS and LiDAR readings by time and place.

Input
-----
``frames``: one row per camera frame: ``sha256``, ``object_key``, ``rel_path`` (drop-relative),
``device_id`` (the camera, may be null) and ``capture_time`` (``timestamp`` of any unit, device
clock, may be null). Other columns are ignored.

``sensors``: the normalised sensor table
(:data:`~dataops_cv.lib.acquisition.sensor_logs.format.SENSOR_LOG_SCHEMA`, usually with
``log_path`` and ``object_key`` from :mod:`~dataops_cv.lib.acquisition.sensor_ingest`). It is not
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

Where each step lives
---------------------
:mod:`~dataops_cv.lib.fusion.config` (settings, schemas, result), :mod:`~.records` (sensor rows
coded and sorted), :mod:`~.frames` (frame time, camera and session), :mod:`~.clocks` (rate,
jitter, gaps), :mod:`~.offsets` and :mod:`~.xcorr` (clock offsets), :mod:`~.matching` (nearest
record per channel), :mod:`~.columns` with :mod:`~.interpolate` and :mod:`~.geohash` (the fused
table), :mod:`~.reports` (unmatched and clock tables); this module runs them in order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.fusion.clocks import group_stats
from dataops_cv.lib.fusion.columns import fused_table
from dataops_cv.lib.fusion.config import (
    FRAME_COLUMNS,
    SENSOR_COLUMNS,
    FusionConfig,
    FusionResult,
)
from dataops_cv.lib.fusion.frames import PlacedFrames, TimedFrames, place_frames, time_frames
from dataops_cv.lib.fusion.matching import Match, match_channels, missing_matrix, record_kinds
from dataops_cv.lib.fusion.offsets import Offset, estimate_offsets, reference_times
from dataops_cv.lib.fusion.records import (
    Records,
    Vocabulary,
    code_records,
    groups_with,
    pose_rows,
    read_sensor_columns,
    vocabulary,
)
from dataops_cv.lib.fusion.reports import clock_table, unmatched_table
from dataops_cv.lib.fusion.tables import require_columns


def fuse(frames: pa.Table, sensors: pa.Table, config: FusionConfig = FusionConfig()
         ) -> FusionResult:
    """Align every camera frame with the IMU, GPS, LiDAR and pose records nearest in time.

    See the module docstring for the rules.

    Args:
        frames: one row per frame (columns in :data:`~dataops_cv.lib.fusion.config.FRAME_COLUMNS`).
        sensors: the normalised sensor table (columns
            :data:`~dataops_cv.lib.fusion.config.SENSOR_COLUMNS` at least).
        config: tolerances, interpolation and clock settings.

    Returns:
        :class:`~dataops_cv.lib.fusion.config.FusionResult` with FUSED_SCHEMA, UNMATCHED_SCHEMA
        and CLOCK_SCHEMA tables.

    Raises:
        FusionError: a required column is missing, ``capture_time`` is not a timestamp, or a
            sensor row has no timestamp.
    """
    require_columns(frames, FRAME_COLUMNS, "frames")
    require_columns(sensors, SENSOR_COLUMNS, "sensors")
    cols = read_sensor_columns(sensors)
    placed = place_frames(frames, cols)
    vocab = vocabulary(cols, placed.session, placed.camera)
    rec = code_records(cols, vocab)
    g_kind = [vocab.kind_names[k] for k in rec.g_kind]
    stats = group_stats(rec)
    pose_sorted = pose_rows(sensors)[rec.row]
    offsets = estimate_offsets(sensors, rec, g_kind, groups_with(rec, pose_sorted), stats,
                               config, vocab.dev_names, vocab.n_sess)
    tref = reference_times(rec, offsets)
    timed = time_frames(placed, vocab, config)
    period_ns = np.array([s.period_ns for s in stats], dtype=np.float64)
    matches = match_channels(rec, tref, pose_sorted, vocab.kind_names, timed, vocab.n_sess,
                             period_ns, config)
    fused, gps_interpolated, pose_interpolated = fused_table(
        sensors, cols, placed, timed, rec, matches, vocab, config.geo_precision)
    unmatched = unmatched_table(sensors, cols, placed, timed, rec, tref, matches, vocab, config)
    clocks = clock_table(rec, stats, offsets, g_kind, vocab, cols.firmware, timed, config)
    counts = _counts(placed, timed, matches, (gps_interpolated, pose_interpolated), sensors,
                     rec, vocab, unmatched, offsets)
    return FusionResult(fused, unmatched, clocks, counts)


def _counts(placed: PlacedFrames, timed: TimedFrames, matches: dict[str, Match],
            interpolated: tuple[int, int], sensors: pa.Table, rec: Records, vocab: Vocabulary,
            unmatched: pa.Table, offsets: list[Offset]) -> dict[str, int]:
    """The run's counts, in the order the asset reports them."""
    nt = timed.n
    counts: dict[str, int] = {}
    counts["frames"] = placed.count
    counts["frames_timed"] = nt
    counts["frames_no_time"] = placed.count - nt
    counts["frames_time_from_sensor_log"] = int(placed.linked[timed.rows].sum())
    miss = missing_matrix(matches, nt)
    counts["frames_fused"] = int((~miss.any(axis=1)).sum()) if nt else 0
    for ch, m in matches.items():
        counts[f"frames_unmatched_{ch}"] = int((~m.ok).sum())
    counts["frames_interpolated_gps"], counts["frames_interpolated_pose"] = interpolated
    counts["sensor_records"] = sensors.num_rows
    kinds = record_kinds(matches, vocab.kind_names)
    matched_kind = np.isin(rec.kind, [vocab.kind_names.index(k) for k in kinds]) \
        if kinds else np.zeros(len(rec.kind), dtype=bool)
    n_camera = len(placed.camera_rows)
    counts["sensor_records_matched_kinds"] = int(matched_kind.sum())
    counts["sensor_records_camera"] = n_camera
    counts["sensor_records_ignored"] = sensors.num_rows - int(matched_kind.sum()) - n_camera
    counts["sensor_records_unmatched"] = int(pc.sum(pc.equal(
        unmatched["kind"], "sensor_record")).as_py() or 0)
    counts["duplicates"] = int(rec.dup.sum())
    counts["out_of_order"] = int(rec.g_out_of_order.sum())
    counts["offsets_estimated"] = sum(o.method == "motion_xcorr" for o in offsets)
    counts["offsets_applied"] = sum(o.applied and o.method != "reference" for o in offsets)
    counts["sessions"] = len(vocab.sessions)
    return counts
