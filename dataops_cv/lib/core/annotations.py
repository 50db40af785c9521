"""The one canonical annotation table every importer and the Label Studio pull produce.

Boxes are axis-aligned, in pixels, ``x_min < x_max`` and ``y_min < y_max``, in the frame of the
image after its EXIF orientation has been applied (the pixels we store and train on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import pyarrow as pa

# A box, as every table that holds boxes spells it (annotations, curation's boxes, augmented
# variants' boxes, training-set annotations and shards).
BOX_FIELDS = (
    pa.field("annotation_id", pa.string()),
    pa.field("class_name", pa.string()),
    pa.field("class_id", pa.int32()),
    pa.field("x_min", pa.float64()),
    pa.field("y_min", pa.float64()),
    pa.field("x_max", pa.float64()),
    pa.field("y_max", pa.float64()),
)
BOX_COLUMNS = tuple(f.name for f in BOX_FIELDS)
XYXY = ("x_min", "y_min", "x_max", "y_max")

ANNOTATION_SCHEMA = pa.schema(
    [
        ("image_sha256", pa.string()),
        *BOX_FIELDS,
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


def boxes_by_image(rows: Iterable[Mapping]) -> dict[str, list[Mapping]]:
    """Annotation rows grouped by ``image_sha256``, in their order."""
    out: dict[str, list[Mapping]] = {}
    for r in rows:
        out.setdefault(r["image_sha256"], []).append(r)
    return out


def label_source(sha256: str, labeled: Mapping[str, list], imported: Mapping[str, list]
                 ) -> tuple[list, str]:
    """The boxes a frame is trained and curated with: human labels (``labeled``) win over the
    labels shipped with the source (``imported``); a frame with neither has none."""
    if sha256 in labeled:
        return labeled[sha256], "labeled"
    if sha256 in imported:
        return imported[sha256], "imported"
    return [], "none"
