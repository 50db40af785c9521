"""Labels that come with a dataset, joined to the frames ingest stored, in the canonical table.

Every box is attached to its image by content hash (through the image's path in the drop) and
moved into the image's displayed frame: when the annotation file declares the stored size of an
EXIF-rotated image, the box is rotated with the pixels (:func:`dataops_cv.lib.core.images.orient_box`).
A declared size that matches neither the stored nor the displayed size is quarantined — scaling
boxes by a guess would silently corrupt them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dataops_cv.lib.acquisition.importers import (
    DatasetError,
    ImportedDataset,
    detect_format,
    load_dataset,
)
from dataops_cv.lib.acquisition.sources import (
    ANNOTATION_EXTENSIONS,
    LocalSource,
    Source,
    SourceError,
)
from dataops_cv.lib.core.annotations import Annotation, BoxRules
from dataops_cv.lib.core.images import orient_box
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason

IMAGES_ONLY = "images"


@dataclass
class LabelImport:
    format: str
    rows: list[dict] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def import_annotations(
    source: Source, fmt: str, frames: Sequence[Mapping[str, object]],
    taxonomy: Sequence[str] | None = None, box_rules: BoxRules | None = None,
) -> LabelImport:
    """Read the drop's annotation files (``fmt`` = auto, images, coco, voc, yolo, labelstudio).

    Each box is converted by its format's convention, turned with its image, and then held to
    ``box_rules`` (the annotations contract's ``boxes`` section; default :class:`BoxRules`).

    With ``auto``, a drop without any annotation format is an unlabeled drop (empty table and a
    note); with an explicit format, failing to read it is an error.

    Raises:
        SourceError: labels requested from a source that is not a local folder.
        DatasetError: an explicit format could not be read at all.
    """
    if fmt == IMAGES_ONLY:
        return LabelImport(IMAGES_ONLY)
    if not isinstance(source, LocalSource):
        has_labels = any(o.suffix in ANNOTATION_EXTENSIONS for o in source.list())
        if fmt == "auto" and not has_labels:
            return LabelImport(IMAGES_ONLY)
        raise SourceError(f"{source.uri}: annotation files are read from local folders only; "
                          "copy the dataset to a folder, or ingest its images with format=images")
    if fmt == "auto":
        try:
            fmt = detect_format(source.root)
        except DatasetError as exc:
            return LabelImport(IMAGES_ONLY, notes=[f"no labels imported: {exc}"])
    dataset = load_dataset(source.root, fmt, taxonomy)
    return _join(dataset, frames, label_revision(source), box_rules or BoxRules())


def label_revision(source: LocalSource) -> str:
    """The revision of a drop's labels as delivered: a hash over its annotation files' paths and
    bytes. Re-delivering the same labels gives the same revision; any edit gives a new one.
    (Labels pulled from Label Studio carry the lakeFS commit of their snapshot instead.)"""
    digest = hashlib.sha256()
    for obj in sorted(source.list(), key=lambda o: o.rel_path):
        if obj.suffix in ANNOTATION_EXTENSIONS:
            digest.update(obj.rel_path.encode() + b"\x00")
            digest.update(hashlib.sha256(source.read(obj)).digest())
    return f"files-sha256:{digest.hexdigest()[:16]}"


def _join(
    ds: ImportedDataset, frames: Sequence[Mapping[str, object]], revision: str,
    rules: BoxRules,
) -> LabelImport:
    out = LabelImport(ds.format, quarantine=list(ds.quarantine))
    by_path = {str(f["rel_path"]): f for f in frames}
    declared = {img.rel_path: (img.declared_width, img.declared_height) for img in ds.images}
    class_ids = {name: i for i, name in enumerate(ds.classes)}
    for box in ds.boxes:
        uri = f"{ds.root.as_uri()}/{box.image_rel_path}#{box.native_id}"
        frame = by_path.get(box.image_rel_path)
        if frame is None:
            out.quarantine.append(QuarantineRecord(
                uri, "annotation", Reason.MISSING_IMAGE,
                f"image {box.image_rel_path} was not ingested (absent, or quarantined itself)"))
            continue
        coords = (box.x_min, box.y_min, box.x_max, box.y_max)
        shown = (int(frame["width"]), int(frame["height"]))
        stored = (int(frame["stored_width"]), int(frame["stored_height"]))
        size = declared.get(box.image_rel_path, (None, None))
        if size == (None, None) or size == shown:
            pass
        elif size == stored:
            coords = orient_box(coords, stored[0], stored[1], int(frame["exif_orientation"]))
        else:
            out.quarantine.append(QuarantineRecord(
                uri, "annotation", Reason.BOX_OUT_OF_BOUNDS,
                f"annotation declares image size {size[0]}x{size[1]} but the image is "
                f"{shown[0]}x{shown[1]} (stored {stored[0]}x{stored[1]})"))
            continue
        implausible = rules.problem(*coords)
        if implausible is not None:
            out.quarantine.append(QuarantineRecord(uri, "annotation", *implausible))
            continue
        out.rows.append(Annotation(
            image_sha256=str(frame["sha256"]),
            annotation_id=box.annotation_id,
            class_name=box.class_name,
            class_id=box.class_id if box.class_id is not None else class_ids.get(box.class_name),
            x_min=coords[0], y_min=coords[1], x_max=coords[2], y_max=coords[3],
            source=box.source,
            annotator=box.annotator,
            label_revision=revision,
            created_at=box.created_at,
            updated_at=box.updated_at,
            review_state=box.review_state,
        ).row())
    out.rows.sort(key=lambda r: (r["image_sha256"], r["annotation_id"]))
    out.quarantine.sort(key=lambda q: q.source_uri)
    return out


def import_dropped_labels(
    root: Path, frames: Sequence[Mapping[str, object]], revision: str,
    taxonomy: Sequence[str] | None, read_frame: Callable[[Mapping[str, object]], bytes],
    uri_prefix: str, box_rules: BoxRules | None = None,
) -> LabelImport:
    """Read label files committed without their images (a vendor drop on the labels branch).

    The files name images by the path the frames were ingested under (``rel_path``); the
    importers look images up on disk, so each frame gets a placeholder there: an empty file, or
    for YOLO (whose boxes are scaled by the image's size) the frame's bytes via ``read_frame``.
    Quarantine URIs name the drop as ``uri_prefix`` + the file's path in it.

    Raises:
        DatasetError: the files are in no annotation format, or in several.
    """
    fmt = detect_format(root)
    for frame in frames:
        dest = root / str(frame["rel_path"])
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(read_frame(frame) if fmt == "yolo" else b"")
    result = _join(load_dataset(root, fmt, taxonomy), frames, revision, box_rules or BoxRules())
    local = (root.as_uri() + "/", f"{root}/")
    for i, q in enumerate(result.quarantine):
        for prefix in local:
            if q.source_uri.startswith(prefix):
                uri = uri_prefix + q.source_uri[len(prefix):]
                result.quarantine[i] = replace(q, source_uri=uri)
                break
    return result
