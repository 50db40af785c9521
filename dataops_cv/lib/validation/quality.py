"""Per-partition quality summaries: a few numbers per materialization that the Dagster UI plots
across partitions (image exposure, sharpness and size; boxes per image, box sizes, class mix).

Image metrics themselves are computed once per file at ingest
(:func:`dataops_cv.lib.core.images.quality_metrics`) and stored in the frames table; these functions
only aggregate table columns, so they never read image bytes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np


def _quantiles(name: str, values: np.ndarray, qs: Iterable[int] = (5, 50, 95)) -> dict[str, float]:
    if values.size == 0:
        return {}
    out = {f"{name}_mean": float(values.mean())}
    for q in qs:
        out[f"{name}_p{q:02d}"] = float(np.percentile(values, q))
    return out


def frame_quality_summary(
    frames: Iterable[Mapping[str, object]], blur_threshold: float = 100.0,
) -> dict[str, float]:
    """Summary of a day's frames table (duplicates counted once, by their first copy).

    Returns keys ``brightness_*``, ``contrast_*``, ``laplacian_var_*`` (mean, p05, p50, p95),
    ``megapixels_mean``, ``aspect_p50``, and ``blurry_fraction`` (share of frames whose Laplacian
    variance is below ``blur_threshold``); empty when there are no frames.
    """
    rows = [f for f in frames if not f.get("duplicate_of")]
    if not rows:
        return {}

    def col(name: str) -> np.ndarray:
        return np.array([float(r[name]) for r in rows if r.get(name) is not None], dtype=np.float64)

    width, height = col("width"), col("height")
    lap = col("laplacian_var")
    out: dict[str, float] = {}
    for name in ("brightness", "contrast", "laplacian_var"):
        out.update(_quantiles(name, col(name)))
    out["megapixels_mean"] = float((width * height).mean() / 1e6)
    out["aspect_p50"] = float(np.median(width / height))
    if lap.size:
        out["blurry_fraction"] = float((lap < blur_threshold).mean())
    return out


def label_quality_summary(
    annotations: Iterable[Mapping[str, object]], frames: Iterable[Mapping[str, object]],
) -> dict[str, float]:
    """Summary of a day's annotation table against its frames.

    Returns ``boxes_per_image_*`` (over every original frame, unlabeled ones counting 0),
    ``labeled_fraction``, ``box_area_fraction_*`` (box area / image area), ``classes``,
    ``class_entropy_bits``, ``class_imbalance`` (largest class count / smallest) and
    ``class_share_<name>`` for every class present.
    """
    sizes = {str(f["sha256"]): (float(f["width"]), float(f["height"]))  # type: ignore[arg-type]
             for f in frames if not f.get("duplicate_of")}
    per_image: Counter[str] = Counter()
    areas: list[float] = []
    classes: Counter[str] = Counter()
    for a in annotations:
        sha = str(a["image_sha256"])
        per_image[sha] += 1
        classes[str(a["class_name"])] += 1
        if sha in sizes:
            w, h = sizes[sha]
            x0, y0, x1, y1 = (float(a[k]) for k in ("x_min", "y_min", "x_max", "y_max"))  # type: ignore[arg-type]
            areas.append((x1 - x0) * (y1 - y0) / (w * h) if w * h else 0.0)
    out: dict[str, float] = {}
    counts = np.array([per_image.get(sha, 0) for sha in sizes], dtype=np.float64)
    if counts.size:
        out.update(_quantiles("boxes_per_image", counts, (50, 95)))
        out["boxes_per_image_max"] = float(counts.max())
        out["labeled_fraction"] = float((counts > 0).mean())
    out.update(_quantiles("box_area_fraction", np.array(areas, dtype=np.float64)))
    total = sum(classes.values())
    if total:
        shares = {name: n / total for name, n in sorted(classes.items())}
        out["classes"] = float(len(shares))
        out["class_entropy_bits"] = float(-sum(p * math.log2(p) for p in shares.values()))
        out["class_imbalance"] = float(max(classes.values()) / min(classes.values()))
        out.update({f"class_share_{name}": p for name, p in shares.items()})
    return out
