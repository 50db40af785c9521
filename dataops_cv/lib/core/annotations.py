"""The one canonical annotation table every importer and the Label Studio pull produce.

Boxes are axis-aligned, in pixels, ``x_min < x_max`` and ``y_min < y_max``, in the frame of the
image after its EXIF orientation has been applied (the pixels we store and train on).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import pyarrow as pa

ANNOTATION_SCHEMA = pa.schema(
    [
        ("image_sha256", pa.string()),
        ("annotation_id", pa.string()),
        ("class_name", pa.string()),
        ("class_id", pa.int32()),
        ("x_min", pa.float64()),
        ("y_min", pa.float64()),
        ("x_max", pa.float64()),
        ("y_max", pa.float64()),
        ("source", pa.string()),  # coco | voc | yolo | labelstudio | synthetic | model
        ("annotator", pa.string()),
        ("label_revision", pa.string()),  # lakeFS commit of the snapshot that holds this label
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("updated_at", pa.timestamp("ms", tz="UTC")),
        ("score", pa.float64()),  # model pre-labels only
        ("review_state", pa.string()),
    ]
)


def annotation_id(source: str, native_id: str) -> str:
    """Stable id: the same native annotation from the same source always gets the same id."""
    return hashlib.sha256(f"{source}\x00{native_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Annotation:
    """One box of the canonical table (see ``ANNOTATION_SCHEMA`` for the column meanings)."""

    image_sha256: str
    annotation_id: str
    class_name: str
    class_id: int | None
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    source: str
    annotator: str | None = None
    label_revision: str | None = None
    created_at: object | None = None
    updated_at: object | None = None
    score: float | None = None
    review_state: str | None = None

    def row(self) -> dict:
        return asdict(self)
