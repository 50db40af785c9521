"""How many frames people must review when the pre-label model drafts the rest (synthetic set).

Generates synthetic capture days with their true boxes, trains the pre-label detector on the
frames of ``--train-days`` (as if people had labeled them), predicts on one more day, and counts
the frames that need review so that the frames accepted without review are right (box F1 x
class agreement >= 0.8 against the truth) at 0.9 and 0.95 precision. Also prints training time
and throughput.

Floors, measured in the same run: without a model every frame is reviewed (so review counts are
printed as a share of the frames), and training and prediction are printed as multiples of
decoding the same frames into tensors (what any model must at least do with them).

    python benchmarks/labels/autolabel.py [--train-days 2] [--sessions 2] [--frames 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dataops_cv.lib.acquisition.importers import load_dataset
from dataops_cv.lib.labeling.autolabel import (
    frames_to_review,
    image_tensor,
    predict,
    seed_from,
    train,
    training_boxes,
)
from dataops_cv.lib.labeling.qa import pair_scores
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.drops import write_drop
from dataops_cv.lib.validation.contracts import load_taxonomy

ROOT = Path(__file__).resolve().parents[2]
TAXONOMY = load_taxonomy(ROOT / "data_contracts" / "taxonomy.yaml")
RIGHT_AT = 0.8


DECODE_SECONDS = [0.0]  # the floor: decoding every frame this run uses


def day(root: Path, date: str, sessions: int, frames: int):
    drop = root / date
    write_drop(SceneConfig(seed=7, sessions_per_day=sessions, frames_per_session=frames,
                           defects=DefectConfig.none()), date, drop)
    ds = load_dataset(drop, "auto", TAXONOMY)
    data = [(drop / e.rel_path).read_bytes() for e in ds.images]
    start = time.perf_counter()
    decoded = [image_tensor(d) for d in data]
    DECODE_SECONDS[0] += time.perf_counter() - start
    names = [f"{date}/{e.rel_path}" for e in ds.images]
    rows = [{"image_sha256": f"{date}/{b.image_rel_path}", "annotator": "truth",
             "class_name": b.class_name, "x_min": b.x_min, "y_min": b.y_min, "x_max": b.x_max,
             "y_max": b.y_max, "annotation_id": f"{date}/{b.annotation_id}"} for b in ds.boxes]
    return names, torch.stack([d[0] for d in decoded]), [(d[1], d[2]) for d in decoded], rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-days", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-autolabel-") as tmp:
        names, images, sizes, rows = [], [], [], []
        for d in range(args.train_days):
            n, x, s, r = day(Path(tmp), f"2026-08-{d + 1:02d}", args.sessions, args.frames)
            names += n
            images.append(x)
            sizes += s
            rows += r
        boxes = training_boxes(rows, dict(zip(names, sizes, strict=True)), TAXONOMY)
        start = time.perf_counter()
        model = train(torch.cat(images), [boxes.get(n, []) for n in names], TAXONOMY,
                      seed_from([r["annotation_id"] for r in rows]), steps=args.steps)
        t_train = time.perf_counter() - start
        test_names, test_x, test_sizes, test_rows = day(Path(tmp), "2026-08-28", args.sessions,
                                                        args.frames)
    truth: dict[str, list] = {}
    for r in test_rows:
        truth.setdefault(r["image_sha256"], []).append(
            (r["class_name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]))
    start = time.perf_counter()
    predictions = predict(model, test_x, test_sizes)
    t_pred = time.perf_counter() - start
    results = []
    for name, (dets, uncertainty) in zip(test_names, predictions, strict=True):
        f1, cls = pair_scores([(d.class_name, d.x_min, d.y_min, d.x_max, d.y_max) for d in dets],
                              truth.get(name, []))
        results.append((uncertainty, f1 * cls >= RIGHT_AT))
    right = sum(ok for _, ok in results)
    decode = DECODE_SECONDS[0] / (len(names) + len(test_names))  # per frame
    print(f"floor: decoding a frame into a tensor takes {decode * 1000:.2f} ms; without a model "
          f"all {len(results)} new frames are reviewed")
    print(f"pre-label model {model.version}: trained on {len(names)} labeled frames in "
          f"{t_train:.1f} s = {t_train / (decode * len(names)):.0f} x decoding them "
          f"({args.steps} steps, 1 thread); predicting {len(results) / t_pred:.0f} frames/s = "
          f"{t_pred / (decode * len(results)):.1f} x decoding them")
    print(f"  {len(results)} new frames, {right} drafted right (F1 x class >= {RIGHT_AT})")
    for precision in (0.9, 0.95):
        n = frames_to_review(results, precision)
        print(f"  frames to review for {precision:.0%} precision on the rest: {n} of "
              f"{len(results)} = {n / len(results):.2f} x the no-model floor")


if __name__ == "__main__":
    main()
