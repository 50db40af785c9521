"""Where and when each camera frame was taken: from its ``camera`` row of the sensor log when
there is one, else from its file (``capture_time``, ``device_id``, the session folder); and its
time moved to the reference clock."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.fusion.config import CAMERA, FusionConfig, FusionError
from dataops_cv.lib.fusion.records import SensorColumns, Vocabulary
from dataops_cv.lib.fusion.tables import codes_in, string_column, take_strings

_CAMERA_KEY_RE = r"^sensors/[0-9a-f]{2}/(?P<sha>[0-9a-f]{64})(?:\.[^/]*)?$"
_SESSION_RE = r"^(?:.*/)?(?P<session>[^/]+)/[^/]+/[^/]+$"
_I = pa.int64()


@dataclass
class PlacedFrames:
    """Every input frame, in input order, with the session, camera and time it was given."""

    count: int
    sha: pa.Array
    object_key: pa.Array
    rel_path: pa.Array
    session: pa.Array
    camera: pa.Array
    camera_fw: pa.Array  # from the camera row of the log; null without one
    camera_rows: np.ndarray  # sensor rows of kind camera (input order)
    linked: np.ndarray  # the frame has a camera row of the log
    link_row: np.ndarray  # that sensor row, -1 when none
    time_valid: np.ndarray
    time_ns: np.ndarray  # device clock; 0 where not time_valid


def place_frames(frames: pa.Table, cols: SensorColumns) -> PlacedFrames:
    """Link frames to their camera rows by sha256 and give each its session, camera and time.

    Raises:
        FusionError: ``capture_time`` is not a timestamp.
    """
    ct = frames.column("capture_time")
    if not pa.types.is_timestamp(ct.type):
        raise FusionError(f"frames.capture_time must be a timestamp, found {ct.type}")
    nf_in = frames.num_rows
    f_time_file = ct.cast(pa.timestamp("ns", ct.type.tz)).cast(_I).combine_chunks() \
        if nf_in else pa.array([], _I)
    f_sha = string_column(frames, "sha256")
    is_camera_row = pc.fill_null(pc.equal(cols.sensor, CAMERA), False)
    cam_rows = np.flatnonzero(is_camera_row.to_numpy(zero_copy_only=False))
    cam_sha = pc.struct_field(
        pc.extract_regex(cols.object_key.take(pa.array(cam_rows, _I)), _CAMERA_KEY_RE), [0])
    link = pc.index_in(f_sha, value_set=cam_sha)  # first camera row (input order) per hash
    link_np = pc.fill_null(link, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    linked = link_np >= 0
    link_row = np.where(linked, cam_rows[np.maximum(link_np, 0)] if len(cam_rows) else 0, -1)
    link_mask = pa.array(linked)
    rel_path = string_column(frames, "rel_path")
    path_session = pc.struct_field(pc.extract_regex(rel_path, _SESSION_RE), [0])
    f_session = pc.if_else(link_mask, take_strings(cols.session, link_row), path_session)
    f_camera = pc.if_else(link_mask, take_strings(cols.device, link_row),
                          string_column(frames, "device_id"))
    f_camera_fw = take_strings(cols.firmware, link_row)
    ts = cols.ts
    f_time = pc.if_else(link_mask, pa.array(np.where(linked, ts[np.maximum(link_row, 0)]
                                                     if len(ts) else 0, 0), _I), f_time_file)
    f_time_valid = pc.is_valid(f_time).to_numpy(zero_copy_only=False)
    f_time_np = pc.fill_null(f_time, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return PlacedFrames(nf_in, f_sha, string_column(frames, "object_key"), rel_path, f_session,
                        f_camera, f_camera_fw, cam_rows, linked, link_row, f_time_valid,
                        f_time_np)


@dataclass
class TimedFrames:
    """The frames that have a time, in input order, coded and on the reference clock."""

    rows: np.ndarray  # index into the input frames
    sess: np.ndarray  # session code
    dev: np.ndarray  # camera code, -1 for a null camera
    fw: np.ndarray  # camera firmware code, -1 for none
    t_dev: np.ndarray  # camera clock, ns
    t: np.ndarray  # reference clock, ns
    camera_offset_us: np.ndarray

    @property
    def n(self) -> int:
        """Number of timed frames."""
        return len(self.rows)


def time_frames(placed: PlacedFrames, vocab: Vocabulary, config: FusionConfig) -> TimedFrames:
    """The timed frames, moved to the reference clock by their camera's known offset."""
    timed = np.flatnonzero(placed.time_valid)
    f_sess_all = codes_in(placed.session, vocab.sessions, vocab.n_sess - 1)
    f_dev_all = codes_in(placed.camera, vocab.devices, -1)
    cam_known = np.array([config.known_offsets_us.get(d, 0) for d in vocab.dev_names] + [0],
                         dtype=np.int64)
    f_cam_offset_us = cam_known[f_dev_all]  # -1 (null camera) picks the trailing 0
    f_t_dev = placed.time_ns[timed]
    return TimedFrames(
        rows=timed, sess=f_sess_all[timed], dev=f_dev_all[timed],
        fw=codes_in(placed.camera_fw, vocab.firmwares, -1)[timed], t_dev=f_t_dev,
        t=f_t_dev - f_cam_offset_us[timed] * 1000, camera_offset_us=f_cam_offset_us[timed])
