"""Pascal VOC XML: one ``<annotation>`` file per image.

Files read: ``<root>/Annotations/**/*.xml`` when that folder exists, else every ``*.xml`` under the
root. ``<filename>`` is looked up in ``<root>/JPEGImages``, then beside the XML file, then in the
root (a name without an extension is tried with the usual image extensions, as some VOC exports
drop it). ``<path>`` is ignored: it is the labelling machine's absolute path. ``<size>`` gives the
declared frame; a missing or zero size (some tools write 0 when they did not know) means "not
declared" and boxes are then not bounds-checked. ``difficult``, ``truncated``, ``pose`` and
``<part>`` elements are ignored.

Coordinate convention: VOC pixel indices are 1-based and inclusive (the devkit's own: a box over
the whole W x H image is xmin=1, ymin=1, xmax=W, ymax=H). In the continuous 0-based frame pixel
``i`` spans ``[i-1, i]``, so the reader maps ``x_min = xmin - 1``, ``y_min = ymin - 1``,
``x_max = xmax``, ``y_max = ymax`` and ``write_voc`` applies the exact inverse, so round trips
return the same numbers. A file that wrote 0-based mins (xmin=0) lands at -1 and is clipped to 0
by the 1 px tolerance rather than set aside.

Box native id: ``<xml path under root>#object=<index>`` (0-based, document order).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

from dataops_cv.lib.acquisition.importers.common import (
    IMAGE_SUFFIXES,
    KIND_FILE,
    KIND_RECORD,
    DatasetBuilder,
    ImageEntry,
    ImportedDataset,
    RecordRejected,
    UnsafePathError,
    fmt_num,
    group_boxes,
    image_size,
    is_image_name,
    iter_files,
    place_image,
    record_uri,
    rel_to_root,
    safe_rel_path,
)
from dataops_cv.lib.core.quarantine import Reason

_COORDS = ("xmin", "ymin", "xmax", "ymax")


def annotation_dir(root: Path) -> Path:
    return root / "Annotations" if (root / "Annotations").is_dir() else root


def iter_voc_files(root: Path) -> Iterator[Path]:
    """The XML files a VOC dataset consists of, lazily and in sorted order."""
    yield from iter_files(annotation_dir(root), {".xml"})


def load_voc(root: Path, taxonomy: Sequence[str] | None = None) -> ImportedDataset:
    """Read a Pascal VOC folder one XML file at a time."""
    b = DatasetBuilder("voc", root, tuple(taxonomy) if taxonomy is not None else None)
    ann_dir = annotation_dir(root)
    for path in iter_voc_files(root):
        _load_file(root, ann_dir, path, b)
    return b.finish()


def _load_file(root: Path, ann_dir: Path, path: Path, b: DatasetBuilder) -> None:
    # ElementTree neither fetches external entities nor (with expat >= 2.4) expands entity bombs.
    try:
        ann = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeDecodeError) as exc:
        b.reject(record_uri(path), KIND_FILE, Reason.MALFORMED_ANNOTATION_FILE,
                 f"{path} is not well-formed XML: {exc}")
        return
    if ann.tag != "annotation":
        b.reject(record_uri(path), KIND_FILE, Reason.MALFORMED_ANNOTATION_FILE,
                 f"root element is <{ann.tag}>, expected <annotation>")
        return
    rel = rel_to_root(path, root)
    objects = ann.findall("object")
    try:
        rel_img = _resolve_image(root, path, ann)
        width, height = _declared_size(ann)
    except RecordRejected as exc:
        for i in range(len(objects)):
            b.reject(record_uri(path, f"object={i}"), KIND_RECORD, exc.reason, exc.detail)
        if not objects:
            b.reject(record_uri(path), KIND_FILE, exc.reason, exc.detail)
        return
    native = path.relative_to(ann_dir).with_suffix("").as_posix()
    b.add_image(ImageEntry(rel_img, native, width, height))
    for i, obj in enumerate(objects):
        try:
            name, coords = _object(obj)
            b.add_box(image_rel_path=rel_img, native_id=f"{rel}#object={i}", class_name=name,
                      coords=coords, width=width, height=height)
        except RecordRejected as exc:
            b.reject(record_uri(path, f"object={i}"), KIND_RECORD, exc.reason, exc.detail)


def _resolve_image(root: Path, path: Path, ann: ET.Element) -> str:
    raw = (ann.findtext("filename") or "").strip()
    if not raw:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE, "no <filename> element")
    try:
        name = safe_rel_path(raw)
    except UnsafePathError as exc:
        raise RecordRejected(Reason.UNSAFE_PATH, str(exc)) from exc
    names = [name] if is_image_name(name) else [name, *(name + s for s in sorted(IMAGE_SUFFIXES))]
    bases = list(dict.fromkeys([root / "JPEGImages", path.parent, root]))
    for base in bases:
        for n in names:
            if (base / n).is_file():
                return rel_to_root(base / n, root)
    raise RecordRejected(Reason.MISSING_IMAGE,
                         f"<filename> {raw!r} is not a file under any of {[str(p) for p in bases]}")


def _declared_size(ann: ET.Element) -> tuple[int | None, int | None]:
    size = ann.find("size")
    if size is None:
        return None, None
    dims = []
    for tag in ("width", "height"):
        text = (size.findtext(tag) or "").strip()
        if not text:
            return None, None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= 0 and value.is_integer()):
            raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                                 f"<size><{tag}> is {text!r}, expected a non-negative integer")
        dims.append(int(value))
    if 0 in dims:
        return None, None
    return dims[0], dims[1]


def _object(obj: ET.Element) -> tuple[str, tuple[float, float, float, float]]:
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE, "<object> has no <name>")
    bnd = obj.find("bndbox")
    if bnd is None:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE, f"<object> {name!r} has no <bndbox>")
    values = []
    for tag in _COORDS:
        text = bnd.findtext(tag)
        try:
            values.append(float(text))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                                 f"<bndbox><{tag}> is {text!r}, expected a number") from exc
    xmin, ymin, xmax, ymax = values
    return name, (xmin - 1.0, ymin - 1.0, xmax, ymax)


def write_voc(ds: ImportedDataset, out: Path) -> Path:
    """Write ``ds`` as ``<out>/Annotations/*.xml`` plus ``<out>/JPEGImages/*``.

    Coordinates are written 1-based (see the module docstring). Returns ``out``.

    Raises:
        ValueError: two images differ only by extension, so VOC would give them one XML file.
    """
    out = Path(out)
    groups = group_boxes(ds)
    written: dict[Path, str] = {}
    for entry in ds.images:
        img_rel = entry.rel_path.removeprefix("JPEGImages/")
        xml_path = out / "Annotations" / Path(img_rel).with_suffix(".xml")
        if xml_path in written:
            raise ValueError(f"images {written[xml_path]!r} and {entry.rel_path!r} would share "
                             f"{xml_path}: VOC names annotation files by image stem")
        written[xml_path] = entry.rel_path
        width, height = image_size(ds, entry)
        place_image(ds.root / entry.rel_path, out / "JPEGImages" / img_rel)
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        tree = ET.ElementTree(_to_xml(img_rel, width, height, groups[entry.rel_path]))
        ET.indent(tree)
        tree.write(xml_path, encoding="utf-8")
    return out


def _to_xml(img_rel: str, width: int, height: int, boxes: list) -> ET.Element:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "JPEGImages"
    ET.SubElement(ann, "filename").text = img_rel
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    for box in boxes:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = box.class_name
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        values = (box.x_min + 1.0, box.y_min + 1.0, box.x_max, box.y_max)
        for tag, value in zip(_COORDS, values, strict=True):
            ET.SubElement(bnd, tag).text = fmt_num(value)
    return ann
