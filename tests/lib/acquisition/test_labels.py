"""Dataset labels joined to ingested frames: by hash, in the displayed frame, nothing lost."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from dataops_cv.lib.acquisition.ingest import ingest_images
from dataops_cv.lib.acquisition.labels import import_annotations
from dataops_cv.lib.acquisition.sources import LocalSource
from dataops_cv.lib.core.annotations import BoxRules
from dataops_cv.lib.core.quarantine import Reason
from tests.lib.acquisition.test_ingest import Store


def jpeg(size: tuple[int, int], orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.new("RGB", size, (90, 90, 90)).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


@pytest.fixture
def coco_drop(tmp_path: Path) -> Path:
    img = tmp_path / "images"
    img.mkdir()
    (img / "plain.jpg").write_bytes(jpeg((100, 50)))
    (img / "rotated.jpg").write_bytes(jpeg((100, 50), orientation=6))  # displayed 50x100
    (img / "broken.jpg").write_bytes(jpeg((100, 50))[:200])
    (img / "odd.jpg").write_bytes(jpeg((100, 50)))
    images = [
        {"id": 1, "file_name": "images/plain.jpg", "width": 100, "height": 50},
        {"id": 2, "file_name": "images/rotated.jpg", "width": 100, "height": 50},  # stored size
        {"id": 3, "file_name": "images/broken.jpg", "width": 100, "height": 50},
        {"id": 4, "file_name": "images/odd.jpg", "width": 300, "height": 150},  # wrong size
    ]
    anns = [{"id": i, "image_id": i, "category_id": 7, "bbox": [10, 5, 20, 10]}
            for i in range(1, 5)]
    (tmp_path / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "car"}]}))
    return tmp_path


def test_labels_attach_by_hash_and_follow_exif_rotation(coco_drop: Path):
    source = LocalSource(coco_drop)
    frames = ingest_images(source, "2026-01-05|rig", [], [], Store().put).rows
    result = import_annotations(source, "auto", frames)
    assert result.format == "coco"
    sha = {f["rel_path"]: f["sha256"] for f in frames}
    boxes = {r["image_sha256"]: (r["x_min"], r["y_min"], r["x_max"], r["y_max"])
             for r in result.rows}
    assert boxes[sha["images/plain.jpg"]] == (10, 5, 30, 15)
    # stored 100x50 rotated 90 degrees clockwise for display (orientation 6): x' = H - y
    assert boxes[sha["images/rotated.jpg"]] == (50 - 15, 10, 50 - 5, 30)
    reasons = {Path(q.source_uri.split("#")[0]).name: q.reason for q in result.quarantine}
    assert reasons == {"broken.jpg": Reason.MISSING_IMAGE, "odd.jpg": Reason.BOX_OUT_OF_BOUNDS}
    assert all(r["class_name"] == "car" and r["source"] == "coco" for r in result.rows)
    revision = {r["label_revision"] for r in result.rows}
    assert len(revision) == 1 and revision.pop().startswith("files-sha256:")
    assert import_annotations(source, "auto", frames).rows == result.rows  # stable
    (coco_drop / "annotations.json").write_text(
        (coco_drop / "annotations.json").read_text().replace('"car"', '"truck"'))
    edited = import_annotations(source, "auto", frames)
    assert {r["label_revision"] for r in edited.rows}.isdisjoint(
        {r["label_revision"] for r in result.rows})


def test_unlabeled_drop_in_auto_mode_is_images_only(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(jpeg((20, 20)))
    source = LocalSource(tmp_path)
    frames = ingest_images(source, "2026-01-05|rig", [], [], Store().put).rows
    result = import_annotations(source, "auto", frames)
    assert result.format == "images" and result.rows == [] and result.notes


def _voc(name: str, size: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> str:
    objects = "".join(
        f"<object><name>car</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>" for a, b, c, d in boxes)
    return (f"<annotation><filename>{name}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>")


def test_implausible_boxes_are_quarantined_after_the_formats_convention(tmp_path: Path):
    """VOC's pixels are 1-based and inclusive: xmax = xmin is a box one pixel wide, the mark
    of a zero-width box; it is set aside with its rule, as is a 1 px sliver (aspect)."""
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages" / "a.jpg").write_bytes(jpeg((200, 100)))
    (tmp_path / "Annotations" / "a.xml").write_text(_voc("a.jpg", (200, 100), [
        (11, 21, 40, 60),  # a 30 x 40 px box: kept
        (50, 21, 50, 60),  # xmax = xmin: 1 px wide
        (1, 10, 200, 12),  # 200 x 3 px: aspect 67:1
        (100, 50, 101, 51),  # 2 x 2 px: small but plausible
    ]))
    source = LocalSource(tmp_path)
    frames = ingest_images(source, "2026-01-05|rig", [], [], Store().put).rows
    result = import_annotations(source, "voc", frames)
    kept = [(r["x_min"], r["y_min"], r["x_max"], r["y_max"]) for r in result.rows]
    assert sorted(kept) == [(10, 20, 40, 60), (99, 49, 101, 51)]
    reasons = {q.reason: q.detail for q in result.quarantine}
    assert sorted(reasons) == [Reason.BOX_IMPLAUSIBLE_ASPECT, Reason.BOX_TOO_SMALL]
    assert "1 x 40 px" in reasons[Reason.BOX_TOO_SMALL]
    assert "min_side_px" in reasons[Reason.BOX_TOO_SMALL]
    assert "67:1 > 50:1" in reasons[Reason.BOX_IMPLAUSIBLE_ASPECT]
    # The contract decides: looser rules keep both.
    loose = import_annotations(source, "voc", frames,
                               box_rules=BoxRules(min_side_px=0, max_aspect_ratio=None))
    assert len(loose.rows) == 4 and loose.quarantine == []
