"""A written drop holds the day in the rig layout, with COCO labels and clean sensor logs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dataops_cv.lib.acquisition.sensor_logs.reader import read_sensor_log
from dataops_cv.lib.synthetic.config import CLASSES
from dataops_cv.lib.synthetic.drops import DropManifest, write_drop
from dataops_cv.lib.synthetic.sensors import generate_sensor_records
from dataops_cv.lib.synthetic.timeline import clock_offsets
from tests.lib.synthetic.day import CONFIG, DATE


def test_the_drop_holds_the_day_in_the_rig_layout(drop: DropManifest, day) -> None:
    assert [(i.path, i.sha256) for i in drop.images] == [(f.path, f.sha256) for f in day]
    for image in drop.images:
        assert re.fullmatch(r"images/20240601_s0[01]/cam_(front|left|right)/\d{16}\.(png|jpg)",
                            image.path)
        assert (drop.root / image.path).read_bytes() == next(
            f.data for f in day if f.path == image.path)
    assert [d.path for d in drop.defects] == [d.path for f in day for d in f.defects]


def test_the_coco_file_matches_the_ground_truth(drop: DropManifest, day) -> None:
    coco = json.loads(drop.annotations_path.read_text())
    assert [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])] == list(CLASSES)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert len({i["id"] for i in coco["images"]}) == len(coco["images"])
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    labelled = [f for f in day if f.format != "text"]
    assert [i["file_name"] for i in coco["images"]] == [f.path for f in labelled]
    boxes: dict[int, list] = {i["id"]: [] for i in coco["images"]}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes[ann["image_id"]].append((names[ann["category_id"]], x, y, x + w, y + h))
        assert ann["iscrowd"] == 0 and ann["area"] == pytest.approx(w * h)
    for image, frame in zip(coco["images"], labelled, strict=True):
        assert (image["width"], image["height"]) == (frame.width, frame.height)
        assert boxes[image["id"]] == list(frame.boxes)
    assert sum(map(len, boxes.values())) == drop.counts["annotations"] > 0


def test_the_drop_sensor_logs_read_back_clean(drop: DropManifest) -> None:
    assert [p.name for p in drop.sensor_logs] == ["20240601_s00.parquet", "20240601_s01.parquet"]
    tables = [s.table for s in generate_sensor_records(CONFIG, DATE)]
    for path, generated in zip(drop.sensor_logs, tables, strict=True):
        table, quarantined = read_sensor_log(path)
        assert quarantined == [] and table.num_rows == generated.num_rows
        assert set(table["sensor"].to_pylist()) == {"imu", "gps", "lidar"}
        files = [f for f in table["file"].to_pylist() if f]
        assert len(files) == len(set(files)) > 0
        for name in files:
            points = np.load(path.parent / name, allow_pickle=False)
            assert points.shape == (CONFIG.lidar_points, 4) and points.dtype == np.float32
    assert drop.counts["lidar_sweeps"] == len(drop.lidar_sweeps)
    assert drop.clock_offsets_us["20240601_s00"] == clock_offsets(CONFIG, DATE, 0)


def test_a_drop_refuses_a_folder_that_is_not_empty(drop: DropManifest) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        write_drop(CONFIG, DATE, drop.root)
