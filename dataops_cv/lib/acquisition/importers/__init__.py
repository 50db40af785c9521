"""Read public CV datasets (COCO JSON, Pascal VOC XML, YOLO txt, Label Studio JSON export) into
one normalised form, setting aside every bad record with a machine-readable reason; write COCO,
VOC and YOLO back out for round trips.

Boxes are xyxy pixels in the image's declared frame. The shared rules (safe paths, 1 px clipping
tolerance, how a missing image sets aside its boxes) are in ``common``; each format module's
docstring states its own conventions (VOC's 1-based pixels, Label Studio's rotation rule).
"""

from dataops_cv.lib.acquisition.importers.coco import load_coco, write_coco
from dataops_cv.lib.acquisition.importers.common import (
    CLIP_TOLERANCE_PX,
    BoxRecord,
    DatasetError,
    ImageEntry,
    ImportedDataset,
    UnsafePathError,
    safe_rel_path,
)
from dataops_cv.lib.acquisition.importers.detect import FORMATS, detect_format, load_dataset
from dataops_cv.lib.acquisition.importers.labelstudio import ROTATED_REVIEW_STATE, load_labelstudio
from dataops_cv.lib.acquisition.importers.voc import load_voc, write_voc
from dataops_cv.lib.acquisition.importers.yolo import load_yolo, write_yolo

__all__ = [
    "CLIP_TOLERANCE_PX",
    "FORMATS",
    "ROTATED_REVIEW_STATE",
    "BoxRecord",
    "DatasetError",
    "ImageEntry",
    "ImportedDataset",
    "UnsafePathError",
    "detect_format",
    "load_coco",
    "load_dataset",
    "load_labelstudio",
    "load_voc",
    "load_yolo",
    "safe_rel_path",
    "write_coco",
    "write_voc",
    "write_yolo",
]
