"""Curation features (phash + thumbnail embedding) of a day's frames, one process against every
core, against the decode + hash floor of the same bytes measured in the same run.

Frames are the generator's 1280x720 scenes re-encoded as JPEG with per-pixel sensor noise (they
decode like camera photos). Prints, for one worker and for ``--workers`` (default: every CPU),
the wall time, frames per second, the ratio to the floor and the speed-up, and checks the two
give the same rows.

    python benchmarks/curation/bench_features.py [--frames 400] [--workers 0]

Target (issue 15, item 3): features on every core; together with the rest of curation <= 2x
the floor at 10k frames (benchmarks/e2e measures that).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import time

import numpy as np
from PIL import Image

from dataops_cv.lib.core.parallel import resolve_workers
from dataops_cv.lib.curation.feature_cache import Features, day_features
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day


def frames(n: int, width: int, height: int) -> dict[str, bytes]:
    config = SceneConfig(seed=1, sessions_per_day=1, frames_per_session=n, cameras=("cam",),
                         width=width, height=height, image_format="jpeg",
                         defects=DefectConfig.none())
    out: dict[str, bytes] = {}
    for i, f in enumerate(generate_day(config, "2026-06-01", workers=2)):
        if f.format != "jpeg":
            continue
        with Image.open(io.BytesIO(f.data)) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
        noise = np.random.default_rng(i).normal(0, 10, pixels.shape).astype(np.int16)
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)).save(
            buf, format="JPEG", quality=90)
        out[hashlib.sha256(buf.getvalue()).hexdigest()] = buf.getvalue()
    return out


def floor(data: dict[str, bytes]) -> float:
    t = time.perf_counter()
    for b in data.values():
        hashlib.sha256(b).hexdigest()
        with Image.open(io.BytesIO(b)) as img:
            img.load()
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--workers", type=int, default=0, help="0: every CPU available")
    args = parser.parse_args()
    data = frames(args.frames, args.width, args.height)
    keys = {sha: sha for sha in data}
    base = floor(data)
    workers = resolve_workers(args.workers)
    print(f"{len(data)} frames {args.width}x{args.height} JPEG "
          f"({sum(map(len, data.values())) / len(data) / 1e3:.0f} KB each); "
          f"floor (SHA-256 + full decode, one process) {base:.2f} s")
    results = {}
    for n in sorted({1, workers}):
        t = time.perf_counter()
        rows, _ = day_features(data.__getitem__, keys, Features.empty(), workers=n)
        wall = time.perf_counter() - t
        results[n] = (rows, wall)
        print(f"  features, {n} worker(s): {wall:6.2f} s  {len(data) / wall:6.1f} frames/s  "
              f"{wall / base:5.2f}x floor")
    if workers > 1:
        same = (results[1][0].to_table().equals(results[workers][0].to_table()))
        print(f"  speed-up {results[1][1] / results[workers][1]:.2f}x on {workers} workers; "
              f"rows identical: {same}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
