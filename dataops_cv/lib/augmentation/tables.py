"""The tables augmentation writes: ``augmented_samples`` and its boxes, and their object keys.

A row of ``augmented_samples`` (:data:`AUGMENTED_SCHEMA`) records a variant's source, input key
and every sampled parameter — its recipe — so any variant can be rebuilt from its row and its
source's bytes alone (:func:`dataops_cv.lib.augmentation.stream.render_png`); ``rendered`` says
whether its PNG is also stored (``sha256`` and ``object_key`` are null otherwise). Its kept boxes
go to a companion table (:data:`AUGMENTED_BOXES_SCHEMA`). Loading the schemas needs no torch.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pyarrow as pa

from dataops_cv.lib.lakefs.layout import augmented_key

if TYPE_CHECKING:
    from dataops_cv.lib.augmentation.policy import AugmentationPolicy
    from dataops_cv.lib.augmentation.stream import AugmentedVariant

AUGMENTED_SCHEMA = pa.schema([
    ("sha256", pa.string()), ("object_key", pa.string()), ("source_sha256", pa.string()),
    ("source_object_key", pa.string()), ("variant", pa.int32()), ("input_key", pa.string()),
    ("policy_version", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("label_source", pa.string()), ("boxes", pa.int32()), ("boxes_dropped", pa.int32()),
    ("min_box_visibility", pa.float64()), ("hflip", pa.bool_()), ("vflip", pa.bool_()),
    ("crop_x", pa.int32()), ("crop_y", pa.int32()), ("crop_w", pa.int32()), ("crop_h", pa.int32()),
    ("rotate_deg", pa.float64()), ("scale", pa.float64()), ("translate_x", pa.float64()),
    ("translate_y", pa.float64()), ("brightness", pa.float64()), ("contrast", pa.float64()),
    ("saturation", pa.float64()), ("blur_kernel", pa.int32()), ("noise_std", pa.float64()),
    ("cutouts", pa.int32()), ("params", pa.string()), ("rendered", pa.bool_()),
])
# The boxes of every variant, in the canonical annotation columns plus where each came from.
AUGMENTED_BOXES_SCHEMA = pa.schema([
    ("image_sha256", pa.string()), ("annotation_id", pa.string()), ("input_key", pa.string()),
    ("source_sha256", pa.string()), ("source_annotation_id", pa.string()),
    ("class_name", pa.string()), ("class_id", pa.int32()), ("x_min", pa.float64()),
    ("y_min", pa.float64()), ("x_max", pa.float64()), ("y_max", pa.float64()),
    ("visibility", pa.float64()),
])



def variant_row(v: AugmentedVariant, policy: AugmentationPolicy, source_object_key: str) -> dict:
    """The ``augmented_samples`` row of a variant (AUGMENTED_SCHEMA)."""
    p = v.params
    crop = p.crop or (None, None, None, None)
    return {
        "sha256": v.sha256,
        "object_key": augmented_key(v.sha256) if v.sha256 is not None else None,
        "source_sha256": v.source.sha256, "source_object_key": source_object_key,
        "variant": v.variant, "input_key": v.input_key, "policy_version": policy.version,
        "width": p.width, "height": p.height, "label_source": v.source.label_source,
        "boxes": len(v.boxes), "boxes_dropped": v.boxes_dropped,
        "min_box_visibility": min((b["visibility"] for b in v.boxes), default=None),
        "hflip": p.hflip, "vflip": p.vflip, "crop_x": crop[0], "crop_y": crop[1],
        "crop_w": crop[2], "crop_h": crop[3], "rotate_deg": p.rotate_deg, "scale": p.scale,
        "translate_x": p.translate[0], "translate_y": p.translate[1],
        "brightness": p.brightness, "contrast": p.contrast, "saturation": p.saturation,
        "blur_kernel": p.blur_kernel, "noise_std": p.noise_std, "cutouts": len(p.cutouts),
        "params": p.to_json(), "rendered": v.sha256 is not None,
    }


def variant_box_rows(v: AugmentedVariant) -> list[dict]:
    """The variant's kept boxes (AUGMENTED_BOXES_SCHEMA); ids are stable per (input, box)."""
    return [{"image_sha256": v.sha256,  # None for a recipe; input_key names the variant
             "annotation_id": hashlib.sha256(
                 f"{v.input_key}:{b['source_annotation_id']}".encode()).hexdigest()[:32],
             "input_key": v.input_key, "source_sha256": v.source.sha256, **b} for b in v.boxes]
