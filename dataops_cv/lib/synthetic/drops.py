"""A capture day written to disk as a rig would leave it, with the ground truth of what it holds.

:func:`write_drop` lays a day out as::

    images/<session_id>/<camera>/<device-clock epoch µs>.<png|jpg>
    annotations.json                     COCO; file_name relative to the drop root
    sensors/<session_id>.parquet         generic sensor-log format (see sensor_logs)
    sensors/lidar/<session_id>_<device>_<µs>.npy
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dataops_cv.lib.acquisition.sensor_logs.writer import write_sensor_log
from dataops_cv.lib.synthetic.config import CATEGORY_IDS, CLASSES, SceneConfig
from dataops_cv.lib.synthetic.defects import PlantedDefect
from dataops_cv.lib.synthetic.frames import SyntheticFrame, generate_day
from dataops_cv.lib.synthetic.sensors import generate_sensor_records
from dataops_cv.lib.synthetic.timeline import clock_offsets


@dataclass(frozen=True)
class DropFile:
    """One image file of a drop, as written."""

    path: str
    sha256: str
    size: int
    format: str
    width: int
    height: int
    session_id: str
    device_id: str
    timestamp_us: int
    boxes: int
    defects: tuple[str, ...]


@dataclass(frozen=True)
class DropManifest:
    """What :func:`write_drop` wrote, and the ground truth a test checks the pipeline against."""

    root: Path
    date: str
    config: SceneConfig
    images: tuple[DropFile, ...]
    annotations_path: Path
    sensor_logs: tuple[Path, ...]
    lidar_sweeps: tuple[Path, ...]
    defects: tuple[PlantedDefect, ...]
    clock_offsets_us: dict[str, dict[str, int]]  # session_id -> device -> µs
    counts: dict[str, int]


@dataclass
class _Images:
    """The image files written so far and their COCO records."""

    files: list[DropFile]
    coco_images: list[dict[str, object]]
    coco_annotations: list[dict[str, object]]
    defects: list[PlantedDefect]


@dataclass
class _Sensors:
    """The sensor logs and LiDAR sweeps written so far, their rows and the clock truth."""

    logs: list[Path]
    sweeps: list[Path]
    rows: int
    offsets: dict[str, dict[str, int]]


def write_drop(config: SceneConfig, date: str, out_dir: Path, *, workers: int | None = None
               ) -> DropManifest:
    """Write one capture day as a rig would leave it (layout in the module docstring).

    Args:
        out_dir: created if missing; must be empty so a drop never mixes two configs.
        workers: render threads (default: up to 4, bounded by the CPUs).

    Raises:
        FileExistsError: ``out_dir`` is not empty.
    """
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"drop folder {root} is not empty; write a drop into a new folder")
    root.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else max(1, min(4, os.cpu_count() or 1))
    images = _write_images(config, date, root, workers)
    annotations_path = root / "annotations.json"
    annotations_path.write_text(json.dumps({
        "info": {"description": "dataops-cv synthetic capture drop", "version": "1",
                 "date_created": date, "seed": config.seed},
        "licenses": [], "images": images.coco_images, "annotations": images.coco_annotations,
        "categories": _coco_categories(),
    }, separators=(",", ":")))
    sensors = _write_sensors(config, date, root / "sensors")
    counts = {"images": len(images.files), "annotated_images": len(images.coco_images),
              "annotations": len(images.coco_annotations), "sensor_rows": sensors.rows,
              "lidar_sweeps": len(sensors.sweeps), "defects": len(images.defects)}
    return DropManifest(root, date, config, tuple(images.files), annotations_path,
                        tuple(sensors.logs), tuple(sensors.sweeps), tuple(images.defects),
                        sensors.offsets, counts)


def _write_images(config: SceneConfig, date: str, root: Path, workers: int) -> _Images:
    """Write every file of the day's ``images/`` folder and collect its COCO records."""
    out = _Images([], [], [], [])
    made: set[Path] = set()
    for frame in generate_day(config, date, workers=workers):
        target = root / frame.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(frame.data)
        out.defects.extend(frame.defects)
        out.files.append(DropFile(frame.path, frame.sha256, len(frame.data), frame.format,
                                  frame.width, frame.height, frame.session_id, frame.device_id,
                                  frame.timestamp_us, len(frame.objects),
                                  tuple(str(d.kind) for d in frame.defects)))
        if frame.format == "text":
            continue  # never was an image: nobody labelled it
        _add_coco(out, frame)
    return out


def _add_coco(out: _Images, frame: SyntheticFrame) -> None:
    image_id = len(out.coco_images) + 1
    out.coco_images.append({
        "id": image_id, "file_name": frame.path, "width": frame.width,
        "height": frame.height,
        "date_captured": frame.capture_time.isoformat().replace("+00:00", "Z"),
        "session_id": frame.session_id, "device_id": frame.device_id,
        "timestamp_us": frame.timestamp_us,
    })
    for obj in frame.objects:
        x1, y1, x2, y2 = obj.label_box
        out.coco_annotations.append({
            "id": len(out.coco_annotations) + 1, "image_id": image_id,
            "category_id": CATEGORY_IDS[obj.label], "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "occluded": obj.occluded,
        })


def _coco_categories() -> list[dict[str, object]]:
    return [{"id": CATEGORY_IDS[c], "name": c,
             "supercategory": "infrastructure" if c == "traffic_sign" else "road_user"}
            for c in CLASSES]


def _write_sensors(config: SceneConfig, date: str, sensors: Path) -> _Sensors:
    """Write each session's sensor log and its LiDAR sweeps under ``sensors``."""
    out = _Sensors([], [], 0, {})
    (sensors / "lidar").mkdir(parents=True, exist_ok=True)
    for sess in generate_sensor_records(config, date):
        out.logs.append(write_sensor_log(sess.table, sensors / f"{sess.session_id}.parquet"))
        out.rows += sess.table.num_rows
        out.offsets[sess.session_id] = clock_offsets(config, date, sess.session)
        for name, data in sess.sweeps():
            target = sensors / name
            target.write_bytes(data)
            out.sweeps.append(target)
    return out
