"""The one canonical annotation table every importer and the Label Studio pull produce.

Boxes are axis-aligned, in pixels, ``x_min < x_max`` and ``y_min < y_max``, in the frame of the
image after its EXIF orientation has been applied (the pixels we store and train on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import pyarrow as pa

from dataops_cv.lib.core.quarantine import Reason

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


@dataclass(frozen=True)
class BoxRules:
    """When a box that is valid in its format is still not a plausible object (the ``boxes``
    section of an annotations contract). Applied after the format's own convention and the
    EXIF turn, in every importer and the Label Studio pull; a box that breaks one is
    quarantined with the rule and the value, and counts against the quarantine-rate rule.

    ``min_side_px``: a side must be longer than this. The default (1 px) sets aside what a
    Pascal VOC ``xmax = xmin`` becomes under VOC's inclusive pixel convention: one pixel, the
    usual mark of a zero-width box written by a tool that ignores the convention, and nothing
    a detector learns from. ``max_aspect_ratio``: the longer side over the shorter; None turns
    the rule off.
    """

    min_side_px: float = 1.0
    max_aspect_ratio: float | None = 50.0

    def problem(self, x_min: float, y_min: float, x_max: float, y_max: float
                ) -> tuple[Reason, str] | None:
        """``(reason, detail)`` for an implausible box, None for a plausible one."""
        w, h = x_max - x_min, y_max - y_min
        short, long_ = min(w, h), max(w, h)
        if short <= self.min_side_px + 1e-9:
            return Reason.BOX_TOO_SMALL, (f"box ({x_min:g}, {y_min:g}, {x_max:g}, {y_max:g}) is {w:g} x "
                                 f"{h:g} px: a side must be longer than {self.min_side_px:g} px "
                                 "(contract boxes.min_side_px)")
        if self.max_aspect_ratio is not None and long_ / short > self.max_aspect_ratio:
            return Reason.BOX_IMPLAUSIBLE_ASPECT, (f"box ({x_min:g}, {y_min:g}, {x_max:g}, {y_max:g}) is {w:g} x "
                              f"{h:g} px, aspect ratio {long_ / short:.0f}:1 > "
                              f"{self.max_aspect_ratio:g}:1 (contract boxes.max_aspect_ratio)")
        return None
