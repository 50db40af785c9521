"""Cost of sensor fusion (``dataops_cv.lib.fusion.fuse.fuse``) against a bare nearest-time join.

    python benchmarks/fusion/bench.py [--rows 1000000] [--frames 100000] [--repeat 3]

Generates, deterministically with NumPy, ``--rows`` sensor rows in the normalised sensor-log
schema over 4 sessions -- per session two IMUs at 100 Hz (yaw rate in ``gz``), a GPS at 10 Hz
(lat/lon/alt/speed/heading), two LiDARs at 20 Hz carrying the ego pose, and a radar at 100 Hz
that fusion ignores -- with per-device clock offsets (up to +-2 ms, the IMUs +30 ms so the motion
estimate has something to find), 100 us jitter, 0.1 % duplicate timestamps and some
out-of-order rows; and ``--frames`` camera frames from 3 cameras per session at ~12 Hz. The
trajectory turns, so every IMU and pose device gets a motion estimate.

Per repetition it times:

- floor: what any nearest-time join must do -- sort all sensor times, ``np.searchsorted`` every
  frame time, pick the nearer neighbour (no sessions, kinds, clocks or values);
- ``fuse``: the whole fusion (clocks, offsets, matching per session and kind, interpolation,
  geohash, unmatched and clock reports).

Memory, in a fresh child process per measure: the peak RSS growth while ``fuse`` runs (sampled
every 2 ms above the RSS with the inputs loaded) and the tracemalloc peak of the call (NumPy and
Python objects; Arrow's own pool is not traced), each against the inputs' ``table.nbytes``.

Targets: fuse <= 10 s for 1M rows x 100k frames on a 2-core machine; peak memory growth
<= 3 x the input tables' size. The ratio fuse / floor is printed for scale: the floor does a
small part of the work, so it is a yardstick, not a target. Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataops_cv.lib.acquisition.sensor_logs.format import KNOWN_VALUE_COLUMNS, SENSOR_LOG_SCHEMA
from dataops_cv.lib.fusion.config import FusionConfig
from dataops_cv.lib.fusion.fuse import fuse

TARGET_SECONDS = 10.0
TARGET_MEMORY_RATIO = 3.0
SESSIONS = 4
CAMERAS = ("cam_front", "cam_left", "cam_right")
DEVICES = (  # device, kind, rate (Hz), clock offset (us), firmware
    ("imu0", "imu", 100.0, 30_000, "bmi088-2.4.1"),
    ("imu1", "imu", 100.0, -1_500, "bmi088-2.4.1"),
    ("gps0", "gps", 10.0, 0, "zed-f9p-1.32"),
    ("lidar_top", "lidar", 20.0, 1_200, "vls32-3.0.41"),
    ("lidar_front", "lidar", 20.0, -800, "vls16-2.1.0"),
    ("radar0", "radar", 100.0, 500, "ars408-1.0"),
)
T0_NS = 1_717_228_800_000_000_000  # 2024-06-01 00:00 UTC
EARTH_M_PER_DEG = 111_319.49


def _yaw(t: np.ndarray) -> np.ndarray:
    return 0.6 * np.sin(2 * np.pi * t / 23.0) + 0.25 * np.sin(2 * np.pi * t / 7.3 + 1.0)


def _yaw_rate(t: np.ndarray) -> np.ndarray:
    return (0.6 * 2 * np.pi / 23.0 * np.cos(2 * np.pi * t / 23.0)
            + 0.25 * 2 * np.pi / 7.3 * np.cos(2 * np.pi * t / 7.3 + 1.0))


def _session_seconds(rows: int) -> float:
    return rows / (SESSIONS * sum(d[2] for d in DEVICES))


def make_inputs(rows: int, frames: int) -> tuple[pa.Table, pa.Table]:
    """(frames, sensors) tables, the same for the same sizes."""
    seconds = _session_seconds(rows)
    rng = np.random.default_rng(20240601)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in ("ts", "dev", "sess")}
    values = {c: [] for c in KNOWN_VALUE_COLUMNS}
    for s in range(SESSIONS):
        start = T0_NS + (8 + 2 * s) * 3600 * 10**9
        for d, (device, kind, rate, offset, _) in enumerate(DEVICES):
            n = int(seconds * rate)
            t = rng.uniform(0, 1 / rate) + np.arange(n) / rate
            device_ns = start + np.rint(t * 1e9).astype(np.int64) + offset * 1000
            if kind != "gps":
                device_ns += np.rint(rng.normal(0, 100_000, n)).astype(np.int64)
            cols = {c: np.full(n, np.nan) for c in KNOWN_VALUE_COLUMNS}
            if kind == "imu":
                cols["gz"] = _yaw_rate(t) + rng.normal(0, 0.002, n)
                cols["az"] = 9.81 + rng.normal(0, 0.02, n)
                cols["ax"] = rng.normal(0, 0.2, n)
                cols["ay"] = rng.normal(0, 0.2, n)
                cols["gx"] = rng.normal(0, 0.001, n)
                cols["gy"] = rng.normal(0, 0.001, n)
            elif kind == "gps":
                yaw = _yaw(t)
                cols["lat"] = 48.1 + 10.0 * t * np.sin(yaw) / EARTH_M_PER_DEG
                cols["lon"] = 11.5 + 10.0 * t * np.cos(yaw) / EARTH_M_PER_DEG
                cols["alt"] = 520 + rng.normal(0, 0.03, n)
                cols["speed"] = 10 + rng.normal(0, 0.02, n)
                cols["heading"] = np.round(np.degrees(np.pi / 2 - yaw) % 360.0, 3)
            elif kind == "lidar":
                yaw = _yaw(t)
                cols["pose_x"], cols["pose_y"] = 10.0 * t * np.cos(yaw), 10.0 * t * np.sin(yaw)
                cols["pose_z"] = np.zeros(n)
                cols["pose_qw"], cols["pose_qz"] = np.cos(yaw / 2), np.sin(yaw / 2)
                cols["pose_qx"] = cols["pose_qy"] = np.zeros(n)
            # 0.1 % duplicate timestamps; a few out-of-order neighbours.
            dup = rng.random(n) < 0.001
            dup[0] = False
            device_ns[dup] = device_ns[np.flatnonzero(dup) - 1]
            swap = np.flatnonzero(rng.random(n - 1) < 0.0005)
            device_ns[swap], device_ns[swap + 1] = device_ns[swap + 1], device_ns[swap].copy()
            parts["ts"].append(device_ns)
            parts["dev"].append(np.full(n, d))
            parts["sess"].append(np.full(n, s))
            for c in KNOWN_VALUE_COLUMNS:
                values[c].append(cols[c])
    ts = np.concatenate(parts["ts"])
    dev = np.concatenate(parts["dev"])
    sess = np.concatenate(parts["sess"])
    dev_names = pa.array([d[0] for d in DEVICES])
    kinds = pa.array([d[1] for d in DEVICES])
    firmware = pa.array([d[4] for d in DEVICES])
    session_names = pa.array([f"20240601_s{s:02d}" for s in range(SESSIONS)])
    idx = pa.array(dev)
    lidar = np.isin(dev, [3, 4])
    keys = np.char.add(np.char.add("sensors/ab/", np.char.zfill(ts.astype(str), 64)), ".npy")
    cols_out = {
        "timestamp_ns": pa.array(ts, pa.int64()),
        "sensor": kinds.take(idx),
        "device_id": dev_names.take(idx),
        "session_id": session_names.take(pa.array(sess)),
        "firmware": firmware.take(idx),
        "file": pa.nulls(len(ts), pa.string()),
    }
    for c in KNOWN_VALUE_COLUMNS:
        cols_out[c] = pa.array(np.concatenate(values[c]), pa.float64(), from_pandas=True)
    sensors = pa.table(cols_out, schema=SENSOR_LOG_SCHEMA)
    sensors = sensors.append_column("log_path", session_names.take(pa.array(sess)))
    sensors = sensors.append_column("object_key", pa.array(keys.tolist(), pa.string(),
                                                           mask=~lidar))

    per = frames // (SESSIONS * len(CAMERAS))
    hz = per / seconds
    sha, paths, cams, times = [], [], [], []
    for s in range(SESSIONS):
        start = T0_NS + (8 + 2 * s) * 3600 * 10**9
        for c, cam in enumerate(CAMERAS):
            t = rng.uniform(0, 1 / hz) + np.arange(per) / hz
            us = (start + np.rint(t * 1e9).astype(np.int64) + rng.integers(-2000, 2000) * 1000
                  + np.rint(rng.normal(0, 100_000, per)).astype(np.int64)) // 1000
            times.append(us)
            paths.append(np.char.add(f"images/20240601_s{s:02d}/{cam}/", us.astype(str)))
            cams.extend([cam] * per)
    times_us = np.concatenate(times)
    n = len(times_us)
    sha = np.char.zfill(np.arange(n).astype(str), 64)
    frames_t = pa.table({
        "sha256": pa.array(sha.tolist(), pa.string()),
        "object_key": pa.array(np.char.add("frames/", sha).tolist(), pa.string()),
        "rel_path": pa.array(np.char.add(np.concatenate(paths), ".png").tolist(), pa.string()),
        "device_id": pa.array(cams, pa.string()),
        "capture_time": pa.array(times_us, pa.timestamp("us", "UTC")),
    })
    print(f"  cameras at {hz:.2f} Hz, sessions of {seconds:.0f} s")
    return frames_t, sensors


def floor_join(frames: pa.Table, sensors: pa.Table) -> np.ndarray:
    """Nearest sensor row per frame by raw time: sort + searchsorted, nothing else."""
    ts = sensors.column("timestamp_ns").to_numpy()
    order = np.argsort(ts, kind="stable")
    st = ts[order]
    ft = frames.column("capture_time").cast(pa.int64()).to_numpy() * 1000
    j = np.clip(np.searchsorted(st, ft), 1, len(st) - 1)
    nearer = np.where(st[j] - ft < ft - st[j - 1], j, j - 1)
    return order[nearer]


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(folder: Path, mode: str) -> None:
    """Load the inputs, run fuse once, print the memory it took as JSON."""
    frames = pq.read_table(folder / "frames.parquet")
    sensors = pq.read_table(folder / "sensors.parquet")
    fuse(frames.slice(0, 10), sensors.slice(0, 1000))  # import and first-call costs
    if mode == "tracemalloc":
        tracemalloc.start()
        fuse(frames, sensors, FusionConfig())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(json.dumps({"peak": peak}))
        return
    base = _rss_bytes()
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fuse(frames, sensors, FusionConfig())
    done.set()
    sampler.join()
    print(json.dumps({"peak": max(peak, _rss_bytes()) - base}))


def measure(folder: Path, mode: str) -> int:
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), "--mode", mode],
                         check=True, capture_output=True, text=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="rss", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode)
        return

    print(f"generating {args.rows:,} sensor rows and {args.frames:,} frames ...")
    start = time.perf_counter()
    frames, sensors = make_inputs(args.rows, args.frames)
    input_bytes = frames.nbytes + sensors.nbytes
    print(f"  {sensors.num_rows:,} rows, {frames.num_rows:,} frames, "
          f"{input_bytes / 1e6:.0f} MB in memory, {time.perf_counter() - start:.1f} s")

    t_floor, _ = median_time(lambda: floor_join(frames, sensors), args.repeat)
    t_fuse, result = median_time(lambda: fuse(frames, sensors, FusionConfig()), args.repeat)
    counts = result.counts
    with tempfile.TemporaryDirectory(prefix="bench-fusion-") as tmp:
        folder = Path(tmp)
        pq.write_table(frames, folder / "frames.parquet")
        pq.write_table(sensors, folder / "sensors.parquet")
        rss = measure(folder, "rss")
        traced = measure(folder, "tracemalloc")

    ratio = t_fuse / t_floor
    mem_ratio = rss / input_bytes
    print(f"fusion, {sensors.num_rows:,} sensor rows x {frames.num_rows:,} frames "
          f"(median of {args.repeat}, {os.cpu_count()} CPUs):")
    print(f"  floor (sort + searchsorted)  {t_floor:8.3f} s")
    print(f"  fuse                         {t_fuse:8.3f} s  (target <= {TARGET_SECONDS:g} s) "
          f"{'met' if t_fuse <= TARGET_SECONDS else 'MISSED'}")
    print(f"  fuse / floor                 {ratio:8.1f} x")
    print(f"  peak RSS growth in fuse      {rss / 1e6:8.0f} MB = {mem_ratio:.2f} x input "
          f"(target <= {TARGET_MEMORY_RATIO:g} x) "
          f"{'met' if mem_ratio <= TARGET_MEMORY_RATIO else 'MISSED'}")
    print(f"  tracemalloc peak in fuse     {traced / 1e6:8.0f} MB = "
          f"{traced / input_bytes:.2f} x input")
    print(f"  frames fused {counts['frames_fused']:,} of {counts['frames']:,}; "
          f"offsets estimated {counts['offsets_estimated']}, applied "
          f"{counts['offsets_applied']}; duplicates {counts['duplicates']:,}, out of order "
          f"{counts['out_of_order']:,}, unmatched sensor records "
          f"{counts['sensor_records_unmatched']:,}")


if __name__ == "__main__":
    main()
