"""Inspect image bytes once at ingest: hash, decode, validate, and describe — or say why not.

Rules (documented in README, applied the same way by every reader of our data):

* Bytes are stored as received (content-addressed by the SHA-256 of those bytes); nothing is
  re-encoded at ingest, so a file ingested twice is stored once and lineage stays exact.
* ``width``/``height`` are those of the *displayed* image, after its EXIF orientation; boxes in the
  canonical table live in that frame. :func:`to_rgb` applies the orientation to pixels, so pixels
  and boxes always agree.
* Modes other than 8-bit RGB are accepted and converted by one rule when pixels are read
  (:func:`to_rgb`): palette → RGB (through RGBA when it has transparency), alpha composited onto
  black, CMYK → RGB (PIL's conversion), 16/32-bit integer grayscale scaled to 8 bits by its full
  range, 8-bit grayscale replicated to three channels. Float and multi-frame images are
  quarantined (``unsupported_image_mode``).
* More pixels than ``max_pixels`` (default 100 MP) is a decompression bomb and is quarantined
  before any pixel is decoded. ``max_pixels`` decides, not Pillow's own warning limit
  (``Image.MAX_IMAGE_PIXELS``, ~89.5 MP); Pillow still refuses anything above twice that limit
  (~179 MP) whatever ``max_pixels`` says, so a larger limit needs ``MAX_IMAGE_PIXELS`` raised too.
* Quality metrics come from the same decode, on the luma (ITU-R 601 ``L``) of the RGB pixels,
  box-reduced by an integer factor until the long side is at most ``QUALITY_MAX_SIDE``:
  ``brightness`` = mean luma (0-255), ``contrast`` = its standard deviation, and
  ``laplacian_var`` = variance of the 4-neighbour Laplacian (low means blurry). The fixed
  reduction makes them comparable across resolutions and bounds their cost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from dataops_cv.lib.core.quarantine import Reason

DEFAULT_MAX_PIXELS = 100_000_000
QUALITY_MAX_SIDE = 1024
ACCEPTED_MODES = frozenset({"RGB", "L", "P", "RGBA", "LA", "PA", "CMYK", "I;16", "I;16B", "I;16L",
                            "I", "1", "YCbCr"})
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif",
              "GIF": "gif", "MPO": "jpg"}
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees
_CHANNELS = {"1": 1, "L": 1, "P": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1,
             "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "RGBA": 4, "CMYK": 4}


@dataclass(frozen=True)
class ImageInfo:
    """What ingest learns about one image from a single read of its bytes."""

    sha256: str
    format: str  # PIL format name, e.g. JPEG, PNG
    ext: str  # canonical extension for the object key, from the real format
    mode: str  # as stored, e.g. RGB, CMYK, I;16, P
    channels: int
    width: int  # displayed (EXIF-oriented)
    height: int
    stored_width: int  # as encoded, before orientation
    stored_height: int
    exif_orientation: int  # 1 when absent
    capture_time: dt.datetime | None  # EXIF DateTimeOriginal, naive local time made UTC
    device_model: str | None  # EXIF Make + Model
    gps_lat: float | None
    gps_lon: float | None
    nbytes: int
    brightness: float
    contrast: float
    laplacian_var: float


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    detail: str
    sha256: str | None


def _exif_datetime(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        # EXIF times carry no zone; we record them as UTC and say so in the contract.
        return dt.datetime.strptime(value.strip("\x00 "), "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _gps_degrees(values: object, ref: object) -> float | None:
    try:
        d, m, s = (float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    return -deg if ref in ("S", "W") else deg


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo | Rejected:
    """Hash and fully decode ``data``; return its description or the reason it is unusable."""
    sha = hashlib.sha256(data).hexdigest() if data else None
    if not data:
        return Rejected(Reason.EMPTY_FILE, "file has 0 bytes", None)
    try:
        with warnings.catch_warnings():
            # Our own limit below decides; Pillow's warning threshold (~89.5 MP) would otherwise
            # reject frames that max_pixels allows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return Rejected(Reason.NOT_AN_IMAGE, "not a readable image format", sha)
    except Image.DecompressionBombError as exc:
        return Rejected(Reason.DECOMPRESSION_BOMB, str(exc), sha)
    except (OSError, SyntaxError, ValueError) as exc:
        # Recognised as an image, but its header ends early or is corrupt.
        return Rejected(Reason.TRUNCATED_IMAGE, f"header does not parse: {exc}", sha)
    with img:
        w, h = img.size
        if w * h > max_pixels:
            return Rejected(Reason.DECOMPRESSION_BOMB,
                            f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}", sha)
        if img.mode not in ACCEPTED_MODES:
            return Rejected(Reason.UNSUPPORTED_IMAGE_MODE, f"mode {img.mode} is not supported", sha)
        if getattr(img, "n_frames", 1) > 1 and img.format not in ("MPO",):
            return Rejected(Reason.UNSUPPORTED_IMAGE_MODE,
                            f"{img.format} with {img.n_frames} frames (animations are not frames)",
                            sha)
        fmt = img.format or "UNKNOWN"
        try:
            exif = img.getexif()
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt EXIF
            exif = None
            exif_error = str(exc)
        else:
            exif_error = None
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            return Rejected(Reason.TRUNCATED_IMAGE, f"{fmt} does not decode: {exc}", sha)
        if exif_error:
            return Rejected(Reason.TRUNCATED_IMAGE, f"corrupt EXIF block: {exif_error}", sha)
        orientation = int(exif.get(ExifTags.Base.Orientation, 1) or 1) if exif else 1
        if orientation not in range(1, 9):
            orientation = 1
        sub = exif.get_ifd(ExifTags.IFD.Exif) if exif else {}
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo) if exif else {}
        make = (exif.get(ExifTags.Base.Make) or "").strip("\x00 ") if exif else ""
        model = (exif.get(ExifTags.Base.Model) or "").strip("\x00 ") if exif else ""
        dw, dh = (h, w) if orientation in _SWAPS_AXES else (w, h)
        brightness, contrast, laplacian_var = quality_metrics(img)
        return ImageInfo(
            sha256=sha or "",
            format=fmt,
            ext=FORMAT_EXT.get(fmt, fmt.lower()),
            mode=img.mode,
            channels=_CHANNELS.get(img.mode, len(img.getbands())),
            width=dw,
            height=dh,
            stored_width=w,
            stored_height=h,
            exif_orientation=orientation,
            capture_time=_exif_datetime(sub.get(ExifTags.Base.DateTimeOriginal)
                                        or (exif.get(ExifTags.Base.DateTime) if exif else None)),
            device_model=" ".join(p for p in (make, model) if p) or None,
            gps_lat=_gps_degrees(gps.get(2), gps.get(1)) if gps else None,
            gps_lon=_gps_degrees(gps.get(4), gps.get(3)) if gps else None,
            nbytes=len(data),
            brightness=brightness,
            contrast=contrast,
            laplacian_var=laplacian_var,
        )


def quality_metrics(img: Image.Image) -> tuple[float, float, float]:
    """``(brightness, contrast, laplacian_var)`` of a decoded image, by the rule in the module
    docstring. Reduced before the luma conversion (box averages commute with it up to rounding),
    and without the EXIF turn: flips and quarter turns change none of the three numbers."""
    if img.mode not in ("RGB", "L"):
        img = to_rgb(img)
    factor = -(-max(img.size) // QUALITY_MAX_SIDE)
    if factor > 1:
        img = img.reduce(factor)
    luma = img if img.mode == "L" else img.convert("L")
    a = np.asarray(luma, dtype=np.float32)
    if a.shape[0] < 3 or a.shape[1] < 3:
        lap_var = 0.0
    else:
        lap = (a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]) - 4.0 * a[1:-1, 1:-1]
        lap_var = float(lap.var(dtype=np.float64))
    return float(a.mean(dtype=np.float64)), float(a.std(dtype=np.float64)), lap_var


def to_rgb(img: Image.Image) -> Image.Image:
    """Displayed 8-bit RGB pixels of any accepted image, by the rule in the module docstring."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr8 = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    return img.convert("RGB")


def orient_box(
    box: tuple[float, float, float, float], stored_w: int, stored_h: int, orientation: int
) -> tuple[float, float, float, float]:
    """Map an xyxy box from the stored (raw) frame into the displayed (EXIF-oriented) frame."""
    x1, y1, x2, y2 = box
    w, h = stored_w, stored_h
    if orientation == 1:
        return box
    if orientation == 2:  # mirror horizontal
        return (w - x2, y1, w - x1, y2)
    if orientation == 3:  # rotate 180
        return (w - x2, h - y2, w - x1, h - y1)
    if orientation == 4:  # mirror vertical
        return (x1, h - y2, x2, h - y1)
    if orientation == 5:  # transpose
        return (y1, x1, y2, x2)
    if orientation == 6:  # rotate 90 CW to display
        return (h - y2, x1, h - y1, x2)
    if orientation == 7:  # transverse
        return (h - y2, w - x2, h - y1, w - x1)
    if orientation == 8:  # rotate 90 CCW to display
        return (y1, w - x2, y2, w - x1)
    raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
