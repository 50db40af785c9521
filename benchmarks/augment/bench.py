"""Augmentation throughput against the decode floor, measured in the same run.

Makes N synthetic street frames (PNG, the rig's default encoding) with their exact boxes, then
per repetition times:

- floor: decode every PNG to RGB pixels (what any consumer of the bytes pays);
- pixels: decode + sample parameters + the kernels (no encoding): what rendering a variant from
  its recipe costs a reader (``TrainingSetDataset``, exports);
- full: what ``augmented_samples`` does per variant: decode + parameters + kernels + box
  transform + PNG encoding + SHA-256 (``augment_stream``).

Prints median samples/s of each and the ratios full / floor and pixels / floor. K variants per
sample (default: the policy's, 2; each source decoded once for its K) are counted as K samples.
Targets: pixels >= 0.25x the decode floor at 1280x720 on CPU (issue 15: the recipe path renders
on the fly); full >= 0.2x at 640x480 (PNG encoding alone costs ~3x a decode).

    python benchmarks/augment/bench.py [--samples 64] [--size 1280x720] [--variants K]
        [--repeat 3] [--batch 16] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dataops_cv.lib.augmentation.kernels import apply_batch, resolve_device
from dataops_cv.lib.augmentation.params import sample_params
from dataops_cv.lib.augmentation.policy import load_policy
from dataops_cv.lib.augmentation.stream import SourceBox, SourceSample, augment_stream, decode_rgb
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import synthetic_frame

POLICY = Path(__file__).resolve().parents[2] / "data_contracts" / "augmentation_policy.yaml"
TARGET = 0.2  # full / floor
PIXELS_TARGET = 0.25  # pixels / floor


def make_samples(n: int, width: int, height: int) -> list[SourceSample]:
    cams = ("cam_front", "cam_left", "cam_right")
    per = -(-n // len(cams))
    config = SceneConfig(width=width, height=height, frames_per_session=max(per, 1),
                         sessions_per_day=1, cameras=cams, defects=DefectConfig.none())
    out = []
    for i in range(n):
        f = synthetic_frame(config, "2026-01-01", 0, cams[i % len(cams)], i // len(cams))
        boxes = tuple(SourceBox(f"{f.sha256}:{j}", name, None, (x1, y1, x2, y2))
                      for j, (name, x1, y1, x2, y2) in enumerate(f.boxes))
        data = f.data
        out.append(SourceSample(f.sha256, (lambda d=data: d), boxes, "imported"))
    return out


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--variants", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    policy = load_policy(POLICY)
    device = resolve_device(args.device)
    if args.variants is None:
        args.variants = policy.variants_per_sample
    samples = make_samples(args.samples, width, height)
    n = len(samples) * args.variants

    def floor() -> None:
        for s in samples:
            decode_rgb(s.load())

    def pixels() -> None:
        for start in range(0, len(samples), args.batch):
            chunk = samples[start:start + args.batch]
            imgs, ps = [], []
            for s in chunk:
                img = decode_rgb(s.load())
                for v in range(args.variants):
                    imgs.append(img)
                    ps.append(sample_params(policy, s.sha256, v, width, height))
            apply_batch(imgs, ps, device)

    def full() -> None:
        for _ in augment_stream(samples, policy, variants=args.variants,
                                batch_size=args.batch, device=device):
            pass

    full()  # warm-up: torch import and first-call allocations
    t_floor = timed(floor, args.repeat)
    t_pixels = timed(pixels, args.repeat)
    t_full = timed(full, args.repeat)
    rate = {name: n / t if name != "floor" else len(samples) / t
            for name, t in (("floor", t_floor), ("pixels", t_pixels), ("full", t_full))}
    print(f"{len(samples)} samples x {args.variants} variants at {width}x{height}, device "
          f"{device}, batch {args.batch}, policy {policy.version}")
    print(f"{'stage':<8} {'median s':>9} {'samples/s':>10} {'x floor':>8}")
    for name, t in (("floor", t_floor), ("pixels", t_pixels), ("full", t_full)):
        print(f"{name:<8} {t:>9.3f} {rate[name]:>10.1f} {rate[name] / rate['floor']:>8.2f}")
    pix = rate["pixels"] / rate["floor"]
    print(f"pixels / floor = {pix:.2f}x (target >= {PIXELS_TARGET}x): "
          f"{'met' if pix >= PIXELS_TARGET else 'MISSED'}")
    ratio = rate["full"] / rate["floor"]
    print(f"full / floor = {ratio:.2f}x (target >= {TARGET}x): "
          f"{'met' if ratio >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
