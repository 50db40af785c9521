"""Image quality metrics at ingest and the per-partition summaries built from table columns."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dataops_cv.lib.core.images import ImageInfo, inspect_image, quality_metrics
from dataops_cv.lib.validation.quality import frame_quality_summary, label_quality_summary


def textured(seed: int = 0, size=(256, 192), gain: float = 1.0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.NEAREST)
    return Image.fromarray(np.clip(np.asarray(img) * gain, 0, 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_blur_lowers_laplacian_variance_and_darkness_lowers_brightness():
    sharp = quality_metrics(textured())
    blurred = quality_metrics(textured().filter(ImageFilter.GaussianBlur(3)))
    dark = quality_metrics(textured(gain=0.4))
    assert blurred[2] < sharp[2] / 5
    assert dark[0] < sharp[0] * 0.5 and dark[1] < sharp[1]


def test_flat_image_has_no_contrast_and_no_edges():
    brightness, contrast, lap = quality_metrics(Image.new("RGB", (64, 48), (100, 100, 100)))
    assert brightness == pytest.approx(100) and contrast == 0 and lap == 0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_every_accepted_mode_gets_metrics(mode):
    img = textured().convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    info = inspect_image(encode(img, "TIFF" if mode in ("CMYK", "I;16") else "PNG"))
    assert isinstance(info, ImageInfo)
    assert 0 < info.brightness < 255 and info.contrast > 0 and info.laplacian_var > 0


def test_large_images_are_reduced_so_metrics_do_not_depend_on_resolution_much():
    small = quality_metrics(textured(size=(1024, 768)))
    big = quality_metrics(textured(size=(1024, 768)).resize((2048, 1536), Image.NEAREST))
    assert big[0] == pytest.approx(small[0], rel=0.01)
    assert big[2] == pytest.approx(small[2], rel=0.05)


def test_frame_summary_counts_duplicates_once():
    rows = [{"width": 320, "height": 240, "brightness": b, "contrast": 30.0,
             "laplacian_var": lap, "duplicate_of": None}
            for b, lap in [(100.0, 50.0), (120.0, 500.0), (140.0, 800.0)]]
    rows.append({**rows[0], "duplicate_of": "x.png"})
    s = frame_quality_summary(rows)
    assert s["brightness_mean"] == pytest.approx(120)
    assert s["blurry_fraction"] == pytest.approx(1 / 3)
    assert s["aspect_p50"] == pytest.approx(320 / 240)
    assert s["megapixels_mean"] == pytest.approx(0.0768)
    assert frame_quality_summary([]) == {}


def test_label_summary_counts_unlabeled_frames_and_class_balance():
    frames = [{"sha256": s, "width": 100, "height": 100, "duplicate_of": None} for s in "abc"]
    boxes = [{"image_sha256": "a", "class_name": "car", "x_min": 0, "y_min": 0, "x_max": 10,
              "y_max": 10}] * 3 + [{"image_sha256": "b", "class_name": "pedestrian", "x_min": 0,
                                    "y_min": 0, "x_max": 50, "y_max": 20}]
    s = label_quality_summary(boxes, frames)
    assert s["boxes_per_image_mean"] == pytest.approx(4 / 3)
    assert s["boxes_per_image_max"] == 3 and s["labeled_fraction"] == pytest.approx(2 / 3)
    assert s["box_area_fraction_p50"] == pytest.approx(0.01)
    assert s["class_share_car"] == pytest.approx(0.75) and s["class_imbalance"] == 3
    assert s["classes"] == 2 and 0 < s["class_entropy_bits"] < 1
