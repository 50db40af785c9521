"""Recognise a dataset's annotation format from its files, and load it.

Evidence per format (files in hidden folders are ignored):

- ``coco``: a ``*.json`` whose top level is an object naming ``images``, ``annotations`` and
  ``categories``;
- ``labelstudio``: a ``*.json`` whose top level is a list naming ``data`` and ``annotations``;
- ``voc``: a ``*.xml`` under ``Annotations/``, or any ``*.xml`` whose root element is
  ``<annotation>``;
- ``yolo``: a class list (``data.yaml``, ``data.yml``, ``classes.txt``, ``labels/classes.txt``)
  and at least one other ``*.txt``.

JSON files are sniffed by streaming their bytes for the key names rather than parsed, so that
detecting a multi-gigabyte COCO file costs one read and no memory; the loader then parses and
validates properly. A truncated COCO file that still names its three keys is therefore detected
as COCO and quarantined by the loader, which is what its owner wants to hear.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from dataops_cv.lib.acquisition.importers.coco import load_coco
from dataops_cv.lib.acquisition.importers.common import (
    DatasetError,
    ImportedDataset,
    check_taxonomy,
    iter_files,
)
from dataops_cv.lib.acquisition.importers.labelstudio import load_labelstudio
from dataops_cv.lib.acquisition.importers.voc import load_voc
from dataops_cv.lib.acquisition.importers.yolo import find_class_files, iter_label_files, load_yolo

FORMATS = ("coco", "voc", "yolo", "labelstudio")
_LOADERS = {"coco": load_coco, "voc": load_voc, "yolo": load_yolo, "labelstudio": load_labelstudio}
_LOOKED_FOR = (
    "a COCO JSON object with images/annotations/categories (*.json), a Label Studio JSON export "
    "(a list of tasks with data and annotations, *.json), Pascal VOC XML (Annotations/*.xml or "
    "*.xml with an <annotation> root), or YOLO label files (*.txt) with classes.txt or data.yaml"
)
_CHUNK = 1 << 20
# The first element, after an optional XML declaration, comments and a BOM, is <annotation>.
_VOC_ROOT = re.compile(
    rb"^(\xef\xbb\xbf)?\s*(<\?xml.*?\?>\s*)?(<!--.*?-->\s*)*<annotation[\s>/]", re.S)


def detect_format(root: Path) -> str:
    """Name the one annotation format found under ``root``.

    Returns:
        ``"coco"``, ``"voc"``, ``"yolo"`` or ``"labelstudio"``.

    Raises:
        NotADirectoryError: ``root`` is not a directory.
        DatasetError: no format, or more than one, was found; the message says what was looked
            for, or which files point to which format.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"dataset root {root} is not a directory")
    found: dict[str, Path] = {}
    for path in iter_files(root, {".json"}):
        fmt = _sniff_json(path)
        if fmt:
            found.setdefault(fmt, path)
    for path in iter_files(root, {".xml"}):
        if _is_voc_xml(root, path):
            found.setdefault("voc", path)
            break
    class_files = find_class_files(root)
    if class_files:
        label = next(iter_label_files(root), None)
        if label is not None:
            found.setdefault("yolo", label)
    if not found:
        raise DatasetError(f"no annotation format recognised in {root}: looked for {_LOOKED_FOR}")
    if len(found) > 1:
        evidence = ", ".join(f"{fmt} ({path.relative_to(root)})" for fmt, path in found.items())
        raise DatasetError(f"{root} holds several annotation formats: {evidence}; "
                           f"pass fmt= one of {FORMATS} explicitly")
    return next(iter(found))


def load_dataset(
    root: Path, fmt: str = "auto", taxonomy: Sequence[str] | None = None
) -> ImportedDataset:
    """Read a dataset into the normalised form, quarantining every bad record with its reason.

    Args:
        root: the dataset folder; every image path is relative to it.
        fmt: ``"auto"`` (see ``detect_format``) or one of ``FORMATS``.
        taxonomy: the allowed class names in class-id order; boxes of other classes are
            quarantined as ``UNKNOWN_CLASS``. Without it the dataset's own class list is used
            (COCO categories, YOLO names), or for VOC and Label Studio the sorted names seen.

    Raises:
        NotADirectoryError: ``root`` is not a directory.
        ValueError: unknown ``fmt`` or an invalid taxonomy.
        DatasetError: the format cannot be detected, or the dataset as a whole is unreadable
            (e.g. a YOLO dataset without a class list).
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"dataset root {root} is not a directory")
    names = check_taxonomy(taxonomy)
    if fmt == "auto":
        fmt = detect_format(root)
    if fmt not in _LOADERS:
        raise ValueError(f"unknown format {fmt!r}; expected 'auto' or one of {FORMATS}")
    return _LOADERS[fmt](root, names)


def _sniff_json(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(_CHUNK)
        body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if body[:1] == b"{":
            needles = {b'"images"', b'"annotations"', b'"categories"'}
            fmt = "coco"
        elif body[:1] == b"[":
            needles = {b'"data"', b'"annotations"'}
            fmt = "labelstudio"
        else:
            return None
        chunk, tail = head, b""
        while chunk:
            window = tail + chunk
            needles = {n for n in needles if n not in window}
            if not needles:
                return fmt
            # Keep enough of the end to catch a key split across two reads.
            tail = window[-16:]
            chunk = f.read(_CHUNK)
    return None


def _is_voc_xml(root: Path, path: Path) -> bool:
    if (root / "Annotations") in path.parents:
        return True
    with path.open("rb") as f:
        return _VOC_ROOT.match(f.read(4096)) is not None
