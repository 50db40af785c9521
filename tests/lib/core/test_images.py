"""Image inspection at ingest: every bad-input kind is rejected with its reason; accepted modes
convert by one rule; EXIF orientation moves pixels and boxes together."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dataops_cv.lib.core.images import ImageInfo, Rejected, inspect_image, orient_box, to_rgb
from dataops_cv.lib.core.quarantine import Reason


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A real PNG signature and IHDR claiming a huge image, as a decompression bomb would."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + body + iend


RGB = Image.new("RGB", (64, 48), (10, 120, 200))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.EMPTY_FILE),
        (encode(Image.effect_noise((256, 256), 64), "PNG")[:3000], Reason.TRUNCATED_IMAGE),
        (encode(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")[:1500],
         Reason.TRUNCATED_IMAGE),
        (encode(RGB, "JPEG", exif=Image.Exif())[:200], Reason.TRUNCATED_IMAGE),
        (b"just some text pretending to be a .jpg\n" * 10, Reason.NOT_AN_IMAGE),
        (png_header_only(50_000, 50_000), Reason.DECOMPRESSION_BOMB),
        (encode(Image.new("F", (8, 8)), "TIFF"), Reason.UNSUPPORTED_IMAGE_MODE),
    ],
    ids=["zero-byte", "truncated-png", "truncated-jpeg", "truncated-jpeg-header", "not-an-image",
         "bomb", "float"],
)
def test_unusable_bytes_are_rejected_with_their_reason(data: bytes, reason: Reason):
    result = inspect_image(data)
    assert isinstance(result, Rejected)
    assert result.reason == reason, result.detail
    assert result.detail


def test_pixel_limit_is_configurable():
    result = inspect_image(encode(RGB, "PNG"), max_pixels=1000)
    assert isinstance(result, Rejected) and result.reason == Reason.DECOMPRESSION_BOMB


def test_max_pixels_decides_up_to_twice_pillows_own_limit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow warns above 100, refuses > 200
    frame = encode(Image.new("RGB", (15, 10), (9, 9, 9)), "PNG")  # 150 px
    assert isinstance(inspect_image(frame, max_pixels=1000), ImageInfo)
    below = inspect_image(frame, max_pixels=140)
    assert isinstance(below, Rejected) and "exceeds the limit of 140" in below.detail
    huge = inspect_image(encode(Image.new("RGB", (30, 10)), "PNG"), max_pixels=1000)
    assert isinstance(huge, Rejected) and huge.reason == Reason.DECOMPRESSION_BOMB


@pytest.mark.parametrize(
    ("img", "fmt", "mode"),
    [
        (Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG", "CMYK"),
        (Image.fromarray(np.full((10, 20), 65535, dtype=np.uint16)), "PNG", "I;16"),
        (Image.new("RGB", (20, 10), (255, 0, 0)).convert("P"), "PNG", "P"),
        (Image.new("RGBA", (20, 10), (255, 0, 0, 128)), "PNG", "RGBA"),
        (Image.new("L", (20, 10), 200), "PNG", "L"),
    ],
    ids=["cmyk", "16-bit", "palette", "alpha", "gray"],
)
def test_other_modes_are_accepted_and_convert_to_rgb_by_rule(img, fmt, mode):
    data = encode(img, fmt)
    info = inspect_image(data)
    assert isinstance(info, ImageInfo)
    assert info.mode.startswith(mode[:3]) and (info.width, info.height) == (20, 10)
    rgb = to_rgb(Image.open(io.BytesIO(data)))
    assert rgb.mode == "RGB" and rgb.size == (20, 10)
    px = rgb.getpixel((5, 5))
    expected = {"CMYK": (255, 0, 0), "I;16": (255, 255, 255), "P": (255, 0, 0),
                "RGBA": (128, 0, 0), "L": (200, 200, 200)}[mode]
    assert all(abs(a - b) <= 3 for a, b in zip(px, expected, strict=True)), px


def test_format_comes_from_the_bytes_not_the_name():
    info = inspect_image(encode(RGB, "PNG"))
    assert isinstance(info, ImageInfo) and info.format == "PNG" and info.ext == "png"
    assert info.sha256 and info.nbytes > 0 and info.channels == 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_moves_pixels_and_boxes_together(orientation: int):
    w, h = 60, 40
    raw = Image.new("RGB", (w, h), (0, 0, 0))
    box = (5.0, 8.0, 25.0, 18.0)
    ImageDraw.Draw(raw).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(raw, "PNG", exif=exif)
    info = inspect_image(data)
    assert isinstance(info, ImageInfo) and info.exif_orientation == orientation
    shown = to_rgb(Image.open(io.BytesIO(data)))
    assert shown.size == (info.width, info.height)
    ys, xs = np.nonzero(np.asarray(shown)[..., 0] > 128)
    drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert orient_box(box, w, h, orientation) == pytest.approx(drawn)
