"""The synthetic capture generator: byte-stable by seed, exact boxes, realistic sensor rates, and
every planted defect really is what its ground truth says."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import re

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from dataops_cv.lib.acquisition.sensor_logs import read_sensor_log
from dataops_cv.lib.synthetic.scenes import (
    CLASSES,
    GPS_DEVICE,
    IMU_DEVICE,
    LIDAR_DEVICE,
    DefectConfig,
    DefectKind,
    DropManifest,
    Frame,
    PlantedDefect,
    SceneConfig,
    SyntheticFrame,
    clock_offsets,
    generate_day,
    generate_frames,
    generate_sensor_records,
    lidar_sweep,
    render_frame,
    render_scene,
    synthetic_frame,
    write_drop,
)

DATE = "2024-06-01"
# 2 sessions x 3 cameras x 20 frames = 120 slots for the 19 default defects.
CONFIG = SceneConfig(seed=7, frames_per_session=20)
CLEAN = dataclasses.replace(CONFIG, defects=DefectConfig.none())


@pytest.fixture(scope="module")
def day() -> list[SyntheticFrame]:
    return list(generate_day(CONFIG, DATE))


@pytest.fixture(scope="module")
def by_path(day: list[SyntheticFrame]) -> dict[str, SyntheticFrame]:
    return {f.path: f for f in day}


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> DropManifest:
    return write_drop(CONFIG, DATE, tmp_path_factory.mktemp("drop") / "drop", workers=2)


def _slot_frames(day: list[SyntheticFrame]) -> list[SyntheticFrame]:
    """The frame of every slot (not the extra files planted next to some)."""
    extra = {DefectKind.NOT_AN_IMAGE, DefectKind.EXACT_DUPLICATE, DefectKind.NEAR_DUPLICATE}
    return [f for f in day if not any(d.kind in extra for d in f.defects)]


def _luma(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def _clean_image(frame: SyntheticFrame) -> Image.Image:
    """The same slot rendered on a day without defects (same scene, same noise)."""
    return render_scene(CLEAN, DATE, frame.session, frame.device_id, frame.index).image


# ------------------------------------------------------------------------------ legacy API


def test_legacy_frames_keep_their_shape_and_meaning() -> None:
    frames = list(generate_frames(3, DATE, 6, 64, 48))
    assert all(isinstance(f, Frame) for f in frames)
    assert len({f.sha256 for f in frames}) == 6
    assert [f.data for f in frames] == [f.data for f in generate_frames(3, DATE, 6, 64, 48)]
    assert render_frame(3, DATE, 2, 64, 48) == frames[2]
    for i, frame in enumerate(frames):
        img = Image.open(io.BytesIO(frame.data))
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", (64, 48))
        assert frame.capture_time == dt.datetime(2024, 6, 1, 8, tzinfo=dt.UTC) \
            + dt.timedelta(milliseconds=83 * i)
        assert frame.device_id == "synthetic-cam-0"
        assert frame.source_uri == f"synthetic://seed=3/{DATE}/{i:06d}.png"
        for cls, x1, y1, x2, y2 in frame.boxes:
            assert cls in CLASSES and 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 48
    assert sum(len(f.boxes) for f in frames) > 0
    assert next(generate_frames(3, DATE, 1, 16, 16)).width == 16  # tiny frames still render


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_another_seed_different(day) -> None:
    again = list(generate_day(CONFIG, DATE, workers=3))  # the thread pool must not change output
    assert [(f.path, f.sha256, f.boxes, f.defects) for f in again] == \
        [(f.path, f.sha256, f.boxes, f.defects) for f in day]
    first = [s.table for s in generate_sensor_records(CONFIG, DATE)]
    second = [s.table for s in generate_sensor_records(CONFIG, DATE)]
    assert all(a.equals(b) for a, b in zip(first, second, strict=True))
    sweeps = [d for _, d in next(generate_sensor_records(CONFIG, DATE)).sweeps()]
    assert sweeps == [d for _, d in next(generate_sensor_records(CONFIG, DATE)).sweeps()]

    other = dataclasses.replace(CONFIG, seed=8)
    assert synthetic_frame(other, DATE, 0, "cam_front", 0).sha256 != day[0].sha256
    assert not next(generate_sensor_records(other, DATE)).table.equals(first[0])
    assert synthetic_frame(CONFIG, "2024-06-02", 0, "cam_front", 0).sha256 != day[0].sha256


def test_any_single_frame_regenerates_alone(day) -> None:
    for frame in day[::7] + [f for f in day if f.defects][:5]:
        alone = synthetic_frame(CONFIG, DATE, frame.session, frame.device_id, frame.index)
        slot_file = next(f for f in day if (f.session, f.device_id, f.index) ==
                         (frame.session, frame.device_id, frame.index))
        assert alone == slot_file


# ---------------------------------------------------------------------------------- boxes


def test_every_box_is_exactly_the_drawn_object() -> None:
    exact = dataclasses.replace(CLEAN, noise_std=0.0, brightness_range=(1.0, 1.0),
                                blur_probability=0.0, frames_per_session=8)
    checked = occluded = overlaps = 0
    for session in range(exact.sessions_per_day):
        for camera in exact.cameras:
            for index in range(exact.frames_per_session):
                scene = render_scene(exact, DATE, session, camera, index)
                pixels = np.asarray(scene.image)
                h, w = scene.instance_map.shape
                in_some_box = np.zeros((h, w), dtype=bool)
                fulls = []
                for i, obj in enumerate(scene.objects):
                    x1, y1, x2, y2 = map(int, obj.box)
                    assert obj.box == obj.label_box and obj.label == obj.class_name
                    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
                    # The box is the extent of the object's whole mask within the frame...
                    mask, mx, my = scene.masks[i]
                    full = np.zeros((h, w), dtype=bool)
                    ys, xs = np.nonzero(mask)
                    inside = (xs + mx >= 0) & (xs + mx < w) & (ys + my >= 0) & (ys + my < h)
                    full[ys[inside] + my, xs[inside] + mx] = True
                    rows, cols = np.flatnonzero(full.any(1)), np.flatnonzero(full.any(0))
                    assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (x1, y1, x2, y2)
                    # ...its visible pixels lie in the box and have the object's colours...
                    visible = scene.instance_map == i + 1
                    vy, vx = np.nonzero(visible)
                    assert ((vx >= x1) & (vx < x2) & (vy >= y1) & (vy < y2)).all()
                    colours = {tuple(c) for c in pixels[visible]}
                    assert colours <= set(scene.palettes[i])
                    # ...and an unoccluded object fills its box edge to edge.
                    if obj.occluded == 0:
                        assert (vx.min(), vy.min(), vx.max() + 1, vy.max() + 1) == (x1, y1, x2, y2)
                    else:
                        occluded += 1
                    in_some_box[y1:y2, x1:x2] = True
                    fulls.append(full)
                    checked += 1
                assert not (scene.instance_map > 0)[~in_some_box].any()
                # Where two objects overlap the farther one (higher up the road) is never seen.
                # Draw order follows the track's sub-pixel bottom, so ties within 3 px are skipped.
                for i, a in enumerate(fulls):
                    for j in range(i + 1, len(fulls)):
                        overlap = a & fulls[j]
                        bottoms = scene.objects[i].box[3], scene.objects[j].box[3]
                        if overlap.any() and abs(bottoms[0] - bottoms[1]) > 3:
                            far = i if bottoms[0] < bottoms[1] else j
                            assert (scene.instance_map[overlap] != far + 1).all()
                            overlaps += 1
    assert checked > 50 and occluded > 0 and overlaps > 0  # real, overlapping scenes


def test_annotated_boxes_stay_inside_their_image_except_the_planted_one(day) -> None:
    for frame in day:
        oob = {d.box_index for d in frame.defects if d.kind == DefectKind.BOX_OUT_OF_BOUNDS}
        for i, (cls, x1, y1, x2, y2) in enumerate(frame.boxes):
            assert cls in CLASSES and x1 < x2 and y1 < y2
            inside = 0 <= x1 and 0 <= y1 and x2 <= frame.width and y2 <= frame.height
            assert inside == (i not in oob), (frame.path, i)


# -------------------------------------------------------------------------- rates, clocks


def _median_period_us(timestamps: list[int]) -> float:
    return float(np.median(np.diff(np.sort(np.asarray(timestamps)))))


def test_sensors_and_cameras_run_at_their_rates(day) -> None:
    seconds = CONFIG.frames_per_session / CONFIG.camera_hz
    for sess in generate_sensor_records(CONFIG, DATE):
        rows = sess.table.to_pylist()
        for sensor, device, hz in (("imu", IMU_DEVICE, 100), ("gps", GPS_DEVICE, 10),
                                   ("lidar", LIDAR_DEVICE, 20)):
            ts = [r["timestamp"] for r in rows if r["sensor"] == sensor]
            assert {r["device_id"] for r in rows if r["sensor"] == sensor} == {device}
            assert _median_period_us(ts) == pytest.approx(1e6 / hz, rel=0.02)
            assert abs(len(ts) - seconds * hz) <= 1
    for session in range(CONFIG.sessions_per_day):
        for camera in CONFIG.cameras:
            ts = [f.timestamp_us for f in _slot_frames(day)
                  if f.session == session and f.device_id == camera]
            assert len(ts) == CONFIG.frames_per_session
            assert _median_period_us(ts) == pytest.approx(1e6 / 12, rel=0.02)


def test_device_clocks_carry_their_ground_truth_offsets(day) -> None:
    for session in range(CONFIG.sessions_per_day):
        offsets = clock_offsets(CONFIG, DATE, session)
        assert offsets[GPS_DEVICE] == 0
        assert all(abs(o) <= CONFIG.clock_offset_max_us for o in offsets.values())
        assert len({offsets[c] for c in CONFIG.cameras}) > 1  # not one shared clock
        for camera in CONFIG.cameras:
            skew = [f.timestamp_us - f.true_time_us for f in _slot_frames(day)
                    if f.session == session and f.device_id == camera]
            # Jitter is 100 µs: the median of 20 readings sits well within 100 µs of the offset.
            assert abs(np.median(skew) - offsets[camera]) < 100


def test_gps_moves_smoothly_and_the_imu_feels_gravity(day) -> None:
    front = [f for f in _slot_frames(day) if f.session == 0 and f.device_id == "cam_front"]
    for a, b in zip(front, front[1:], strict=False):
        north = math.radians(b.gps[0] - a.gps[0]) * 6_378_137
        east = math.radians(b.gps[1] - a.gps[1]) * 6_378_137 * math.cos(math.radians(a.gps[0]))
        step = math.hypot(north, east)
        assert 0.2 < step < 2.0  # 6-14 m/s for 1/12 s
    table = next(generate_sensor_records(CONFIG, DATE)).table.to_pylist()
    az = [r["az"] for r in table if r["sensor"] == "imu"]
    assert np.mean(az) == pytest.approx(9.81, abs=0.3)
    assert all(4 < r["speed"] < 17 for r in table if r["sensor"] == "gps")


def test_lidar_sweeps_are_point_clouds_of_the_street() -> None:
    sess = next(generate_sensor_records(CONFIG, DATE))
    files = [name for name, _ in sess.sweeps()]
    assert files == [f for f in sess.table.column("file").to_pylist() if f]
    name, data = next(sess.sweeps())
    points = np.load(io.BytesIO(data), allow_pickle=False)
    assert points.dtype == np.float32 and points.shape == (CONFIG.lidar_points, 4)
    assert np.array_equal(points, lidar_sweep(CONFIG, DATE, 0, 0))
    ground = np.abs(points[:, 2] + 1.8) < 0.1
    assert ground.mean() > 0.3  # a downward-looking majority of beams hits the road
    assert (points[:, 3] >= 0).all() and (points[:, 3] <= 1).all()
    assert np.hypot(points[:, 0], points[:, 1]).max() < 101


# -------------------------------------------------------------------------------- defects


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
        clean = np.asarray(_clean_image(frame).convert("L"), dtype=np.float64)
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
        assert _luma(data).mean() < 20
        assert np.asarray(_clean_image(frame).convert("L")).mean() > 60
    elif kind == DefectKind.BLURRY:
        def sharpness(img: Image.Image) -> float:
            return float(np.asarray(img.convert("L").filter(ImageFilter.FIND_EDGES),
                                    np.float64).var())
        blurred = sharpness(Image.open(io.BytesIO(data)))
        assert blurred < 0.2 * sharpness(_clean_image(frame))
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


# ---------------------------------------------------------------------------------- drops


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


def test_config_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match="need as many frame slots"):
        SceneConfig(frames_per_session=2, cameras=("a",), sessions_per_day=1)
    with pytest.raises(ValueError, match="image_format"):
        SceneConfig(image_format="webp")
    with pytest.raises(ValueError, match="class_weights"):
        SceneConfig(class_weights=(("truck", 1.0),))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        synthetic_frame(CONFIG, "June 1st", 0, "cam_front", 0)
    with pytest.raises(ValueError, match="not one of"):
        synthetic_frame(CONFIG, DATE, 0, "cam_rear", 0)


def test_jpeg_drops_encode_frames_as_jpeg() -> None:
    config = dataclasses.replace(CLEAN, image_format="jpeg", frames_per_session=2)
    frame = next(generate_day(config, DATE))
    assert frame.path.endswith(".jpg") and frame.format == "jpeg"
    assert Image.open(io.BytesIO(frame.data)).format == "JPEG"
