"""Ingest throughput, incremental cost and memory, against floors measured in the same run.

    python benchmarks/ingest/bench.py [--files 5000] [--scale 10] [--workers 8]

1. Writes ``--files`` JPEG frames (synthetic scenes at --width x --height, default 1280x720,
   with sensor-like noise so they decode like camera photos) into a temp folder.
2. Floor: read + SHA-256 + full PIL decode of every file, sequentially, in this process.
3. Full ingest into a real lakeFS (started here): list, read, hash, decode, validate,
   content-addressed upload, metadata table, commit — in a child process, for its peak RSS.
4. Incremental: +1% new files, re-ingest with the previous table (only new files are read).
5. Memory: full ingests of ``--files`` and ``--scale`` x as many small frames; peak RSS growth
   (memory follows the number of files, not their size).

Targets: ingest >= 0.5 x floor images/s; +1% re-run <= 5% of the full run; RSS growth <= 1.5x
for 10x data. Ratios are printed; nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import render_scene

HERE = Path(__file__).resolve()


BASE_FRAMES = 32


def _base_jpegs(width: int, height: int) -> list[bytes]:
    # One camera's session, sharp and without planted defects: the floor decodes every file.
    config = SceneConfig(seed=1, sessions_per_day=1, frames_per_session=BASE_FRAMES,
                         cameras=("cam_front",), width=width, height=height,
                         blur_probability=0.0, defects=DefectConfig.none())
    out = []
    for i in range(BASE_FRAMES):
        scene = render_scene(config, "2026-01-01", 0, "cam_front", i)
        pixels = np.asarray(scene.image, dtype=np.int16)
        # Sensor-like noise: flat procedural shapes decode far faster than photographs, which
        # would flatter the floor; textured frames compress and decode like camera JPEGs.
        noise = np.random.default_rng(i).normal(0, 10, pixels.shape).astype(np.int16)
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(
            buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def write_files(folder: Path, start: int, count: int, width: int, height: int) -> None:
    """``count`` distinct JPEG files: a few rendered frames, each file made unique by a JPEG
    comment segment with its index (distinct hash, same decode cost), so writing 50k files
    takes seconds instead of an hour."""
    folder.mkdir(parents=True, exist_ok=True)
    bases = _base_jpegs(width, height)
    for i in range(start, start + count):
        base = bases[i % len(bases)]
        comment = f"dataops-cv bench frame {i}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        (folder / f"{i:07d}.jpg").write_bytes(base[:2] + segment + base[2:])


def floor(folder: Path) -> float:
    t = time.perf_counter()
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    return time.perf_counter() - t


def child(args: argparse.Namespace) -> None:
    """One ingest run, in its own process so its peak RSS is its own."""
    from dataops_cv.lib.acquisition.ingest import ingest_images
    from dataops_cv.lib.acquisition.sources import LocalSource
    from dataops_cv.lib.core.tables import (
        PARQUET_CONTENT_TYPE,
        from_parquet_bytes,
        table_to_parquet_bytes,
    )
    from dataops_cv.lib.lakefs.run_branch import RunBranch, ensure_run_branch
    from dataops_cv.lib.lakefs.store import LakeFSConfig, LakeFSStore
    from dataops_cv.lib.publishing.publish import publish_run

    env = os.environ
    store = LakeFSStore(LakeFSConfig(env["LAKEFS_ENDPOINT"], env["LAKEFS_ACCESS_KEY_ID"],
                                     env["LAKEFS_SECRET_ACCESS_KEY"], env["LAKEFS_REPOSITORY"]))
    table = f"tables/raw_frames/date={args.partition}/part-00000.parquet"
    t = time.perf_counter()
    branch = ensure_run_branch(store, args.run_id, "main")
    run = RunBranch(store, branch, {})
    previous = from_parquet_bytes(run.read(table)).to_pylist() if run.exists(table) else []
    result = ingest_images(LocalSource(Path(args.folder)), args.partition, previous, [],
                           run.put_content_addressed, workers=args.workers)
    run.put(table, table_to_parquet_bytes(result.table), PARQUET_CONTENT_TYPE)
    run.commit("bench ingest")
    publish_run(store, args.run_id, {})
    elapsed = time.perf_counter() - t
    # VmHWM, not ru_maxrss: a child started by fork + exec inherits its parent's ru_maxrss.
    with open("/proc/self/status") as f:
        rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": rss_mb, "counts": result.counts}))


def run_child(folder: Path, partition: str, run_id: str, workers: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", "--folder", str(folder), "--partition", partition,
         "--run-id", run_id, "--workers", str(workers)],
        capture_output=True, text=True, check=True, env=os.environ.copy(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--scale", type=int, default=10)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--width", type=int, default=1280, help="frame size for throughput runs")
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--partition", help=argparse.SUPPRESS)
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0

    from dataops_cv.lib.services.lakefs_server import LocalLakeFS, ensure_lakefs_binary

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = LocalLakeFS(tmp_path / "lakefs", port=port, repository="bench")
        server.start(binary=ensure_lakefs_binary())
        try:
            os.environ.update(server.client_env())
            from dataops_cv.lib.lakefs.store import LakeFSConfig, LakeFSStore
            env = server.client_env()
            LakeFSStore(LakeFSConfig(env["LAKEFS_ENDPOINT"], env["LAKEFS_ACCESS_KEY_ID"],
                                     env["LAKEFS_SECRET_ACCESS_KEY"], "bench")
                        ).ensure_repository("local://bench")
            small = tmp_path / "small"
            write_files(small, 0, args.files, args.width, args.height)
            floor_s = floor(small)
            full = run_child(small, "2026-01-01", "full", args.workers)
            extra = max(1, args.files // 100)
            write_files(small, args.files, extra, args.width, args.height)
            incr = run_child(small, "2026-01-01", "incremental", args.workers)
            large = tmp_path / "large"
            # Memory scales with the number of files (rows), not their size: small frames keep
            # the 10x folder affordable on disk. Its 1x baseline uses the same small frames.
            base = tmp_path / "base"
            write_files(base, 0, args.files, 160, 120)
            base_run = run_child(base, "2026-01-02", "base", args.workers)
            write_files(large, 0, args.files * args.scale, 160, 120)
            big = run_child(large, "2026-01-03", "scaled", args.workers)
        finally:
            server.stop()

    floor_ips = args.files / floor_s
    ingest_ips = args.files / full["seconds"]
    result = {
        "files": args.files,
        "floor_images_per_s": round(floor_ips, 1),
        "ingest_images_per_s": round(ingest_ips, 1),
        "ingest_vs_floor": round(ingest_ips / floor_ips, 3),
        "full_s": round(full["seconds"], 2),
        "incremental_s": round(incr["seconds"], 2),
        "incremental_vs_full": round(incr["seconds"] / full["seconds"], 3),
        "incremental_counts": incr["counts"],
        "rss_mb_1x": round(base_run["peak_rss_mb"], 1),
        f"rss_mb_{args.scale}x": round(big["peak_rss_mb"], 1),
        "rss_growth": round(big["peak_rss_mb"] / base_run["peak_rss_mb"], 3),
    }
    print(json.dumps(result, indent=2))
    ok = (result["ingest_vs_floor"] >= 0.5 and result["incremental_vs_full"] <= 0.05
          and result["rss_growth"] <= 1.5)
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
