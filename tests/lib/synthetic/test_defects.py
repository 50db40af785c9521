"""Every configured defect is planted, and each really is what its ground truth says."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from dataops_cv.lib.synthetic.config import DefectKind
from dataops_cv.lib.synthetic.defects import PlantedDefect
from dataops_cv.lib.synthetic.frames import SyntheticFrame, render_scene, synthetic_frame
from tests.lib.synthetic.day import CLEAN, CONFIG, DATE, clean_image, luma


def test_every_configured_defect_is_planted_once_per_count(day) -> None:
    planted = [d for f in day for d in f.defects]
    assert {k: sum(d.kind == k for d in planted) for k in DefectKind} == CONFIG.defects.counts()
    assert len({d.path for d in planted}) == len(planted)


def _check(kind: DefectKind, defect: PlantedDefect, frame: SyntheticFrame,
           by_path: dict[str, SyntheticFrame]) -> None:
    data = frame.data
    if kind == DefectKind.ZERO_BYTE:
        assert data == b"" and frame.boxes  # the labels survived the broken transfer
    elif kind in (DefectKind.TRUNCATED_PNG, DefectKind.TRUNCATED_JPEG):
        magic = b"\x89PNG\r\n\x1a\n" if kind == DefectKind.TRUNCATED_PNG else b"\xff\xd8"
        assert data.startswith(magic) and len(data) == defect.params["kept_bytes"]
        img = Image.open(io.BytesIO(data))  # the header still parses...
        with pytest.raises(OSError):
            img.load()  # ...the pixels do not
    elif kind == DefectKind.NOT_AN_IMAGE:
        assert frame.ext in ("png", "jpg")
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(data))
        assert data.decode("utf-8").startswith("capture-rig")
    elif kind == DefectKind.CMYK_JPEG:
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.mode, frame.ext) == ("JPEG", "CMYK", "jpg")
    elif kind == DefectKind.PNG_16BIT:
        assert data[12:16] == b"IHDR" and data[24] == 16  # bit depth byte of the IHDR chunk
        assert Image.open(io.BytesIO(data)).mode == "I;16"
    elif kind == DefectKind.PALETTE_PNG:
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.mode) == ("PNG", "P")
    elif kind == DefectKind.RGBA_PNG:
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.mode) == ("PNG", "RGBA")
    elif kind == DefectKind.EXIF_ROTATED:
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.getexif()[0x0112] == defect.params["orientation"]
        assert img.size == (frame.height, frame.width)  # stored sideways
        shown = ImageOps.exif_transpose(img)
        assert shown.size == (frame.width, frame.height)
        clean = np.asarray(clean_image(frame).convert("L"), dtype=np.float64)
        displayed = np.asarray(shown.convert("L"), dtype=np.float64)
        assert np.abs(displayed - clean).mean() < 4  # boxes are right in the displayed frame
        flipped = np.asarray(shown.rotate(180).convert("L"), dtype=np.float64)
        assert np.abs(flipped - clean).mean() > 4 * np.abs(displayed - clean).mean()
        assert frame.boxes == synthetic_frame(CLEAN, DATE, frame.session, frame.device_id,
                                              frame.index).boxes
    elif kind == DefectKind.EXACT_DUPLICATE:
        source = by_path[defect.source_path]
        assert frame.path != source.path and data == source.data
        assert frame.boxes == source.boxes
    elif kind == DefectKind.NEAR_DUPLICATE:
        source = by_path[defect.source_path]
        assert data != source.data
        src = Image.open(io.BytesIO(source.data)).convert("RGB")
        near = Image.open(io.BytesIO(data)).convert("RGB")
        variant = defect.params["variant"]
        if variant == "reencode":
            assert near.size == src.size and frame.boxes == source.boxes
            reference = src
        elif variant == "resize":
            assert list(near.size) == defect.params["size"]
            sx, sy = near.size[0] / src.size[0], near.size[1] / src.size[1]
            assert frame.boxes == tuple((c, x1 * sx, y1 * sy, x2 * sx, y2 * sy)
                                        for c, x1, y1, x2, y2 in source.boxes)
            reference = src.resize(near.size, Image.Resampling.BILINEAR)
        else:
            dx, dy, right, bottom = defect.params["crop"]
            assert near.size == (right - dx, bottom - dy)
            for _, x1, y1, x2, y2 in frame.boxes:
                assert 0 <= x1 < x2 <= near.size[0] and 0 <= y1 < y2 <= near.size[1]
            reference = src.crop((dx, dy, right, bottom))
        diff = np.abs(np.asarray(near, np.float64) - np.asarray(reference, np.float64)).mean()
        assert diff < 6
    elif kind == DefectKind.DARK:
        assert luma(data).mean() < 20
        assert np.asarray(clean_image(frame).convert("L")).mean() > 60
    elif kind == DefectKind.BLURRY:
        def sharpness(img: Image.Image) -> float:
            return float(np.asarray(img.convert("L").filter(ImageFilter.FIND_EDGES),
                                    np.float64).var())
        blurred = sharpness(Image.open(io.BytesIO(data)))
        assert blurred < 0.2 * sharpness(clean_image(frame))
    elif kind == DefectKind.TINY_BOX:
        _, x1, y1, x2, y2 = frame.boxes[defect.box_index]
        assert 0 < x2 - x1 <= 4 and 0 < y2 - y1 <= 4
        scene = render_scene(CONFIG, DATE, frame.session, frame.device_id, frame.index)
        assert (scene.instance_map[int(y1):int(y2), int(x1):int(x2)]
                == defect.box_index + 1).all()  # drawn, on top, filling its box
    elif kind == DefectKind.MISLABELED_BOX:
        obj = frame.objects[defect.box_index]
        assert obj.label != obj.class_name
        assert (obj.class_name, obj.label) == (defect.params["true_class"],
                                               defect.params["labelled_class"])
        assert frame.boxes[defect.box_index][0] == obj.label
    elif kind == DefectKind.BOX_OUT_OF_BOUNDS:
        _, x1, y1, x2, y2 = frame.boxes[defect.box_index]
        assert x2 > frame.width or y2 > frame.height
        vx1, vy1, vx2, vy2 = defect.params["visible_box"]
        assert 0 <= vx1 < vx2 <= frame.width and 0 <= vy1 < vy2 <= frame.height
    else:
        pytest.fail(f"no check for {kind}")


@pytest.mark.parametrize("kind", list(DefectKind))
def test_each_planted_defect_is_what_it_claims(kind: DefectKind, day, by_path) -> None:
    carriers = [(d, f) for f in day for d in f.defects if d.kind == kind]
    assert carriers
    for defect, frame in carriers:
        assert defect.path == frame.path
        _check(kind, defect, frame, by_path)
    if kind == DefectKind.EXIF_ROTATED:
        assert {d.params["orientation"] for d, _ in carriers} == {6, 8}
    if kind == DefectKind.NEAR_DUPLICATE:
        assert {d.params["variant"] for d, _ in carriers} == {"reencode", "resize", "crop"}
