"""Label Studio JSON export: a list of tasks ``{"id", "data": {"image"}, "annotations": [...]}``.

Every ``*.json`` under the root that holds a JSON list is read as an export. Only
``rectanglelabels`` results are boxes; other result types (choices, polygons, text...) are not
boxes and are not read. ``predictions`` (model pre-labels) are not read either. Every annotation
of every annotator is kept: ``annotator`` comes from ``completed_by`` (an id, or the user's email
when the export embeds the user object), ``created_at``/``updated_at`` are parsed to UTC.

Geometry: ``value.x``, ``value.y``, ``value.width``, ``value.height`` are percent of the result's
``original_width``/``original_height``, which is the declared frame; they are converted to pixels
first. ``value.rotation`` is in degrees, clockwise on screen (y points down), about the box's
top-left corner (Label Studio stores x, y as that corner before rotation, whatever the UI's
anchor was). A rotation that is not a multiple of 360 is replaced by the axis-aligned box that
encloses the rotated rectangle's four corners, clipped to the image, with
``review_state="rotated_enclosing_box"`` so curation can find it; it is set aside only if nothing
of it lies inside the image. Unrotated boxes follow the common 1 px tolerance rule.

Image resolution, from ``data.image`` (or the task's only string field): a
``/data/local-files/?d=<path>`` URL uses ``d`` (tried whole, then without its leading folders,
since it is relative to Label Studio's document root, not ours); a plain relative path is used as
is; then, for these and for ``/data/upload/<project>/<8 hex>-<name>`` or http(s)/s3/gs URLs, the
file name is looked up anywhere under the root (with and without the upload's hex prefix). A name
that matches no file, or several, is ``MISSING_IMAGE``.

Box native id: ``task=<id>/annotation=<id>/result=<region id>``; a region with several labels
gives one box per label (``.../label=<name>``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dataops_cv.lib.acquisition.importers.common import (
    IMAGE_SUFFIXES,
    KIND_FILE,
    KIND_RECORD,
    DatasetBuilder,
    ImageEntry,
    ImportedDataset,
    RecordRejected,
    UnsafePathError,
    clip_box,
    iter_files,
    load_json,
    parse_timestamp,
    positive_int,
    record_uri,
    rel_to_root,
    safe_rel_path,
)
from dataops_cv.lib.core.quarantine import Reason

ROTATED_REVIEW_STATE = "rotated_enclosing_box"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
_URL_SCHEMES = ("http", "https", "s3", "gs", "azure-blob")


def load_labelstudio(root: Path, taxonomy: Sequence[str] | None = None) -> ImportedDataset:
    """Read every Label Studio JSON export under ``root``."""
    b = DatasetBuilder("labelstudio", root, tuple(taxonomy) if taxonomy is not None else None)
    finder = _ImageFinder(root)
    for path in iter_files(root, {".json"}):
        try:
            data = load_json(path)
        except RecordRejected as exc:
            b.reject(record_uri(path), KIND_FILE, exc.reason, exc.detail)
            continue
        if isinstance(data, list):
            for index, task in enumerate(data):
                _load_task(path, index, task, finder, b)
    return b.finish()


def _load_task(path: Path, index: int, task: object, finder: _ImageFinder,
               b: DatasetBuilder) -> None:
    task_id = task.get("id", index) if isinstance(task, dict) else index
    task_rec = f"task={task_id}"
    if not (isinstance(task, dict) and isinstance(task.get("data"), dict)
            and isinstance(task.get("annotations"), list)):
        b.reject(record_uri(path, task_rec), KIND_RECORD, Reason.MALFORMED_ANNOTATION_FILE,
                 "a Label Studio task needs a 'data' object and an 'annotations' list "
                 "(JSON-MIN exports are not supported: export as JSON)")
        return
    results = []  # (record, annotation, result)
    for a_index, ann in enumerate(task["annotations"]):
        ann_id = ann.get("id", a_index) if isinstance(ann, dict) else a_index
        ann_rec = f"{task_rec}/annotation={ann_id}"
        if not isinstance(ann, dict) or not isinstance(ann.get("result", []), list):
            b.reject(record_uri(path, ann_rec), KIND_RECORD, Reason.MALFORMED_ANNOTATION_FILE,
                     f"annotation {ann_id} is not an object with a 'result' list")
            continue
        for r_index, res in enumerate(ann.get("result", [])):
            if isinstance(res, dict) and res.get("type") == "rectanglelabels":
                results.append((f"{ann_rec}/result={res.get('id', r_index)}", ann, res))

    try:
        rel_img = finder.resolve(task["data"])
    except RecordRejected as exc:
        for record, _, _ in results:
            b.reject(record_uri(path, record), KIND_RECORD, exc.reason, exc.detail)
        if not results:
            b.reject(record_uri(path, task_rec), KIND_RECORD, exc.reason, exc.detail)
        return
    declared: tuple[int | None, int | None] = (None, None)
    for record, ann, res in results:
        try:
            labels, width, height, coords, state = result_box(res)
            if declared == (None, None):
                declared = width, height
            meta = annotation_meta(ann)
            for label in labels:
                native = record if len(labels) == 1 else f"{record}/label={label}"
                try:
                    b.add_box(image_rel_path=rel_img, native_id=native, class_name=label,
                              coords=coords, width=width, height=height, review_state=state,
                              **meta)
                except RecordRejected as exc:
                    b.reject(record_uri(path, native), KIND_RECORD, exc.reason, exc.detail)
        except RecordRejected as exc:
            b.reject(record_uri(path, record), KIND_RECORD, exc.reason, exc.detail)
    b.add_image(ImageEntry(rel_img, str(task_id), *declared))


def result_box(
    res: dict,
) -> tuple[list[str], int, int, tuple[float, float, float, float], str | None]:
    """(labels, image width, image height, xyxy pixels, review_state) of one result."""
    value = res.get("value")
    if not isinstance(value, dict):
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE, "result has no 'value' object")
    width = positive_int(res.get("original_width"), "original_width")
    height = positive_int(res.get("original_height"), "original_height")
    nums = []
    for key in ("x", "y", "width", "height", "rotation"):
        v = value.get(key, 0.0 if key == "rotation" else None)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                                 f"value.{key} must be a number, found {v!r}")
        nums.append(float(v))
    labels = value.get("rectanglelabels")
    if not isinstance(labels, list) or not labels or not all(
            isinstance(n, str) and n for n in labels):
        raise RecordRejected(Reason.UNKNOWN_CLASS,
                             f"value.rectanglelabels must list at least one name, found {labels!r}")
    x, y, w, h, rotation = nums
    if not all(math.isfinite(v) for v in nums):
        raise RecordRejected(Reason.BOX_NOT_FINITE,
                             f"x={x}, y={y}, width={w}, height={h}, rotation={rotation} (percent)")
    x0, y0 = x / 100.0 * width, y / 100.0 * height
    pw, ph = w / 100.0 * width, h / 100.0 * height
    if rotation % 360.0 == 0.0 or pw <= 0 or ph <= 0:
        # Degenerate rotated boxes fall through here so they are reported as degenerate.
        return labels, width, height, (x0, y0, x0 + pw, y0 + ph), None
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    xs, ys = [], []
    for dx, dy in ((0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)):
        xs.append(x0 + dx * cos - dy * sin)
        ys.append(y0 + dx * sin + dy * cos)
    clipped = clip_box((min(xs), min(ys), max(xs), max(ys)), width, height)
    return labels, width, height, clipped, ROTATED_REVIEW_STATE


def annotation_meta(ann: dict) -> dict:
    by = ann.get("completed_by")
    if isinstance(by, dict):
        by = by.get("email") or by.get("id")
    try:
        created = parse_timestamp(ann.get("created_at"))
        updated = parse_timestamp(ann.get("updated_at"))
    except ValueError as exc:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                             f"annotation {ann.get('id')!r} has a bad timestamp: {exc}") from exc
    return {"annotator": None if by is None else str(by), "created_at": created,
            "updated_at": updated}


class _ImageFinder:
    """Resolves a task's image reference to a file under the root."""

    def __init__(self, root: Path):
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def resolve(self, data: dict) -> str:
        ref = data.get("image")
        if ref is None:
            strings = [v for v in data.values() if isinstance(v, str)]
            ref = strings[0] if len(strings) == 1 else None
        if not isinstance(ref, str) or not ref:
            raise RecordRejected(Reason.MISSING_IMAGE,
                                 f"task data has no 'image' field (keys {sorted(data)})")
        parts = urlsplit(ref)
        served = ref.startswith("/data/") or parts.scheme.lower() in _URL_SCHEMES
        if served:
            query = parse_qs(parts.query)
            if "d" in query:
                rel = self._safe(query["d"][0])
                tail = rel.split("/")
                for i in range(len(tail)):
                    if (self.root / "/".join(tail[i:])).is_file():
                        return "/".join(tail[i:])
                name = tail[-1]
            else:
                name = self._safe(unquote(parts.path.rsplit("/", 1)[-1]))
        else:
            rel = self._safe(ref)
            if (self.root / rel).is_file():
                return rel
            name = rel.rsplit("/", 1)[-1]
        names = [name]
        if _UPLOAD_PREFIX.match(name):
            names.append(_UPLOAD_PREFIX.sub("", name, count=1))
        for n in names:
            found = self._index().get(n, [])
            if len(found) == 1:
                return rel_to_root(found[0], self.root)
            if len(found) > 1:
                raise RecordRejected(Reason.MISSING_IMAGE,
                                     f"{ref!r}: file name {n!r} matches several files "
                                     f"{[rel_to_root(p, self.root) for p in found]}")
        raise RecordRejected(Reason.MISSING_IMAGE,
                             f"{ref!r} resolves to no file under {self.root} "
                             f"(looked for {' or '.join(map(repr, names))})")

    @staticmethod
    def _safe(name: str) -> str:
        try:
            return safe_rel_path(name)
        except UnsafePathError as exc:
            raise RecordRejected(Reason.UNSAFE_PATH, str(exc)) from exc

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            self._by_name = {}
            for path in iter_files(self.root, IMAGE_SUFFIXES):
                self._by_name.setdefault(path.name, []).append(path)
        return self._by_name
