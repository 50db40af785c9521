"""Types and rules shared by every importer and writer.

Rules applied to every format (the format modules add their own):

- Image names taken from annotation files must be relative posix paths inside the dataset root.
  Absolute paths, drive letters, backslashes, URLs and any ``..`` component are ``UNSAFE_PATH``;
  such a path is never opened or even stat-ed. The check is lexical: symlinks the operator put
  inside the root are followed, because they are part of the dataset's layout, not of its labels.
- Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the declared image frame (0-based,
  continuous: a box covering the whole W x H image is ``0, 0, W, H``).
- A non-finite coordinate is ``BOX_NOT_FINITE``; zero or negative width or height is
  ``BOX_DEGENERATE``; a box that leaves the declared image by more than ``CLIP_TOLERANCE_PX``
  (1 px) on any side is ``BOX_OUT_OF_BOUNDS``. Within that tolerance the box is clipped to the
  image, because annotation tools routinely overshoot by rounding (inclusive far edges, percent
  coordinates); a box that has no area left after clipping is ``BOX_OUT_OF_BOUNDS`` too.
- When a whole image is unusable (unsafe path, missing file, bad header) each of its annotation
  records is set aside with that reason, so per-box counts stay exact; an image declared with no
  annotations gets one record of its own.
"""

from __future__ import annotations

import filecmp
import json
import math
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dataops_cv.lib.core.annotations import annotation_id
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason

CLIP_TOLERANCE_PX = 1.0
# Float noise from percent or normalised coordinates must not turn a 1 px overshoot into 1.0000001.
_EPS = 1e-6
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
KIND_RECORD = "annotation"
KIND_FILE = "annotation_file"

_DRIVE = re.compile(r"^[A-Za-z]:")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class ImageEntry:
    """One image the annotation files declare, found under the dataset root."""

    rel_path: str
    native_id: str
    declared_width: int | None
    declared_height: int | None


@dataclass(frozen=True)
class BoxRecord:
    """One accepted box, in pixels (xyxy) of its image's declared frame."""

    image_rel_path: str
    native_id: str
    annotation_id: str
    class_name: str
    class_id: int | None
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    source: str
    annotator: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    review_state: str | None = None


@dataclass
class ImportedDataset:
    """A dataset read into the normalised form; ``class_id`` indexes ``classes``."""

    format: str
    root: Path
    classes: list[str]
    images: list[ImageEntry]
    boxes: list[BoxRecord]
    quarantine: list[QuarantineRecord]


class DatasetError(ValueError):
    """The dataset as a whole cannot be read (no class list, undetectable format, ...)."""


class UnsafePathError(ValueError):
    """An image name in an annotation file points outside the dataset root."""


class RecordRejected(Exception):
    """Raised inside a loader for one record; the loader turns it into a QuarantineRecord."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def safe_rel_path(name: object) -> str:
    """Normalise an image name from an annotation file to a posix path relative to the root.

    Raises:
        UnsafePathError: the name is empty, absolute, has a drive letter, a backslash, a URL
            scheme, a NUL byte or a ``..`` component.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnsafePathError(f"image name {name!r} is empty or not a string")
    if "\x00" in name:
        raise UnsafePathError(f"image name {name!r} contains a NUL byte")
    # A backslash is a separator on Windows, so '..\\x' would traverse there even if not here.
    if "\\" in name:
        raise UnsafePathError(f"image name {name!r} contains a backslash")
    if _DRIVE.match(name):
        raise UnsafePathError(f"image name {name!r} starts with a drive letter")
    if name.startswith("/"):
        raise UnsafePathError(f"image name {name!r} is absolute")
    if _URL.match(name):
        raise UnsafePathError(f"image name {name!r} is a URL, not a path under the dataset root")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"image name {name!r} has a '..' component")
    if not parts:
        raise UnsafePathError(f"image name {name!r} names no file")
    return "/".join(parts)


