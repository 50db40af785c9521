"""Frames: time, camera and session from the camera row of the log or the file; frames without
a time."""

from __future__ import annotations

import json

import numpy as np

from dataops_cv.lib.fusion.fuse import fuse
from tests.lib.fusion.inputs import IMU_ONLY, MS, T0, frame_table, records, rows_of, sensor_table


def test_camera_row_of_the_log_wins_over_the_file_name():
    frames = frame_table([T0 + 999 * MS, T0 + 100 * MS])
    sha = frames["sha256"][0].as_py()
    camera_row = records("camera", "cam_log", [T0 + 100 * MS], session="s9", calib_x=1.5,
                         calib_qw=1.0)
    camera_row[0]["object_key"] = f"sensors/{sha[:2]}/{sha}.png"
    imu = records("imu", "imu0", T0 + np.arange(100) * 10 * MS, session="s9", ax=np.arange(100))
    result = fuse(frames, sensor_table(camera_row, imu), IMU_ONLY)
    (row,) = rows_of(result.fused, sha256=sha)
    assert (row["time_source"], row["frame_time_ns"], row["camera"], row["session_id"],
            row["camera_firmware"], row["calib_x"], row["calib_qw"]) == (
        "sensor_log", T0 + 100 * MS, "cam_log", "s9", "cam_log-fw", 1.5, 1.0)
    assert row["ax"] == 10.0
    assert json.loads(row["devices"]) == {"cam_log": "cam_log-fw", "imu0": "imu0-fw"}
    (other,) = rows_of(result.fused, time_source="file_name")
    assert (other["session_id"], other["camera"], other["calib_x"]) == ("s1", "cam0", None)
    assert result.counts["frames_time_from_sensor_log"] == 1


def test_frames_without_time_stay_samples_and_are_reported():
    frames = frame_table([T0, None])
    sensors = sensor_table(records("imu", "imu0", [T0], ax=1.0))
    result = fuse(frames, sensors, IMU_ONLY)
    assert result.fused.num_rows == 2
    (untimed,) = rows_of(result.fused, time_source="none")
    assert untimed["sha256"] == frames["sha256"][1].as_py()
    assert (untimed["frame_time_ns"], untimed["imu_device"], untimed["unmatched"]) == \
        (None, None, "imu")
    (row,) = rows_of(result.unmatched, reason="no_capture_time")
    assert (row["id"], row["session_id"], row["device_id"], row["timestamp_ns"]) == (
        frames["sha256"][1].as_py(), "s1", "cam0", None)
    assert result.counts["frames_no_time"] == 1
