"""Cost of contract validation and drift per 100k annotation rows, against reading them.

Builds an annotation table of N rows (canonical schema, valid boxes on N/4 frames), stores it as
the pipeline does (zstd Parquet bytes), then times, per repetition:

- read: Parquet bytes -> pandas (the floor: any check must at least read the table);
- validate: the imported_annotations contract through Great Expectations 1.x (schema, every
  column rule, relations to the frames table, quarantine rate), as the blocking check runs it;
- drift: the contract's drift columns against a reference 7x the size.

Prints medians, seconds per 100k rows and the ratios to the read floor, for N and 10N. Targets:
validate <= 2 s per 100k rows and growing linearly (10x the rows <= 12x the time); drift <= 2x
the read. Validation is reported against the read, not held to a ratio: Great Expectations makes
one pass per expectation (24 for this contract), so ~20-25x a columnar read is its shape.

    python benchmarks/checks/bench.py [--rows 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.core.tables import from_parquet_bytes, table_to_parquet_bytes
from dataops_cv.lib.validation.contracts import load_contracts, validate
from dataops_cv.lib.validation.drift import compare

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = load_contracts(ROOT / "data_contracts")
TARGET_VALIDATE_S_PER_100K = 2.0
TARGET_SCALING_10X = 12.0
TARGET_DRIFT_RATIO = 2.0


def annotations(rows: int, seed: int) -> tuple[bytes, pd.DataFrame]:
    """Parquet bytes of ``rows`` valid boxes, and the frames table they reference."""
    rng = np.random.default_rng(seed)
    images = [hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in range(rows // 4 + 1)]
    image = rng.integers(0, len(images), rows)
    x0 = rng.uniform(0, 1200, rows)
    y0 = rng.uniform(0, 640, rows)
    classes = np.array(["car", "pedestrian", "cyclist", "traffic_sign"])
    cls = rng.choice(len(classes), rows, p=[0.45, 0.25, 0.15, 0.15])
    table = pa.table({
        "image_sha256": pa.array(np.array(images)[image]),
        "annotation_id": pa.array([f"{seed:08x}{i:024x}" for i in range(rows)]),
        "class_name": pa.array(classes[cls]),
        "class_id": pa.array(cls.astype(np.int32)),
        "x_min": x0, "y_min": y0,
        "x_max": x0 + rng.uniform(4, 80, rows), "y_max": y0 + rng.uniform(4, 80, rows),
        "source": pa.array(["coco"] * rows),
        "annotator": pa.nulls(rows, pa.string()),
        "label_revision": pa.array(["files-sha256:0123456789abcdef"] * rows),
        "created_at": pa.nulls(rows, pa.timestamp("us", tz="UTC")),
        "updated_at": pa.nulls(rows, pa.timestamp("us", tz="UTC")),
        "score": pa.nulls(rows, pa.float64()),
        "review_state": pa.nulls(rows, pa.string()),
    }).cast(ANNOTATION_SCHEMA)
    frames = pd.DataFrame({"sha256": images})
    return table_to_parquet_bytes(table), frames


def measure(rows: int, repeat: int) -> dict[str, float]:
    contract = CONTRACTS["imported_annotations"]
    data, frames = annotations(rows, seed=1)
    reference = pd.concat([from_parquet_bytes(annotations(rows, seed=s)[0]).to_pandas()
                           for s in range(2, 9)], ignore_index=True)
    validate(contract, from_parquet_bytes(data).to_pandas(), related={"raw_frames": frames},
             quarantined=0)  # warm-up: GX context and suite are built once per process
    times: dict[str, list[float]] = {"read": [], "validate": [], "drift": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        df = from_parquet_bytes(data).to_pandas()
        t1 = time.perf_counter()
        report = validate(contract, df, related={"raw_frames": frames}, quarantined=0)
        t2 = time.perf_counter()
        drift = compare(contract, "d", df, reference, ("r",))
        t3 = time.perf_counter()
        assert report.success, [r.name for r in report.failed()]
        assert not drift.drifted, drift.drifted
        times["read"].append(t1 - t0)
        times["validate"].append(t2 - t1)
        times["drift"].append(t3 - t2)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": rows,
        **{f"{k}_s": round(v, 4) for k, v in med.items()},
        **{f"{k}_s_per_100k": round(v * 100_000 / rows, 4) for k, v in med.items()},
        "validate_vs_read": round(med["validate"] / med["read"], 2),
        "drift_vs_read": round(med["drift"] / med["read"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = [measure(args.rows, args.repeat), measure(args.rows * 10, max(2, args.repeat // 2))]
    small, large = results
    summary = {
        "results": results,
        "validate_scaling_10x": round(large["validate_s"] / small["validate_s"], 2),
        "targets": {"validate_s_per_100k": TARGET_VALIDATE_S_PER_100K,
                    "validate_scaling_10x": TARGET_SCALING_10X,
                    "drift_vs_read": TARGET_DRIFT_RATIO},
        "met": (small["validate_s_per_100k"] <= TARGET_VALIDATE_S_PER_100K
                and large["validate_s"] / small["validate_s"] <= TARGET_SCALING_10X
                and small["drift_vs_read"] <= TARGET_DRIFT_RATIO),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
