"""Why a file or record was set aside. Every reason is machine-readable (a stable code) and comes
with a human detail; nothing unusable is dropped silently."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import pyarrow as pa


class Reason(StrEnum):
    EMPTY_FILE = "empty_file"
    TRUNCATED_IMAGE = "truncated_image"
    NOT_AN_IMAGE = "not_an_image"
    DECOMPRESSION_BOMB = "decompression_bomb"
    UNSUPPORTED_IMAGE_MODE = "unsupported_image_mode"
    NAME_CONFLICT = "name_conflict"  # same file name, different bytes
    UNSAFE_PATH = "unsafe_path"  # path traversal or absolute path in an annotation file
    MISSING_IMAGE = "missing_image"  # an annotation points at an image that is not there
    MALFORMED_ANNOTATION_FILE = "malformed_annotation_file"  # bad JSON / XML / txt
    BOX_OUT_OF_BOUNDS = "box_out_of_bounds"
    BOX_DEGENERATE = "box_degenerate"  # zero or negative area
    BOX_NOT_FINITE = "box_not_finite"  # NaN or infinite coordinate
    BOX_TOO_SMALL = "box_too_small"  # a side at or below the contract's boxes.min_side_px
    BOX_IMPLAUSIBLE_ASPECT = "box_implausible_aspect"  # beyond boxes.max_aspect_ratio
    UNKNOWN_CLASS = "unknown_class"
    MALFORMED_SENSOR_RECORD = "malformed_sensor_record"
    ROTATED_BOX = "rotated_box"
    EMPTY_ANNOTATION = "empty_annotation"  # a submitted or skipped annotation without boxes
    TASK_DELETED = "task_deleted"  # labels whose Label Studio task no longer exists


QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_uri", pa.string()),  # the file (and record, after '#') that was set aside
        ("kind", pa.string()),  # image | annotation | annotation_file | sensor_record
        ("reason", pa.string()),  # a Reason value
        ("detail", pa.string()),
        ("sha256", pa.string()),  # of the kept bytes, when bytes were kept
        ("object_key", pa.string()),  # where the bytes are kept in lakeFS, if any
        ("size", pa.int64()),  # source listing size and fingerprint, so an unchanged bad file
        ("fingerprint", pa.string()),  # is not read again on the next run
    ]
)


@dataclass(frozen=True)
class QuarantineRecord:
    source_uri: str
    kind: str
    reason: Reason
    detail: str
    sha256: str | None = None
    object_key: str | None = None
    size: int | None = None
    fingerprint: str | None = None

    def row(self) -> dict:
        d = asdict(self)
        d["reason"] = str(self.reason)
        return d
