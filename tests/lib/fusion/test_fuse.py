"""Fusion of camera frames with IMU/GPS/LiDAR records: matching, interpolation, clocks, reports."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dataops_cv.lib.synthetic import scenes as syn
from dataops_cv.lib.fusion.fuse import (
    CLOCK_SCHEMA,
    FUSED_SCHEMA,
    UNMATCHED_SCHEMA,
    FusionConfig,
    FusionError,
    fuse,
    geohash,
)
from dataops_cv.lib.acquisition.sensor_logs import SENSOR_LOG_SCHEMA, read_sensor_log, write_sensor_log

T0 = 1_717_228_800_000_000_000  # 2024-06-01T00:00Z in ns
MS = 1_000_000
SENSOR_SCHEMA = SENSOR_LOG_SCHEMA.append(pa.field("log_path", pa.string())).append(
    pa.field("object_key", pa.string()))
IMU_ONLY = FusionConfig(tolerance_ms={"imu": 10.0})


def records(sensor: str, device: str, times_ns, session: str | None = "s1", **values
            ) -> list[dict]:
    """Rows of one device; ``values`` are per-row sequences or scalars."""
    out = []
    for i, t in enumerate(times_ns):
        row = {"timestamp_ns": int(t), "sensor": sensor, "device_id": device,
               "session_id": session, "firmware": f"{device}-fw", "log_path": f"{session}.pq"}
        for name, v in values.items():
            row[name] = v if np.isscalar(v) or v is None else float(v[i])
        out.append(row)
    return out


def sensor_table(*groups: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([r for g in groups for r in g], schema=SENSOR_SCHEMA)


def frame_table(times_ns, session: str = "s1", camera: str = "cam0") -> pa.Table:
    """Frames named like a rig names them; a None time is a frame without a capture time."""
    shas = [hashlib.sha256(f"{session}/{camera}/{i}".encode()).hexdigest()
            for i in range(len(times_ns))]
    return pa.table({
        "sha256": shas,
        "object_key": [f"frames/{s}.png" for s in shas],
        "rel_path": [f"images/{session}/{camera}/{i}.png" for i in range(len(times_ns))],
        "device_id": [camera] * len(times_ns),
        "capture_time": pa.array([None if t is None else int(t) // 1000 for t in times_ns],
                                 pa.timestamp("us", "UTC")),
    })


def rows_of(table: pa.Table, **where) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in where.items())]


def test_schemas_and_nearest_within_tolerance_with_the_rest_reported():
    imu_ms = np.concatenate([np.arange(100) * 10, [2015, 2030]])
    imu = records("imu", "imu0", T0 + imu_ms * MS, ax=np.arange(len(imu_ms)))
    other = records("imu", "imu9", T0 + np.arange(3) * 10 * MS, session="s2", ax=0.0)
    frames = frame_table([T0 + 13 * MS, T0 + 500 * MS, T0 + 2000 * MS])
    result = fuse(frames, sensor_table(imu, other), IMU_ONLY)

    assert result.fused.schema == FUSED_SCHEMA
    assert result.unmatched.schema == UNMATCHED_SCHEMA
    assert result.clocks.schema == CLOCK_SCHEMA
    fused = result.fused.to_pylist()
    assert [(r["imu_device"], r["imu_dt_us"], r["ax"]) for r in fused] == [
        ("imu0", -3000, 1.0), ("imu0", 0, 50.0), (None, None, None)]
    assert [r["unmatched"] for r in fused] == ["", "", "imu"]
    assert json.loads(fused[0]["devices"]) == {"cam0": None, "imu0": "imu0-fw"}

    (far,) = rows_of(result.unmatched, kind="frame")
    assert far["id"] == fused[2]["sha256"] and far["reason"] == "no_imu_within_tolerance"
    assert "imu0 is 15 ms away (tolerance 10 ms)" in far["detail"] and far["sensor"] == "imu"
    # Only records no frame could use: those beyond the frames +- 10 ms, and another session's;
    # the 97 records merely not nearest to a frame are not defects.
    reported = rows_of(result.unmatched, kind="sensor_record")
    assert sorted((r["device_id"], r["timestamp_ns"], r["reason"]) for r in reported) == [
        ("imu0", T0, "outside_camera_span"), ("imu0", T0 + 2015 * MS, "outside_camera_span"),
        ("imu0", T0 + 2030 * MS, "outside_camera_span")] + [
        ("imu9", T0 + i * 10 * MS, "no_frames_in_session") for i in range(3)]
    assert reported[0]["id"] == f"s1.pq#imu0@{T0}"
    assert "before the session's first frame" in reported[0]["detail"]
    assert "5 ms after the session's last frame" in reported[1]["detail"]
    assert result.counts["frames_unmatched_imu"] == 1
    assert result.counts["sensor_records_unmatched"] == 6


@pytest.mark.parametrize("dt_us, matched", [(10_000, True), (-10_000, True),
                                            (10_001, False), (-10_001, False)])
def test_tolerance_boundary_is_inclusive(dt_us, matched):
    sensors = sensor_table(records("imu", "imu0", [T0 + 1000 * MS], ax=1.0))
    result = fuse(frame_table([T0 + 1000 * MS + dt_us * 1000]), sensors, IMU_ONLY)
    (row,) = result.fused.to_pylist()
    assert (row["imu_dt_us"] == -dt_us) is matched
    assert (row["unmatched"] == "") is matched


def test_tie_goes_to_the_earlier_record():
    sensors = sensor_table(records("imu", "imu0", [T0, T0 + 20 * MS], ax=[1, 2]))
    (row,) = fuse(frame_table([T0 + 10 * MS]), sensors, IMU_ONLY).fused.to_pylist()
    assert (row["ax"], row["imu_dt_us"]) == (1.0, -10_000)


def test_jitter_still_picks_the_record_nearest_in_true_time():
    rng = np.random.default_rng(7)
    n = 600
    imu_t = T0 + np.arange(n) * 10 * MS + rng.integers(-100_000, 100_001, n)
    true_frame = np.arange(70) * 83_333_333 + 5 * MS
    frame_t = T0 + true_frame + rng.integers(-100_000, 100_001, len(true_frame))
    sensors = sensor_table(records("imu", "imu0", imu_t, ax=np.arange(n)))
    fused = fuse(frame_table(list(frame_t)), sensors, IMU_ONLY).fused
    got = np.array(fused["ax"].to_pylist())
    nominal = true_frame / (10 * MS)
    clear = np.abs(nominal - np.floor(nominal) - 0.5) * 10 * MS > 250_000  # not near a midpoint
    assert clear.sum() > 40
    np.testing.assert_array_equal(got[clear], np.rint(nominal[clear]))
    assert np.all(np.abs(np.array(fused["imu_dt_us"].to_pylist())) <= 5_300)


def test_gap_is_reported_and_never_bridged():
    lidar_t = np.array([t for t in range(0, 5000, 50) if not 2000 <= t < 3000]) * MS + T0
    gps_t = np.array([t for t in range(0, 5000, 100) if not 2000 <= t < 3000]) * MS + T0
    sensors = sensor_table(
        records("lidar", "lidar0", lidar_t, pose_x=np.arange(len(lidar_t)), pose_y=0.0,
                pose_z=0.0, pose_qw=1.0, pose_qx=0.0, pose_qy=0.0, pose_qz=0.0),
        records("gps", "gps0", gps_t, lat=48 + np.arange(len(gps_t)) * 1e-4, lon=11.0))
    frame_ns = np.rint(np.arange(0, 4900, 1000 / 12) * MS).astype(np.int64)
    frame_ms = frame_ns / MS
    frames = frame_table(list(T0 + frame_ns))
    config = FusionConfig(tolerance_ms={"gps": 60.0, "lidar": 30.0}, estimate_offsets=False)
    result = fuse(frames, sensors, config)
    fused = result.fused.to_pylist()

    for ms, row in zip(frame_ms, fused, strict=True):
        in_lidar_gap = bool(1950 + 30 < ms < 3000 - 30)
        assert (row["lidar_device"] is None) is in_lidar_gap, ms
        assert (row["pose_device"] is None) is in_lidar_gap, ms
        in_gps_gap = bool(1900 + 60 < ms < 3000 - 60)
        assert (row["gps_device"] is None) is in_gps_gap, ms
        bracketed = 0 <= ms <= 1900 or 3000 <= ms <= 4900
        if not in_gps_gap:
            # Beside the gap GPS is the nearest fix, never a blend across the missing second.
            assert row["gps_method"] == ("interpolated" if bracketed and ms % 100 else "nearest")
    gap_frames = [r for r, ms in zip(fused, frame_ms, strict=True) if 1900 < ms < 3000]
    assert {r["gps_method"] for r in gap_frames if r["gps_device"]} == {"nearest"}
    near_gap = [r for r in gap_frames if r["gps_device"]]
    assert near_gap and all(r["lat"] in (48 + 19e-4, 48 + 20e-4) for r in near_gap)
    reasons = {(r["sensor"], r["reason"]) for r in rows_of(result.unmatched, kind="frame")}
    assert reasons == {("lidar", "no_lidar_within_tolerance"), ("pose", "no_pose_within_tolerance"),
                       ("gps", "no_gps_within_tolerance")}
    clocks = {r["device_id"]: r for r in result.clocks.to_pylist()}
    assert clocks["lidar0"]["gaps"] == 1 and clocks["gps0"]["gaps"] == 1
    assert clocks["lidar0"]["rate_hz"] == pytest.approx(20.0)


def test_duplicate_timestamp_is_reported_and_not_used():
    t = T0 + np.array([0, 10, 20, 20, 30]) * MS
    sensors = sensor_table(records("imu", "imu0", t, ax=[0, 1, 2, 999, 3]))
    result = fuse(frame_table([T0 + 20 * MS, T0 + 22 * MS]), sensors, IMU_ONLY)
    assert result.fused["ax"].to_pylist() == [2.0, 2.0]
    (dup,) = rows_of(result.unmatched, reason="duplicate_timestamp")
    assert dup["id"] == f"s1.pq#imu0@{T0 + 20 * MS}" and dup["kind"] == "sensor_record"
    (clock,) = rows_of(result.clocks, device_id="imu0")
    assert clock["duplicates"] == 1 and clock["records"] == 5
    assert result.counts["duplicates"] == 1


def test_out_of_order_input_fuses_like_sorted_input_and_is_counted():
    rng = np.random.default_rng(3)
    imu = records("imu", "imu0", T0 + np.arange(300) * 10 * MS, ax=rng.normal(size=300))
    gps = records("gps", "gps0", T0 + np.arange(30) * 100 * MS, lat=48 + rng.normal(size=30),
                  lon=11.0, heading=rng.uniform(0, 360, 30))
    frames = frame_table(list(T0 + np.arange(30) * 83 * MS + 7 * MS))
    rows = imu + gps
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    config = FusionConfig(tolerance_ms={"imu": 10.0, "gps": 60.0}, estimate_offsets=False)
    ordered = fuse(frames, sensor_table(rows), config)
    mixed = fuse(frames, sensor_table(shuffled), config)

    assert mixed.fused.equals(ordered.fused)
    assert mixed.unmatched.equals(ordered.unmatched)
    expected = {}
    for dev in ("imu0", "gps0"):
        ts = [r["timestamp_ns"] for r in shuffled if r["device_id"] == dev]
        expected[dev] = sum(b < a for a, b in zip(ts, ts[1:]))
    got = {r["device_id"]: r["out_of_order"] for r in mixed.clocks.to_pylist()
           if r["sensor"] != "camera"}
    assert got == expected and min(expected.values()) > 0
    assert mixed.counts["out_of_order"] == sum(expected.values())
    assert ordered.counts["out_of_order"] == 0


@pytest.mark.parametrize("frame_ms, lat, heading, dt_us", [
    (25, 10.00025, 359.5, -25_000), (50, 10.0005, 0.0, -50_000), (75, 10.00075, 0.5, 25_000)])
def test_gps_interpolation_linear_and_circular(frame_ms, lat, heading, dt_us):
    sensors = sensor_table(records("gps", "gps0", [T0, T0 + 100 * MS], lat=[10.0, 10.001],
                                   lon=[20.0, 20.002], alt=[100.0, 110.0], speed=[5.0, 7.0],
                                   heading=[359.0, 1.0]))
    config = FusionConfig(tolerance_ms={"gps": 60.0})
    (row,) = fuse(frame_table([T0 + frame_ms * MS]), sensors, config).fused.to_pylist()
    w = frame_ms / 100
    assert row["gps_method"] == "interpolated" and row["gps_dt_us"] == dt_us
    assert row["lat"] == pytest.approx(lat, abs=1e-12)
    assert row["lon"] == pytest.approx(20.0 + 0.002 * w, abs=1e-12)
    assert row["alt"] == pytest.approx(100 + 10 * w) and row["speed"] == pytest.approx(5 + 2 * w)
    assert min(abs(row["heading"] - heading), 360 - abs(row["heading"] - heading)) < 1e-9
    assert row["geo_cell"] == geohash(np.array([lat]), np.array([20.0 + 0.002 * w]), 7)[0]


@pytest.mark.parametrize("flip_sign", [False, True])
def test_pose_slerp_takes_the_short_arc(flip_sign):
    def quat(yaw_deg):
        half = math.radians(yaw_deg) / 2
        return [math.cos(half), 0.0, 0.0, math.sin(half)]

    qa, qb = quat(170), quat(-170)
    if flip_sign:  # q and -q are the same rotation
        qb = [-v for v in qb]
    sensors = sensor_table(records(
        "lidar", "lidar0", [T0, T0 + 50 * MS], pose_x=[0.0, 1.0], pose_y=[0.0, -2.0],
        pose_z=[0.0, 0.0], pose_qw=[qa[0], qb[0]], pose_qx=[0.0, 0.0], pose_qy=[0.0, 0.0],
        pose_qz=[qa[3], qb[3]]))
    config = FusionConfig(tolerance_ms={"lidar": 30.0})
    (row,) = fuse(frame_table([T0 + 25 * MS]), sensors, config).fused.to_pylist()
    assert row["pose_method"] == "interpolated" and row["pose_device"] == "lidar0"
    assert (row["pose_x"], row["pose_y"]) == pytest.approx((0.5, -1.0))
    yaw = math.degrees(2 * math.atan2(row["pose_qz"], row["pose_qw"]))
    assert abs(abs(yaw) - 180) < 1e-6 or abs(abs(yaw) - 540) < 1e-6  # through 180, not 0
    q = [row[c] for c in ("pose_qw", "pose_qx", "pose_qy", "pose_qz")]
    assert math.isclose(sum(v * v for v in q), 1.0)
    # At a quarter: yaw 175 (the short way), not 85.
    (row,) = fuse(frame_table([T0 + 12_500_000]), sensors, config).fused.to_pylist()
    yaw = math.degrees(2 * math.atan2(row["pose_qz"], row["pose_qw"])) % 360
    assert yaw == pytest.approx(175.0)


def test_geohash_known_value_prefixes_and_nulls():
    lat, lon = np.array([57.64911, np.nan, 0.0, 95.0]), np.array([10.40744, 1.0, np.nan, 0.0])
    assert geohash(lat, lon, 11) == ["u4pruydqqvj", None, None, None]
    for p in range(1, 12):
        assert geohash(lat[:1], lon[:1], p) == ["u4pruydqqvj"[:p]]
    assert geohash(np.array([-90.0, 90.0]), np.array([-180.0, 180.0]), 3) == ["000", "zzz"]
    with pytest.raises(ValueError, match="precision"):
        geohash(lat, lon, 13)


def _yaw(t):
    return (-0.2 * 7 / (2 * np.pi) * np.cos(2 * np.pi * t / 7)
            - 0.1 * 3.1 / (2 * np.pi) * np.cos(2 * np.pi * t / 3.1 + 1))


def _yaw_rate(t):
    return 0.2 * np.sin(2 * np.pi * t / 7) + 0.1 * np.sin(2 * np.pi * t / 3.1 + 1)


def turning_drive(imu_offset_us: int, straight: bool = False, noise_deg: float = 0.0
                  ) -> pa.Table:
    """60 s of GPS heading (10 Hz, reference clock) and IMU gz (100 Hz, offset clock) of one
    analytic trajectory."""
    rng = np.random.default_rng(0)
    tg, ti = np.arange(0, 60, 0.1), np.arange(0, 60, 0.01)
    yaw = np.zeros_like(tg) if straight else _yaw(tg)
    heading = (90 - np.degrees(yaw)) % 360 + rng.normal(0, noise_deg, len(tg))
    gz = (np.zeros_like(ti) if straight else _yaw_rate(ti)) + rng.normal(0, 0.001, len(ti))
    return sensor_table(
        records("gps", "gps0", T0 + np.rint(tg * 1e9).astype(np.int64), lat=48.0, lon=11.0,
                heading=heading),
        records("imu", "imu0", T0 + np.rint(ti * 1e9).astype(np.int64) + imu_offset_us * 1000,
                gz=gz))


@pytest.mark.parametrize("offset_us", [40_000, -23_000])
def test_clock_offset_recovered_from_motion_and_applied(offset_us):
    frame_s = np.arange(10, 50, 0.25)
    frames = frame_table(list(T0 + np.rint(frame_s * 1e9).astype(np.int64)))
    result = fuse(frames, turning_drive(offset_us))
    (imu,) = rows_of(result.clocks, device_id="imu0")
    assert imu["offset_method"] == "motion_xcorr" and imu["offset_applied"]
    assert imu["offset_us"] == pytest.approx(offset_us, abs=1000)
    assert imu["offset_confidence"] >= 0.95
    (gps,) = rows_of(result.clocks, device_id="gps0")
    assert (gps["offset_us"], gps["offset_method"], gps["offset_applied"]) == (0.0, "reference",
                                                                               True)
    (cam,) = rows_of(result.clocks, device_id="cam0")
    assert cam["offset_us"] is None and cam["note"] == "no motion signal"
    # Applied, the IMU reading beside each frame is the yaw rate at the frame's instant.
    gz = np.array(result.fused["gz"].to_pylist())
    assert np.max(np.abs(gz - _yaw_rate(frame_s))) < 0.006
    raw = fuse(frames, turning_drive(offset_us), FusionConfig(estimate_offsets=False))
    raw_gz = np.array(raw.fused["gz"].to_pylist())
    assert np.max(np.abs(raw_gz - _yaw_rate(frame_s))) > 0.008


@pytest.mark.parametrize("noise_deg", [0.0, 0.3])
def test_straight_drive_gives_no_applied_offset(noise_deg):
    frames = frame_table([T0 + 30_000 * MS])
    result = fuse(frames, turning_drive(40_000, straight=True, noise_deg=noise_deg))
    (imu,) = rows_of(result.clocks, device_id="imu0")
    assert not imu["offset_applied"] and imu["note"]
    assert imu["offset_us"] is None or imu["offset_confidence"] < 0.8
    assert result.fused["camera_offset_us"].to_pylist() == [0]


def test_short_session_is_not_estimated():
    sensors = turning_drive(40_000).filter(pc.less(pc.field("timestamp_ns"), T0 + 3000 * MS))
    result = fuse(frame_table([T0 + 1000 * MS]), sensors)
    (imu,) = rows_of(result.clocks, device_id="imu0")
    assert imu["offset_us"] is None and imu["note"].startswith("session shorter than 5 s")


def test_known_offsets_win_and_move_frames_to_the_reference_clock():
    sensors = sensor_table(records("imu", "imu0", T0 + np.arange(100) * 10 * MS + 40 * MS,
                                   ax=np.arange(100)))
    frames = frame_table([T0 + 500 * MS + 3 * MS])  # camera clock 3 ms ahead
    config = FusionConfig(tolerance_ms={"imu": 10.0},
                          known_offsets_us={"imu0": 40_000, "cam0": 3_000})
    result = fuse(frames, sensors, config)
    (row,) = result.fused.to_pylist()
    assert (row["camera_offset_us"], row["frame_time_ns"], row["frame_time_ref_ns"]) == (
        3000, T0 + 503 * MS, T0 + 500 * MS)
    assert (row["ax"], row["imu_dt_us"]) == (50.0, 0)
    clocks = {r["device_id"]: r for r in result.clocks.to_pylist()}
    assert (clocks["imu0"]["offset_method"], clocks["imu0"]["offset_us"]) == ("known", 40000.0)
    assert clocks["cam0"]["offset_method"] == "known" and clocks["cam0"]["offset_applied"]
    without = fuse(frames, sensors, IMU_ONLY).fused.to_pylist()[0]
    assert without["ax"] == 46.0


def test_sessions_kept_apart_with_null_session_fallback():
    sensors = sensor_table(
        records("imu", "imu0", T0 + np.arange(10) * 10 * MS, session="s1", ax=1.0),
        records("imu", "imu0", T0 + np.arange(10) * 10 * MS, session="s2", ax=2.0),
        records("gps", "gps0", T0 + np.arange(2) * 100 * MS, session=None, lat=48.0, lon=11.0),
        records("gps", "gps1", T0 + np.arange(2) * 100 * MS, session="s2", lat=50.0, lon=11.0))
    frames = pa.concat_tables([frame_table([T0 + 50 * MS], session=s) for s in ("s1", "s2")])
    config = FusionConfig(tolerance_ms={"imu": 10.0, "gps": 60.0}, estimate_offsets=False)
    result = fuse(frames, sensors, config)
    by_session = {r["session_id"]: r for r in result.fused.to_pylist()}
    assert (by_session["s1"]["ax"], by_session["s1"]["gps_device"], by_session["s1"]["lat"]) \
        == (1.0, "gps0", 48.0)
    assert (by_session["s2"]["ax"], by_session["s2"]["gps_device"], by_session["s2"]["lat"]) \
        == (2.0, "gps1", 50.0)
    sessions = {(r["session_id"], r["device_id"]) for r in result.clocks.to_pylist()}
    assert sessions == {("s1", "imu0"), ("s2", "imu0"), (None, "gps0"), ("s2", "gps1"),
                        ("s1", "cam0"), ("s2", "cam0")}


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


def test_other_kinds_are_counted_not_matched():
    sensors = sensor_table(records("imu", "imu0", [T0], ax=1.0),
                           records("radar", "radar0", [T0, T0 + 500 * MS]))
    frames = frame_table([T0, T0 + 40 * MS])
    result = fuse(frames, sensors, IMU_ONLY)
    assert result.counts["sensor_records_ignored"] == 2
    assert not rows_of(result.unmatched, sensor="radar")
    (radar,) = rows_of(result.clocks, device_id="radar0")
    assert radar["note"] == "no motion signal" and radar["records"] == 2


def test_config_is_hashable_versioned_and_validated():
    assert hash(FusionConfig()) == hash(FusionConfig())
    assert FusionConfig().version() == FusionConfig().version()
    assert FusionConfig(tolerance_ms={"imu": 10.0, "gps": 60.0, "lidar": 30.0}).version() \
        == FusionConfig().version()
    assert FusionConfig(geo_precision=8).version() != FusionConfig().version()
    assert FusionConfig().tolerance_ms == {"imu": 10.0, "gps": 60.0, "lidar": 30.0}
    with pytest.raises(ValueError, match="tolerance_ms"):
        FusionConfig(tolerance_ms={"imu": -1.0})
    with pytest.raises(FusionError, match="capture_time"):
        fuse(frame_table([T0]).drop_columns(["capture_time"]), sensor_table())


def test_synthetic_rig(tmp_path: Path):
    # Tiny images: frame times do not depend on the size, and rendering stays ~0.1 s.
    config = syn.SceneConfig(sessions_per_day=2, frames_per_session=24,
                             defects=syn.DefectConfig.none(), width=32, height=24)
    date = "2024-06-01"
    frames = list(syn.generate_day(config, date))
    frame_tab = pa.table({
        "sha256": [f.sha256 for f in frames],
        "object_key": [f"frames/{f.sha256}.png" for f in frames],
        "rel_path": [f.path for f in frames],
        "device_id": [f.device_id for f in frames],
        "capture_time": pa.array([f.timestamp_us for f in frames], pa.timestamp("us", "UTC")),
    })
    parts = []
    for s in range(config.sessions_per_day):
        sess = syn.sensor_session(config, date, s)
        table, bad = read_sensor_log(write_sensor_log(sess.table, tmp_path / "log.parquet"))
        assert not bad
        keys = [None if f is None else f"sensors/ab/{hashlib.sha256(f.encode()).hexdigest()}.npy"
                for f in table["file"].to_pylist()]
        parts.append(table.append_column("log_path", pa.array([f"{s}.parquet"] * len(keys)))
                     .append_column("object_key", pa.array(keys, pa.string())))
        (tmp_path / "log.parquet").unlink()
    sensors = pa.concat_tables(parts)
    result = fuse(frame_tab, sensors)
    fused = result.fused.to_pylist()
    assert len(fused) == len(frames) == 144

    # Oracle: sessions are 2 s, too short for a motion estimate, so times stay device times.
    tol = {"imu": 10, "gps": 60, "lidar": 30, "pose": 30}
    truth = {f.sha256: f for f in frames}
    log = sensors.to_pylist()
    matched_all = 0
    for row in fused:
        frame = truth[row["sha256"]]
        assert (row["session_id"], row["camera"]) == (frame.session_id, frame.device_id)
        for kind, prefix in (("imu", "imu"), ("gps", "gps"), ("lidar", "lidar"),
                             ("lidar", "pose")):
            dts = [r["timestamp_ns"] - row["frame_time_ns"] for r in log
                   if r["sensor"] == kind and r["session_id"] == frame.session_id]
            nearest = min(dts, key=lambda d: (abs(d), d))
            if abs(nearest) <= tol[prefix] * MS:
                assert row[f"{prefix}_dt_us"] == round(nearest / 1000), (prefix, row["rel_path"])
            else:
                assert row[f"{prefix}_dt_us"] is None and prefix in row["unmatched"].split(",")
        matched_all += row["unmatched"] == ""
        if row["gps_method"] == "interpolated":
            lat, lon, _ = frame.gps  # truth at the frame's true instant; offsets <= 2 ms
            assert abs(row["lat"] - lat) < 1e-6 and abs(row["lon"] - lon) < 1.5e-6
        if row["gps_device"]:
            assert row["geo_cell"] and len(row["geo_cell"]) == 7
    # Edge frames may precede the first GPS fix by more than 60 ms (free-running phases); the
    # rest is fully fused.
    assert matched_all >= len(fused) - 6
    assert result.counts["frames_fused"] == matched_all

    rates = {"imu": 100.0, "gps": 10.0, "lidar": 20.0, "camera": 12.0}
    clocks = result.clocks.to_pylist()
    assert len(clocks) == 2 * 6
    for row in clocks:
        assert row["rate_hz"] == pytest.approx(rates[row["sensor"]], rel=0.01)
        assert row["jitter_us"] < (1 if row["sensor"] == "gps" else 200)
        assert row["offset_applied"] is (row["sensor"] == "gps")


@pytest.mark.parametrize("n_frames, n_records", [(0, 0), (2, 0), (0, 3)])
def test_empty_inputs_give_empty_tables_not_errors(n_frames, n_records):
    frames = frame_table([T0 + i * 83 * MS for i in range(n_frames)])
    sensors = sensor_table(records("imu", "imu0", T0 + np.arange(n_records) * 10 * MS, ax=1.0))
    result = fuse(frames, sensors)
    assert result.fused.num_rows == n_frames
    assert result.fused["unmatched"].to_pylist() == ["gps,imu,lidar"] * n_frames
    assert len(rows_of(result.unmatched, kind="frame")) == 3 * n_frames
    assert len(rows_of(result.unmatched, reason="no_frames_in_session")) == n_records
    assert result.clocks.num_rows == (n_frames > 0) + (n_records > 0)
