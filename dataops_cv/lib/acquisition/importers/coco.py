"""COCO detection JSON: ``images``, ``annotations`` (``bbox`` = x, y, width, height in pixels,
0-based) and ``categories``.

Every ``*.json`` under the root that holds at least one of those three keys is a COCO file, so
train and val files load together; other JSON is not annotation data and is left alone. Category
ids may be non-contiguous: boxes are numbered by class *name*, in the taxonomy's order when one is
given, else in the order categories first appear (each file's categories sorted by id).
``file_name`` is looked up relative to the JSON file's folder, then the root, then
``<root>/images``. A box's native id is ``<json path under root>#annotation=<id>`` because ids
restart in every file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from dataops_cv.lib.acquisition.importers.common import (
    KIND_FILE,
    KIND_RECORD,
    DatasetBuilder,
    ImageEntry,
    ImportedDataset,
    RecordRejected,
    UnsafePathError,
    group_boxes,
    image_size,
    is_id,
    iter_files,
    load_json,
    place_image,
    positive_int,
    record_uri,
    rel_to_root,
    safe_rel_path,
)
from dataops_cv.lib.core.quarantine import Reason

COCO_KEYS = ("images", "annotations", "categories")
COCO_FILE_NAME = "annotations.json"


def load_coco(root: Path, taxonomy: Sequence[str] | None = None) -> ImportedDataset:
    """Read every COCO JSON file under ``root``."""
    b = DatasetBuilder("coco", root, tuple(taxonomy) if taxonomy is not None else None)
    classes: list[str] = []
    for path in iter_files(root, {".json"}):
        try:
            data = load_json(path)
        except RecordRejected as exc:
            b.reject(record_uri(path), KIND_FILE, exc.reason, exc.detail)
            continue
        if isinstance(data, dict) and any(k in data for k in COCO_KEYS):
            _load_file(root, path, data, b, classes)
    return b.finish(classes)


def _load_file(root: Path, path: Path, data: dict, b: DatasetBuilder, classes: list[str]) -> None:
    missing = [k for k in COCO_KEYS if not isinstance(data.get(k), list)]
    if missing:
        b.reject(record_uri(path), KIND_FILE, Reason.MALFORMED_ANNOTATION_FILE,
                 f"COCO file has no list under {missing}; expected lists under {list(COCO_KEYS)}")
        return
    cat_names: dict[object, str] = {}
    for i, cat in enumerate(data["categories"]):
        ok = isinstance(cat, dict) and is_id(cat.get("id")) and isinstance(cat.get("name"), str)
        if not ok or not cat["name"] or cat["id"] in cat_names:
            # Without a trustworthy category table no box of this file can be named.
            b.reject(record_uri(path), KIND_FILE, Reason.MALFORMED_ANNOTATION_FILE,
                     f"categories[{i}] = {cat!r}: each category needs a unique id and a name")
            return
        cat_names[cat["id"]] = cat["name"]
    for cid in sorted(cat_names, key=lambda c: (isinstance(c, str), c)):
        if cat_names[cid] not in classes:
            classes.append(cat_names[cid])

    rel = rel_to_root(path, root)
    by_image: dict[object, list[tuple[str, dict]]] = {}
    for i, ann in enumerate(data["annotations"]):
        has_id = isinstance(ann, dict) and is_id(ann.get("id"))
        record = f"annotation={ann['id']}" if has_id else f"annotations[{i}]"
        if not isinstance(ann, dict) or not is_id(ann.get("image_id")):
            b.reject(record_uri(path, record), KIND_RECORD, Reason.MALFORMED_ANNOTATION_FILE,
                     f"annotation {ann!r} has no image_id")
            continue
        by_image.setdefault(ann["image_id"], []).append((record, ann))

    seen: set[object] = set()
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not is_id(img.get("id")) or img["id"] in seen:
            b.reject(record_uri(path, f"images[{i}]"), KIND_RECORD,
                     Reason.MALFORMED_ANNOTATION_FILE, f"image {img!r} has no id or repeats one")
            continue
        seen.add(img["id"])
        anns = by_image.pop(img["id"], [])
        try:
            rel_img, width, height = _resolve_image(root, path, img)
        except RecordRejected as exc:
            for record, _ in anns:
                b.reject(record_uri(path, record), KIND_RECORD, exc.reason, exc.detail)
            if not anns:
                b.reject(record_uri(path, f"image={img['id']}"), KIND_RECORD, exc.reason,
                         exc.detail)
            continue
        b.add_image(ImageEntry(rel_img, str(img["id"]), width, height))
        for record, ann in anns:
            try:
                _add_box(b, rel, record, ann, rel_img, width, height, cat_names)
            except RecordRejected as exc:
                b.reject(record_uri(path, record), KIND_RECORD, exc.reason, exc.detail)

    for image_id, anns in by_image.items():
        for record, _ in anns:
            b.reject(record_uri(path, record), KIND_RECORD, Reason.MISSING_IMAGE,
                     f"image_id {image_id!r} is not among this file's images")


def _resolve_image(root: Path, path: Path, img: dict) -> tuple[str, int | None, int | None]:
    try:
        name = safe_rel_path(img.get("file_name"))
    except UnsafePathError as exc:
        raise RecordRejected(Reason.UNSAFE_PATH, str(exc)) from exc
    width = height = None
    if img.get("width") is not None or img.get("height") is not None:
        width = positive_int(img.get("width"), f"image {img['id']!r} width")
        height = positive_int(img.get("height"), f"image {img['id']!r} height")
    bases = list(dict.fromkeys([path.parent, root, root / "images"]))
    for base in bases:
        if (base / name).is_file():
            return rel_to_root(base / name, root), width, height
    raise RecordRejected(Reason.MISSING_IMAGE,
                         f"{name!r} is not a file under any of {[str(p) for p in bases]}")


def _add_box(b: DatasetBuilder, rel: str, record: str, ann: dict, rel_img: str,
             width: int | None, height: int | None, cat_names: dict[object, str]) -> None:
    bbox = ann.get("bbox")
    numeric = isinstance(bbox, list) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
    if not numeric:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                             f"bbox must be 4 numbers [x, y, width, height], found {bbox!r}")
    cat = ann.get("category_id")
    if not is_id(cat) or cat not in cat_names:
        raise RecordRejected(Reason.UNKNOWN_CLASS,
                             f"category_id {cat!r} is not among this file's category ids "
                             f"{sorted(cat_names, key=str)}")
    x, y, w, h = (float(v) for v in bbox)
    b.add_box(image_rel_path=rel_img, native_id=f"{rel}#{record}", class_name=cat_names[cat],
              coords=(x, y, x + w, y + h), width=width, height=height)


def write_coco(ds: ImportedDataset, out: Path) -> Path:
    """Write ``ds`` as ``<out>/annotations.json`` with its images at their same relative paths.

    Category ids are 1-based in ``ds.classes`` order. Returns ``out``, loadable with
    ``load_dataset``.
    """
    out = Path(out)
    groups = group_boxes(ds)
    cat_id = {name: i for i, name in enumerate(ds.classes, start=1)}
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id, entry in enumerate(ds.images, start=1):
        width, height = image_size(ds, entry)
        place_image(ds.root / entry.rel_path, out / entry.rel_path)
        images.append(
            {"id": image_id, "file_name": entry.rel_path, "width": width, "height": height})
        for box in groups[entry.rel_path]:
            w, h = box.x_max - box.x_min, box.y_max - box.y_min
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": cat_id[box.class_name],
                "bbox": [box.x_min, box.y_min, w, h],
                "area": w * h,
                "iscrowd": 0,
            })
    categories = [{"id": i, "name": name, "supercategory": ""} for name, i in cat_id.items()]
    out.mkdir(parents=True, exist_ok=True)
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (out / COCO_FILE_NAME).write_text(json.dumps(doc), encoding="utf-8")
    return out