def rel_to_root(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def record_uri(path: Path, record: str | None = None) -> str:
    return f"{path}#{record}" if record else str(path)


def validate_box(
    coords: Sequence[float], width: int | None, height: int | None
) -> tuple[float, float, float, float]:
    """Check one xyxy pixel box against the declared image and clip it within tolerance.

    Raises:
        RecordRejected: ``BOX_NOT_FINITE``, ``BOX_DEGENERATE`` or ``BOX_OUT_OF_BOUNDS``.
    """
    x0, y0, x1, y1 = (float(v) for v in coords)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise RecordRejected(Reason.BOX_NOT_FINITE,
                             f"box {(x0, y0, x1, y1)} has a NaN/inf coordinate")
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        raise RecordRejected(
            Reason.BOX_DEGENERATE,
            f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has width {x1 - x0:g} px and height "
            f"{y1 - y0:g} px; both must be > 0",
        )
    if width is None or height is None:
        return x0, y0, x1, y1
    over = max(-x0, -y0, x1 - width, y1 - height)
    if over > CLIP_TOLERANCE_PX + _EPS:
        raise RecordRejected(
            Reason.BOX_OUT_OF_BOUNDS,
            f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) leaves the declared {width}x{height} image "
            f"by {over:g} px (tolerance {CLIP_TOLERANCE_PX:g} px)",
        )
    return clip_box((x0, y0, x1, y1), width, height)


def clip_box(
    coords: Sequence[float], width: int, height: int
) -> tuple[float, float, float, float]:
    """Clip an xyxy box to ``[0, width] x [0, height]``.

    Raises:
        RecordRejected: ``BOX_OUT_OF_BOUNDS`` when no area is left inside the image.
    """
    x0, y0, x1, y1 = coords
    c = (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
         min(max(x1, 0.0), width), min(max(y1, 0.0), height))
    if c[2] <= c[0] or c[3] <= c[1]:
        raise RecordRejected(
            Reason.BOX_OUT_OF_BOUNDS,
            f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area inside the {width}x{height} image",
        )
    return c


