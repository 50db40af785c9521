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
    frames = ingest_images(source, "d", [], [], Store().put).rows
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
    frames = ingest_images(source, "d", [], [], Store().put).rows
    result = import_annotations(source, "auto", frames)
    assert result.format == "images" and result.rows == [] and result.notes
