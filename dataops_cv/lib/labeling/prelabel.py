"""What pre-labels become in Label Studio and how good they are against known boxes.

Dependency-light on purpose: the detector itself (:mod:`dataops_cv.lib.labeling.autolabel`)
imports torch, this module does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa

from dataops_cv.lib.labeling.labelstudio_client import FROM_NAME, TO_NAME

MIN_LABELED_FRAMES = 8
MAX_TRAINING_FRAMES = 512
PREDICT_BATCH = 32
REVIEW_PRECISIONS = (0.9, 0.95)
RIGHT_AT = 0.8  # a frame's pre-labels are right when box F1 x class agreement reaches this
PRELABELS_SCHEMA = pa.schema([
    ("image_sha256", pa.string()), ("ls_task_id", pa.int64()), ("model_version", pa.string()),
    ("uncertainty", pa.float64()), ("boxes", pa.string()),  # JSON list of detections
])

Box = tuple[str, float, float, float, float]


def prediction_result(det, width: int, height: int) -> dict:
    """A detection (``autolabel.Detection``) as a Label Studio prediction result (percent box)."""
    return {"type": "rectanglelabels", "from_name": FROM_NAME, "to_name": TO_NAME,
            "original_width": width, "original_height": height, "score": round(det.score, 6),
            "value": {"x": det.x_min / width * 100, "y": det.y_min / height * 100,
                      "width": (det.x_max - det.x_min) / width * 100,
                      "height": (det.y_max - det.y_min) / height * 100, "rotation": 0,
                      "rectanglelabels": [det.class_name]}}


def boxes_by_image(rows: Iterable[Mapping]) -> dict[str, list[Box]]:
    """(class, x_min, y_min, x_max, y_max) per image of canonical annotation rows."""
    out: dict[str, list[Box]] = {}
    for r in rows:
        out.setdefault(str(r["image_sha256"]), []).append(
            (r["class_name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]))
    return out


def review_counts(right: Sequence[tuple[float, bool]],
                  frames_to_review) -> dict[str, int]:
    """How many frames people must review for the accepted pre-labels to reach each of
    ``REVIEW_PRECISIONS``, and how many were right, from (uncertainty, right) per frame.

    Args:
        frames_to_review: ``autolabel.frames_to_review`` (passed in to keep torch out of here).
    """
    if not right:
        return {}
    out = {f"review_needed_at_precision_{p}": int(frames_to_review(right, p))
           for p in REVIEW_PRECISIONS}
    out["prelabels_right"] = sum(ok for _, ok in right)
    return out
