"""YOLO txt: one label file per image, a line ``class cx cy w h`` per box, normalised to [0, 1].

Layout: ``labels/**/<stem>.txt`` mirrors ``images/**/<stem>.<ext>`` (the Ultralytics layout); a
label file whose mirror is absent is matched to the one image with its stem anywhere under
``images/``. Without a ``labels/`` folder, label files sit beside their images and every ``*.txt``
but ``classes.txt`` is taken for one (split lists such as ``train.txt`` belong elsewhere then).
An image without a label file is a negative: it is listed, with no boxes and no size read.

Class names come from ``data.yaml``/``data.yml`` (``names:`` as a list or an ``{id: name}``
mapping) or ``classes.txt`` (one name per line), at the root or in ``labels/``; when several are
present they must agree. ``BoxRecord.class_id`` indexes ``ImportedDataset.classes`` (the names in
YOLO id order), so a ``names`` mapping with gaps is renumbered densely.

YOLO states no image size, so the declared frame is the stored pixel grid read from the image
header with PIL (``Image.open(...).size``: no decode, no EXIF transpose). Box native id:
``<label path under root>#line=<n>`` (1-based line number).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from dataops_cv.lib.acquisition.importers.common import (
    IMAGE_SUFFIXES,
    KIND_FILE,
    KIND_RECORD,
    DatasetBuilder,
    DatasetError,
    ImageEntry,
    ImportedDataset,
    RecordRejected,
    group_boxes,
    image_size,
    iter_files,
    place_image,
    read_image_size,
    record_uri,
    rel_to_root,
)
from dataops_cv.lib.core.quarantine import Reason

CLASS_FILES = ("data.yaml", "data.yml", "classes.txt", "labels/classes.txt")


def find_class_files(root: Path) -> list[Path]:
    return [root / name for name in CLASS_FILES if (root / name).is_file()]


def read_class_table(root: Path) -> dict[int, str]:
    """YOLO class id -> name from the dataset's class files.

    Raises:
        DatasetError: no class file, an unreadable one, or two that disagree.
    """
    files = find_class_files(root)
    if not files:
        raise DatasetError(f"YOLO dataset {root} has no class list: looked for "
                           f"{', '.join(CLASS_FILES)}")
    tables = [(path, _read_class_file(path)) for path in files]
    first_path, first = tables[0]
    for path, table in tables[1:]:
        if table != first:
            raise DatasetError(f"{first_path} and {path} disagree on the classes: "
                               f"{first} vs {table}; keep one or make them match")
    return first


def _read_class_file(path: Path) -> dict[int, str]:
    if path.suffix == ".txt":
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        names: dict[int, str] = {}
        for i, line in enumerate(lines):
            if not line.strip():
                # Skipping it would shift every later class id by one.
                raise DatasetError(f"{path} line {i + 1} is blank; class ids are line numbers")
            names[i] = line.strip()
        return _unique(path, names)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML: {exc}") from exc
    raw = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(raw, list):
        table = dict(enumerate(raw))
    elif isinstance(raw, dict) and all(isinstance(k, int) and k >= 0 for k in raw):
        table = dict(sorted(raw.items()))
    else:
        raise DatasetError(f"{path}: 'names' must be a list or a mapping of non-negative integer "
                           f"ids to names, found {raw!r}")
    if not all(isinstance(v, str) and v.strip() for v in table.values()):
        raise DatasetError(f"{path}: every class name must be a non-empty string, found {table}")
    return _unique(path, {k: v.strip() for k, v in table.items()})


def _unique(path: Path, table: dict[int, str]) -> dict[int, str]:
    names = list(table.values())
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DatasetError(f"{path} names {dupes} more than once")
    return table


def _label_base(root: Path) -> Path:
    return root / "labels" if (root / "labels").is_dir() else root


def _image_base(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def iter_label_files(root: Path) -> Iterator[Path]:
    """The label files of a YOLO dataset, lazily and in sorted order."""
    for path in iter_files(_label_base(root), {".txt"}):
        if not (path.name == "classes.txt" and path.parent in (root, root / "labels")):
            yield path


def load_yolo(root: Path, taxonomy: Sequence[str] | None = None) -> ImportedDataset:
    """Read a YOLO dataset one label file at a time."""
    b = DatasetBuilder("yolo", root, tuple(taxonomy) if taxonomy is not None else None)
    table = read_class_table(root)
    label_base, image_base = _label_base(root), _image_base(root)
    by_key: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for img in iter_files(image_base, IMAGE_SUFFIXES):
        by_key.setdefault(img.relative_to(image_base).with_suffix("").as_posix(), []).append(img)
        by_stem.setdefault(img.stem, []).append(img)
    labelled: set[Path] = set()

    for path in iter_label_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            b.reject(record_uri(path), KIND_FILE, Reason.MALFORMED_ANNOTATION_FILE,
                     f"{path} is not UTF-8 text: {exc}")
            continue
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        key = path.relative_to(label_base).with_suffix("").as_posix()
        try:
            img = _match_image(key, path.stem, by_key, by_stem, image_base)
            width, height = read_image_size(img)
        except RecordRejected as exc:
            for n, _ in lines:
                b.reject(record_uri(path, f"line={n}"), KIND_RECORD, exc.reason, exc.detail)
            if not lines:
                b.reject(record_uri(path), KIND_FILE, exc.reason, exc.detail)
            continue
        labelled.add(img)
        rel_img = rel_to_root(img, root)
        b.add_image(ImageEntry(rel_img, img.relative_to(image_base).with_suffix("").as_posix(),
                               width, height))
        rel = rel_to_root(path, root)
        for n, line in lines:
            try:
                name, coords = _parse_line(line, table, width, height)
                b.add_box(image_rel_path=rel_img, native_id=f"{rel}#line={n}", class_name=name,
                          coords=coords, width=width, height=height)
            except RecordRejected as exc:
                b.reject(record_uri(path, f"line={n}"), KIND_RECORD, exc.reason, exc.detail)

    for imgs in by_key.values():
        for img in imgs:
            if img not in labelled:
                key = img.relative_to(image_base).with_suffix("").as_posix()
                b.add_image(ImageEntry(rel_to_root(img, root), key, None, None))
    return b.finish([table[k] for k in sorted(table)])


def _match_image(key: str, stem: str, by_key: dict[str, list[Path]],
                 by_stem: dict[str, list[Path]], image_base: Path) -> Path:
    candidates = by_key.get(key) or by_stem.get(stem, [])
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RecordRejected(Reason.MISSING_IMAGE,
                             f"no image {key}.<ext> (or any image with stem {stem!r}) "
                             f"under {image_base}")
    raise RecordRejected(Reason.MISSING_IMAGE,
                         f"label {key} matches several images {[str(p) for p in candidates]}; "
                         f"cannot tell which it annotates")


def _parse_line(line: str, table: dict[int, str], width: int,
                height: int) -> tuple[str, tuple[float, float, float, float]]:
    parts = line.split()
    if len(parts) != 5:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                             f"expected 5 values 'class cx cy w h', found {len(parts)}: "
                             f"{line.strip()!r}")
    try:
        cls, cx, cy, w, h = (float(p) for p in parts)
    except ValueError as exc:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                             f"non-numeric value in {line.strip()!r}") from exc
    if not cls.is_integer():
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                             f"class id {parts[0]!r} is not an integer")
    if int(cls) not in table:
        raise RecordRejected(Reason.UNKNOWN_CLASS,
                             f"class id {int(cls)} is not in the class list (ids {sorted(table)})")
    coords = ((cx - w / 2) * width, (cy - h / 2) * height,
              (cx + w / 2) * width, (cy + h / 2) * height)
    return table[int(cls)], coords


def write_yolo(ds: ImportedDataset, out: Path) -> Path:
    """Write ``ds`` as ``<out>/images/``, ``<out>/labels/``, ``classes.txt`` and ``data.yaml``.

    Class ids are indices into ``ds.classes``; every image gets a label file (empty for
    negatives). Returns ``out``.

    Raises:
        ValueError: two images differ only by extension, so they would share a label file.
    """
    out = Path(out)
    groups = group_boxes(ds)
    class_id = {name: i for i, name in enumerate(ds.classes)}
    written: dict[Path, str] = {}
    for entry in ds.images:
        img_rel = entry.rel_path
        if not img_rel.startswith("images/"):
            img_rel = f"images/{img_rel}"
        label_path = out / "labels" / Path(img_rel.removeprefix("images/")).with_suffix(".txt")
        if label_path in written:
            raise ValueError(f"images {written[label_path]!r} and {entry.rel_path!r} would share "
                             f"{label_path}: YOLO names label files by image stem")
        written[label_path] = entry.rel_path
        width, height = image_size(ds, entry)
        place_image(ds.root / entry.rel_path, out / img_rel)
        lines = []
        for box in groups[entry.rel_path]:
            cx = (box.x_min + box.x_max) / 2 / width
            cy = (box.y_min + box.y_max) / 2 / height
            w = (box.x_max - box.x_min) / width
            h = (box.y_max - box.y_min) / height
            lines.append(f"{class_id[box.class_name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text("".join(lines), encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in ds.classes), encoding="utf-8")
    names = dict(enumerate(ds.classes))
    (out / "data.yaml").write_text(
        yaml.safe_dump({"train": "images", "val": "images", "names": names}, sort_keys=False),
        encoding="utf-8",
    )
    return out