def parse_timestamp(value: object) -> datetime | None:
    """ISO-8601 string to an aware UTC datetime (naive values are taken as UTC).

    Raises:
        ValueError: the value is not an ISO-8601 string.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r} is not a string")
    ts = datetime.fromisoformat(value)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def read_image_size(path: Path) -> tuple[int, int]:
    """Displayed width and height (after EXIF orientation) from the header, without decoding.

    Formats that carry no size (YOLO) are labeled on the displayed image by the tools that make
    them (they apply EXIF orientation before showing or training), so that is the size their
    normalised boxes are scaled by.

    Raises:
        RecordRejected: ``NOT_AN_IMAGE`` or ``DECOMPRESSION_BOMB``.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
            return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    except Image.DecompressionBombError as exc:
        raise RecordRejected(Reason.DECOMPRESSION_BOMB, f"{path}: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise RecordRejected(Reason.NOT_AN_IMAGE, f"{path}: header unreadable: {exc}") from exc


def iter_files(root: Path, suffixes: frozenset[str] | set[str]) -> Iterator[Path]:
    """Files under ``root`` whose lower-cased suffix is in ``suffixes``, in sorted order.

    Hidden directories (``.git``, ``.cache``...) are skipped: they are never dataset content.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if Path(name).suffix.lower() in suffixes:
                yield Path(dirpath) / name


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


@dataclass
class DatasetBuilder:
    """Collects images, boxes and quarantine records while a loader walks its files."""

    format: str
    root: Path
    taxonomy: tuple[str, ...] | None
    images: dict[str, ImageEntry] = field(default_factory=dict)
    boxes: list[BoxRecord] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    _native_ids: set[str] = field(default_factory=set, init=False, repr=False)

    def reject(self, uri: str, kind: str, reason: Reason, detail: str) -> None:
        self.quarantine.append(QuarantineRecord(uri, kind, reason, detail))

    def add_image(self, entry: ImageEntry) -> None:
        # Several annotation records may declare one file; the first declaration wins.
        self.images.setdefault(entry.rel_path, entry)

    def add_box(
        self,
        *,
        image_rel_path: str,
        native_id: str,
        class_name: str,
        coords: Sequence[float],
        width: int | None,
        height: int | None,
        annotator: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        review_state: str | None = None,
    ) -> None:
        """Validate and keep one box; raises RecordRejected for the caller to quarantine."""
        if native_id in self._native_ids:
            # Downstream, annotation_id is a key: a repeated native id would collide silently.
            raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                                 f"id {native_id!r} repeats an earlier record's")
        x0, y0, x1, y1 = validate_box(coords, width, height)
        if self.taxonomy is not None and class_name not in self.taxonomy:
            raise RecordRejected(
                Reason.UNKNOWN_CLASS,
                f"class {class_name!r} is not in the taxonomy {list(self.taxonomy)}",
            )
        self._native_ids.add(native_id)
        self.boxes.append(
            BoxRecord(
                image_rel_path=image_rel_path,
                native_id=native_id,
                annotation_id=annotation_id(self.format, native_id),
                class_name=class_name,
                class_id=None,
                x_min=x0,
                y_min=y0,
                x_max=x1,
                y_max=y1,
                source=self.format,
                annotator=annotator,
                created_at=created_at,
                updated_at=updated_at,
                review_state=review_state,
            )
        )

    def finish(self, dataset_classes: Sequence[str] | None = None) -> ImportedDataset:
        """Fix the class list (taxonomy, else the dataset's own, else sorted names seen) and
        number every box by it."""
        if self.taxonomy is not None:
            classes = list(self.taxonomy)
        elif dataset_classes is not None:
            classes = list(dict.fromkeys(dataset_classes))
        else:
            classes = sorted({b.class_name for b in self.boxes})
        index = {name: i for i, name in enumerate(classes)}
        boxes = [replace(b, class_id=index[b.class_name]) for b in self.boxes]
        return ImportedDataset(
            format=self.format,
            root=self.root,
            classes=classes,
            images=list(self.images.values()),
            boxes=boxes,
            quarantine=list(self.quarantine),
        )


def check_taxonomy(taxonomy: Sequence[str] | None) -> tuple[str, ...] | None:
    """Validate a caller's taxonomy: non-empty distinct strings.

    Raises:
        ValueError: a name is empty, not a string or repeated.
    """
    if taxonomy is None:
        return None
    names = tuple(taxonomy)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ValueError(f"taxonomy names must be non-empty strings, found {bad!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"taxonomy repeats {dupes}; each class name must appear once")
    return names


# Writers


def group_boxes(ds: ImportedDataset) -> dict[str, list[BoxRecord]]:
    """Boxes by image, in image order.

    Raises:
        ValueError: a box names an image or class the dataset does not list.
    """
    groups: dict[str, list[BoxRecord]] = {e.rel_path: [] for e in ds.images}
    classes = set(ds.classes)
    for b in ds.boxes:
        if b.image_rel_path not in groups:
            raise ValueError(f"box {b.native_id} refers to image {b.image_rel_path!r}, "
                             f"which is not in the dataset's image list")
        if b.class_name not in classes:
            raise ValueError(f"box {b.native_id} has class {b.class_name!r}, "
                             f"which is not in the dataset's classes {ds.classes}")
        groups[b.image_rel_path].append(b)
    return groups


def image_size(ds: ImportedDataset, entry: ImageEntry) -> tuple[int, int]:
    """The declared size, or the header's when the source declared none."""
    if entry.declared_width is not None and entry.declared_height is not None:
        return entry.declared_width, entry.declared_height
    try:
        return read_image_size(ds.root / entry.rel_path)
    except RecordRejected as exc:
        raise ValueError(f"cannot write {entry.rel_path}: no declared size and {exc}") from exc


def place_image(src: Path, dest: Path) -> None:
    """Make ``dest`` hold the bytes of ``src``: hard link where possible, else copy.

    Idempotent: an identical file already at ``dest`` is left alone.

    Raises:
        FileExistsError: ``dest`` exists with different bytes.
    """
    if dest.exists():
        if os.path.samefile(src, dest) or filecmp.cmp(src, dest, shallow=False):
            return
        raise FileExistsError(f"{dest} exists with bytes different from {src}; "
                              f"write to an empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def fmt_num(value: float) -> str:
    """Integral values as integers, others with 6 decimals (1e-6 px is far below any tolerance)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def load_json(path: Path) -> object:
    """Parse one JSON file (a UTF-8 BOM is tolerated: Windows tools write one).

    Raises:
        RecordRejected: ``MALFORMED_ANNOTATION_FILE`` naming the parser's complaint.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RecordRejected(Reason.MALFORMED_ANNOTATION_FILE,
                             f"{path} is not valid JSON: {exc}") from exc


def is_id(value: object) -> bool:
    """A usable native id: an int (not a bool) or a non-empty string."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value != ""
    )


def positive_int(value: object, what: str) -> int:
    """An image dimension: a positive integer, or a float with an integral value.

    Raises:
        RecordRejected: ``MALFORMED_ANNOTATION_FILE``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value) and float(value).is_integer() and value > 0:
            return int(value)
    raise RecordRejected(
        Reason.MALFORMED_ANNOTATION_FILE, f"{what} must be a positive integer, found {value!r}"
    )
