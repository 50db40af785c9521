"""Procedural capture days: camera frames with exact boxes, IMU/GPS/LiDAR logs and planted defects.

The model
---------
A day (partition key ``YYYY-MM-DD``) holds ``sessions_per_day`` capture sessions. In a session the
ego vehicle drives a smooth analytic trajectory along a street. Every camera records
``frames_per_session`` frames at ``camera_hz`` of its own procedural street scene: a sky/road
gradient with lane markings and noise, and object *tracks* (cars, pedestrians, cyclists, traffic
signs, each a distinct shape and palette) that move across the view and wrap around, so consecutive
frames look alike as they do on a real rig. Nearer objects are drawn over farther ones (occlusion).
An IMU (``imu_hz``), a GPS (``gps_hz``) and a LiDAR (``lidar_hz``, an N×4 float32 point cloud per
sweep, ray-cast against the ground, the street's walls and posts) log alongside.

Boxes are exact: each object is drawn as a pixel mask and its box is the mask's extent in pixel-edge
coordinates (``x2``/``y2`` exclusive), clipped to the frame but not to occluders; the share of the
object hidden by nearer ones is ``SceneObject.occluded``.

Determinism
-----------
Every random choice comes from a ``random.Random`` or ``numpy.random.Generator`` seeded by
:func:`stable_seed` of the ids it belongs to (seed, date, session, device, index), sampled once
into a parameter object and then applied. Any single frame, sensor reading or sweep can be
regenerated alone (:func:`synthetic_frame`, :func:`render_scene`, :func:`lidar_sweep`), and the
same config gives the same bytes on every run and machine with the pinned Python, NumPy and Pillow
(``random``'s ``sample``/``gauss`` and NumPy's distributions may change between their versions).
Images are encoded with fixed PNG/JPEG parameters; pixel maths after drawing is integer; sensor
values are quantised to the sensor's resolution, so a last-bit difference in a platform's ``sin``
cannot change a stored value in practice. One outside dependency remains: Pillow deflates PNGs
through the host's ``libz``. A whole drop hashed the same on a zlib 1.3 host and a zlib-ng 2.3.3
host, but another deflate implementation could change PNG bytes (never pixels); JPEG uses the
libjpeg-turbo inside the Pillow wheel.

Clocks
------
GPS time is the reference clock. Every other device (each camera, the IMU, the LiDAR) has a
per-session offset, uniform in ``±clock_offset_max_us``, plus per-reading Gaussian jitter
(``clock_jitter_us``). File names and sensor-log timestamps are in the device's own clock;
:func:`clock_offsets` and ``SyntheticFrame.true_time_us`` are the ground truth for fusion.

Planted defects
---------------
``DefectConfig`` says how many of each :class:`DefectKind` a day gets. Each one takes its own frame
slot (session, camera, index), chosen from a seed of (seed, date); the slot's file is replaced by
the defect, or, for ``not_an_image`` and the duplicates, a second file is written next to it. Every
planted defect is a :class:`PlantedDefect` on the frame that carries it, so tests know exactly what
to expect.

The drop
--------
:func:`write_drop` lays a day out as a capture rig would::

    images/<session_id>/<camera>/<device-clock epoch µs>.<png|jpg>
    annotations.json                     COCO; file_name relative to the drop root
    sensors/<session_id>.parquet         generic sensor-log format (see sensor_logs)
    sensors/lidar/<session_id>_<device>_<µs>.npy
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import io
import json
import math
import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, ImageDraw, ImageFilter

from dataops_cv.lib.acquisition.sensor_logs import UNIT_METADATA_KEY, write_sensor_log

CLASSES = ("car", "pedestrian", "cyclist", "traffic_sign")
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(CLASSES)}  # COCO category ids
FRAME_INTERVAL_MS = 83  # legacy render_frame spacing, ~12 Hz

IMU_DEVICE = "imu0"
GPS_DEVICE = "gps0"
LIDAR_DEVICE = "lidar_top"
FIRMWARE = {IMU_DEVICE: "bmi088-2.4.1", GPS_DEVICE: "zed-f9p-1.32", LIDAR_DEVICE: "vls32-3.0.41"}

PNG_COMPRESS_LEVEL = 1
# zlib Z_HUFFMAN_ONLY: sensor noise leaves LZ77 little to match, so Huffman coding alone is ~25 %
# faster and ~13 % smaller than the default strategy on these frames.
PNG_COMPRESS_TYPE = 2
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # 4:2:0
NEAR_DUPLICATE_JPEG_QUALITY = 70
NEAR_DUPLICATE_SCALE = 0.75
DARK_BRIGHTNESS = 0.07
TINY_BOX_MAX_PX = 4
EXT = {"png": "png", "jpeg": "jpg"}

SENSOR_HEIGHT_M = 1.8
LIDAR_MAX_RANGE_M = 100.0
LIDAR_ELEVATIONS = np.radians(np.linspace(-25.0, 10.0, 32))
EARTH_RADIUS_M = 6_378_137.0
GRAVITY = 9.80665
_US = 1_000_000


class DefectKind(StrEnum):
    ZERO_BYTE = "zero_byte"
    TRUNCATED_PNG = "truncated_png"
    TRUNCATED_JPEG = "truncated_jpeg"
    NOT_AN_IMAGE = "not_an_image"  # text bytes under an image extension
    CMYK_JPEG = "cmyk_jpeg"
    PNG_16BIT = "png_16bit"  # 16-bit grayscale (Pillow mode I;16)
    PALETTE_PNG = "palette_png"
    RGBA_PNG = "rgba_png"
    EXIF_ROTATED = "exif_rotated"  # stored sideways with orientation 6 or 8
    EXACT_DUPLICATE = "exact_duplicate"
    NEAR_DUPLICATE = "near_duplicate"  # re-encoded, resized or slightly cropped copy
    DARK = "dark"
    BLURRY = "blurry"
    TINY_BOX = "tiny_box"
    MISLABELED_BOX = "mislabeled_box"
    BOX_OUT_OF_BOUNDS = "box_out_of_bounds"


# Defects that add a second file next to their slot; every other kind replaces the slot's file.
EXTRA_FILE_DEFECTS = frozenset(
    {DefectKind.NOT_AN_IMAGE, DefectKind.EXACT_DUPLICATE, DefectKind.NEAR_DUPLICATE})
NEAR_DUPLICATE_VARIANTS = ("reencode", "resize", "crop")


@dataclass(frozen=True)
class DefectConfig:
    """How many of each defect one day gets (field names are :class:`DefectKind` values)."""

    zero_byte: int = 1
    truncated_png: int = 1
    truncated_jpeg: int = 1
    not_an_image: int = 1
    cmyk_jpeg: int = 1
    png_16bit: int = 1
    palette_png: int = 1
    rgba_png: int = 1
    exif_rotated: int = 2  # orientations 6 and 8 alternate
    exact_duplicate: int = 1
    near_duplicate: int = 3  # variants reencode, resize, crop in turn
    dark: int = 1
    blurry: int = 1
    tiny_box: int = 1
    mislabeled_box: int = 1
    box_out_of_bounds: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"DefectConfig.{f.name} must be >= 0, got {getattr(self, f.name)}")

    @classmethod
    def none(cls) -> DefectConfig:
        """A clean day."""
        return cls(**{f.name: 0 for f in fields(cls)})

    def counts(self) -> dict[DefectKind, int]:
        return {DefectKind(f.name): getattr(self, f.name) for f in fields(self)}

    @property
    def total(self) -> int:
        return sum(self.counts().values())


@dataclass(frozen=True)
class SceneConfig:
    """Everything that shapes a synthetic capture day; the same config gives the same bytes."""

    seed: int = 0
    sessions_per_day: int = 2
    frames_per_session: int = 24  # per camera
    cameras: tuple[str, ...] = ("cam_front", "cam_left", "cam_right")
    camera_hz: float = 12.0
    imu_hz: float = 100.0
    gps_hz: float = 10.0
    lidar_hz: float = 20.0
    lidar_points: int = 2000
    width: int = 320
    height: int = 240
    image_format: str = "png"  # png | jpeg
    class_weights: tuple[tuple[str, float], ...] = (
        ("car", 0.45), ("pedestrian", 0.25), ("cyclist", 0.15), ("traffic_sign", 0.15))
    objects_per_frame: tuple[int, int] = (2, 6)  # tracks per (session, camera), inclusive
    min_box_px: int = 8  # objects with less of them in view are not drawn
    brightness_range: tuple[float, float] = (0.75, 1.15)
    noise_std: float = 3.0  # sensor noise, in 8-bit grey levels
    blur_probability: float = 0.05
    blur_radius: tuple[float, float] = (0.6, 1.4)
    clock_offset_max_us: int = 2000
    clock_jitter_us: float = 100.0
    defects: DefectConfig = field(default_factory=DefectConfig)

    def __post_init__(self) -> None:
        if self.image_format not in EXT:
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if self.sessions_per_day < 1 or self.frames_per_session < 1:
            raise ValueError("sessions_per_day and frames_per_session must be >= 1, got "
                             f"{self.sessions_per_day} and {self.frames_per_session}")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct and non-empty, got {self.cameras}")
        for camera in self.cameras:
            if not camera or "/" in camera or "\\" in camera or camera in (".", ".."):
                raise ValueError(f"camera id {camera!r} cannot be a folder name")
        for name in ("camera_hz", "imu_hz", "gps_hz", "lidar_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"frames must be at least 8x8, got {self.width}x{self.height}")
        unknown = [c for c, _ in self.class_weights if c not in CLASSES]
        if unknown or not self.class_weights or any(w < 0 for _, w in self.class_weights) \
                or sum(w for _, w in self.class_weights) <= 0:
            raise ValueError(f"class_weights must weigh classes of {CLASSES} with non-negative "
                             f"weights summing above 0, got {self.class_weights}")
        lo, hi = self.objects_per_frame
        if not 0 <= lo <= hi:
            raise ValueError(f"objects_per_frame must be (lo, hi) with 0 <= lo <= hi, got "
                             f"{self.objects_per_frame}")
        for name in ("brightness_range", "blur_radius"):
            lo_f, hi_f = getattr(self, name)
            if not 0 <= lo_f <= hi_f:
                raise ValueError(f"{name} must be (lo, hi) with 0 <= lo <= hi, got "
                                 f"{getattr(self, name)}")
        if not 0 <= self.blur_probability <= 1:
            raise ValueError(f"blur_probability must be in [0, 1], got {self.blur_probability}")
        if self.lidar_points < 1 or self.min_box_px < 1:
            raise ValueError("lidar_points and min_box_px must be >= 1")
        if self.clock_offset_max_us < 0 or self.clock_jitter_us < 0 or self.noise_std < 0:
            raise ValueError("clock_offset_max_us, clock_jitter_us and noise_std must be >= 0")
        slots = self.sessions_per_day * len(self.cameras) * self.frames_per_session
        if self.defects.total > slots:
            raise ValueError(f"{self.defects.total} planted defects need as many frame slots, "
                             f"but a day has only {slots}: raise frames_per_session or lower "
                             "DefectConfig")

    @property
    def session_seconds(self) -> float:
        return self.frames_per_session / self.camera_hz

    @property
    def ext(self) -> str:
        return EXT[self.image_format]


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: ``box`` is exact (its pixels, clipped to the frame, not to occluders)."""

    class_name: str  # what was drawn
    box: Box  # x1, y1, x2, y2 in pixel-edge coordinates of the displayed frame
    occluded: float  # share of the object's in-frame pixels hidden by nearer objects
    track_id: int  # stable within a (session, camera); planted objects are negative
    label: str  # class written to the annotations (differs for a mislabeled box)
    label_box: Box  # box written to the annotations (differs for a box out of bounds)


@dataclass(frozen=True)
class PlantedDefect:
    """Ground truth for one planted defect.

    ``path`` is the drop-relative file that holds it; ``source_path`` the frame a duplicate copies;
    ``box_index`` indexes the file's annotated boxes for box defects; ``params`` holds what a test
    needs (``orientation``, ``variant``, ``true_class``, ``kept_bytes``, ...).
    """

    kind: DefectKind
    path: str
    session_id: str
    device_id: str
    source_path: str | None = None
    box_index: int | None = None
    detail: str = ""
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SyntheticFrame:
    """One file of a drop's ``images/`` folder, with everything the generator knows about it."""

    path: str  # images/<session_id>/<camera>/<timestamp_us>.<ext>, relative to the drop root
    data: bytes
    sha256: str
    format: str  # what the bytes are: png | jpeg | text | empty
    width: int  # displayed size (after EXIF orientation); 0 for a file that never was an image
    height: int
    timestamp_us: int  # device clock, UTC epoch µs (the file name)
    true_time_us: int  # reference (GPS) clock
    session: int  # index of the session in the day
    session_id: str
    device_id: str  # camera
    index: int  # frame index of the camera in the session
    gps: tuple[float, float, float]  # true lat, lon (deg), alt (m) at true_time_us
    objects: tuple[SceneObject, ...]
    defects: tuple[PlantedDefect, ...]
    source_uri: str

    @property
    def ext(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def capture_time(self) -> dt.datetime:
        return _datetime_us(self.timestamp_us)

    @property
    def boxes(self) -> tuple[tuple[str, float, float, float, float], ...]:
        """Boxes as annotated: (class, x1, y1, x2, y2)."""
        return tuple((o.label, *o.label_box) for o in self.objects)


@dataclass
class Scene:
    """The displayed pixels of one frame before encoding, with what was drawn where."""

    image: Image.Image  # RGB
    instance_map: np.ndarray  # int32 H×W; 0 background, i + 1 where objects[i] is visible
    objects: tuple[SceneObject, ...]
    palettes: tuple[tuple[tuple[int, int, int], ...], ...]  # colours each object was drawn in
    masks: tuple[tuple[np.ndarray, int, int], ...]  # each object's full mask and its top-left


# --------------------------------------------------------------------------------------- seeds


def stable_seed(*parts: object) -> int:
    """64-bit seed from stable ids: the same ids give the same seed on every machine."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _py_rng(*parts: object) -> random.Random:
    return random.Random(stable_seed(*parts))


def _np_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed(*parts))


# ------------------------------------------------------------------------------------ timeline


def _day_start_us(date: str) -> int:
    try:
        day = dt.date.fromisoformat(date)
    except ValueError as exc:
        raise ValueError(f"capture date must be YYYY-MM-DD, got {date!r}") from exc
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * _US


def _datetime_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def session_id(date: str, session: int) -> str:
    """Stable id of a day's session, unique across days: ``20240601_s00``."""
    return f"{date.replace('-', '')}_s{session:02d}"


def session_start_us(config: SceneConfig, date: str, session: int) -> int:
    """Reference-clock start of a session: from 08:00 UTC, spaced so sessions never overlap."""
    duration = round(config.session_seconds * _US)
    spacing = max(duration + 60 * _US,
                  min(90 * 60 * _US, 14 * 3600 * _US // config.sessions_per_day))
    jitter = _py_rng(config.seed, date, session, "start").randrange(30 * _US)
    return _day_start_us(date) + 8 * 3600 * _US + session * spacing + jitter


def clock_offset_us(config: SceneConfig, date: str, session: int, device: str) -> int:
    """Device clock minus reference clock during a session (GPS is the reference: 0)."""
    if device == GPS_DEVICE or config.clock_offset_max_us == 0:
        return 0
    bound = config.clock_offset_max_us
    return _py_rng(config.seed, date, session, device, "clock").randint(-bound, bound)


def clock_offsets(config: SceneConfig, date: str, session: int) -> dict[str, int]:
    """Ground-truth clock offsets (µs) of every device in a session."""
    devices = (*config.cameras, IMU_DEVICE, GPS_DEVICE, LIDAR_DEVICE)
    return {d: clock_offset_us(config, date, session, d) for d in devices}


def _phase_s(config: SceneConfig, date: str, session: int, device: str, rate: float) -> float:
    """Free-running devices start at a random point of their first period."""
    return _py_rng(config.seed, date, session, device, "phase").random() / rate


# ---------------------------------------------------------------------------------- trajectory


@dataclass(frozen=True)
class _Trajectory:
    """Ego motion in a street frame (u along, w across, z up), analytic so any instant is exact."""

    lat0: float
    lon0: float
    alt0: float
    theta0: float  # street direction, radians counter-clockwise from east
    v0: float
    a1: float
    w1: float
    p1: float
    a2: float
    w2: float
    p2: float
    a3: float
    w3: float
    p3: float
    half_width: float  # street half width, for the LiDAR's walls

    def state(self, t: np.ndarray) -> dict[str, np.ndarray]:
        s1, c1 = np.sin(self.w1 * t + self.p1), np.cos(self.w1 * t + self.p1)
        s2, c2 = np.sin(self.w2 * t + self.p2), np.cos(self.w2 * t + self.p2)
        s3, c3 = np.sin(self.w3 * t + self.p3), np.cos(self.w3 * t + self.p3)
        u = self.v0 * t + self.a1 * s1
        w = self.a2 * s2
        z = self.a3 * s3
        du = self.v0 + self.a1 * self.w1 * c1
        dw, dz = self.a2 * self.w2 * c2, self.a3 * self.w3 * c3
        ddu, ddw = -self.a1 * self.w1**2 * s1, -self.a2 * self.w2**2 * s2
        ddz = -self.a3 * self.w3**2 * s3
        psi = np.arctan2(dw, du)  # heading relative to the street
        yaw_rate = (du * ddw - dw * ddu) / (du**2 + dw**2)
        ct, st = math.cos(self.theta0), math.sin(self.theta0)
        east, north = u * ct - w * st, u * st + w * ct
        lat = self.lat0 + np.degrees(north / EARTH_RADIUS_M)
        lon = self.lon0 + np.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(self.lat0))))
        return {
            "u": u, "w": w, "psi": psi, "yaw_rate": yaw_rate,
            "east": east, "north": north, "up": z, "lat": lat, "lon": lon, "alt": self.alt0 + z,
            "speed": np.sqrt(du**2 + dw**2 + dz**2), "yaw_enu": self.theta0 + psi,
            # Specific force in the body frame (x forward, y left, z up), roll and pitch ignored.
            "ax": ddu * np.cos(psi) + ddw * np.sin(psi),
            "ay": -ddu * np.sin(psi) + ddw * np.cos(psi),
            "az": ddz + GRAVITY,
        }


@functools.lru_cache(maxsize=64)
def _trajectory(seed: int, date: str, session: int) -> _Trajectory:
    r = _py_rng(seed, date, session, "trajectory")
    return _Trajectory(
        lat0=48.10 + r.uniform(0, 0.08), lon0=11.50 + r.uniform(0, 0.12),
        alt0=r.uniform(500, 560), theta0=r.uniform(0, 2 * math.pi), v0=r.uniform(6, 14),
        a1=r.uniform(0.5, 2.0), w1=r.uniform(0.1, 0.3), p1=r.uniform(0, 2 * math.pi),
        a2=r.uniform(0.5, 2.0), w2=r.uniform(0.1, 0.4), p2=r.uniform(0, 2 * math.pi),
        a3=r.uniform(0.2, 1.0), w3=r.uniform(0.02, 0.08), p3=r.uniform(0, 2 * math.pi),
        half_width=r.uniform(7, 14),
    )


def _gps_truth(config: SceneConfig, date: str, session: int, true_us: int
               ) -> tuple[float, float, float]:
    t = (true_us - session_start_us(config, date, session)) / _US
    st = _trajectory(config.seed, date, session).state(np.array([t]))
    return (round(float(st["lat"][0]), 7), round(float(st["lon"][0]), 7),
            round(float(st["alt"][0]), 3))


# ----------------------------------------------------------------------------- scene sampling

_CAR_COLOURS = ((200, 30, 30), (30, 60, 170), (235, 235, 235), (160, 165, 170), (20, 90, 40),
                (230, 190, 20), (35, 35, 35))
_CLOTHES = ((200, 60, 60), (40, 120, 200), (240, 200, 40), (60, 160, 80), (120, 60, 160),
            (240, 240, 240), (30, 30, 30))
_SKIN = ((255, 220, 180), (225, 180, 140), (180, 130, 90), (120, 80, 50))
_SIGNS = (  # face, symbol
    ((200, 20, 20), (250, 250, 250)), ((20, 70, 190), (250, 250, 250)),
    ((210, 20, 20), (250, 250, 250)), ((250, 205, 0), (20, 20, 20)))


@dataclass(frozen=True)
class _Track:
    track_id: int
    cls: str
    variant: int
    width: int  # px of the object's canvas
    height: int
    x0: float  # left edge at t = 0, px
    speed: float  # px/s, wraps around the frame
    bottom: float  # px
    colours: tuple[tuple[int, int, int], ...]  # colour of mask value 1, 2, ...


@dataclass(frozen=True)
class _CameraScene:
    horizon: int
    sky_top: tuple[float, float, float]
    sky_bottom: tuple[float, float, float]
    road_far: tuple[float, float, float]
    road_near: tuple[float, float, float]
    vanish_x: float
    brightness: float  # the camera's exposure in this session; frames vary a little around it
    tracks: tuple[_Track, ...]


def _sample_track(r: random.Random, config: SceneConfig, horizon: int, track_id: int) -> _Track:
    w_img, h_img = config.width, config.height
    names = [c for c, _ in config.class_weights]
    cls = r.choices(names, weights=[w for _, w in config.class_weights])[0]
    depth = r.uniform(0.35, 1.0)  # 1 = nearest
    size = depth * r.uniform(0.85, 1.15)
    direction = r.choice((-1.0, 1.0))
    if cls == "car":
        width = size * 0.34 * w_img
        height = width * r.uniform(0.5, 0.62)
        speed = r.uniform(0.15, 0.5) * w_img
        colours = (r.choice(_CAR_COLOURS), (60, 75, 95), (20, 20, 20))
        variant = r.randrange(2)
    elif cls == "pedestrian":
        height = size * 0.42 * h_img
        width = height * r.uniform(0.34, 0.42)
        speed = r.uniform(0.02, 0.06) * w_img
        colours = (r.choice(_CLOTHES), r.choice(_SKIN), (40, 40, 60))
        variant = 0
    elif cls == "cyclist":
        height = size * 0.40 * h_img
        width = height * r.uniform(0.85, 1.0)
        speed = r.uniform(0.06, 0.18) * w_img
        colours = ((230, 120, 20), r.choice(_SKIN), (15, 15, 15), r.choice(_CLOTHES))
        variant = 0
    else:
        width = size * 0.09 * w_img
        height = width * r.uniform(2.2, 3.0)
        speed = r.uniform(0.03, 0.1) * w_img
        variant = r.randrange(len(_SIGNS))
        face, symbol = _SIGNS[variant]
        colours = ((130, 130, 135), face, symbol)
    width_px, height_px = max(2, round(width)), max(2, round(height))
    bottom = horizon + (0.1 + 0.9 * depth) * (h_img - horizon) + r.uniform(-2, 2)
    return _Track(track_id, cls, variant, width_px, height_px,
                  x0=r.uniform(0, w_img + width_px), speed=direction * speed, bottom=bottom,
                  colours=colours)


def _sample_camera_scene(config: SceneConfig, *key: object) -> _CameraScene:
    r = _py_rng(*key, "scene")
    h = config.height
    horizon = round(h * r.uniform(0.35, 0.55))
    sky_top = (r.uniform(60, 110), r.uniform(110, 160), r.uniform(190, 240))
    sky_bottom = (r.uniform(170, 215), r.uniform(195, 230), r.uniform(220, 250))
    grey = r.uniform(70, 110)
    road_far = (grey + 15, grey + 15, grey + 18)
    road_near = (grey - 20, grey - 20, grey - 16)
    lo, hi = config.objects_per_frame
    n_tracks = r.randint(lo, hi)
    tracks = tuple(_sample_track(r, config, horizon, i) for i in range(n_tracks))
    return _CameraScene(horizon, sky_top, sky_bottom, road_far, road_near,
                        vanish_x=config.width * r.uniform(0.35, 0.65),
                        brightness=r.uniform(*config.brightness_range), tracks=tracks)


@functools.lru_cache(maxsize=256)
def _camera_scene(config: SceneConfig, date: str, session: int, camera: str) -> _CameraScene:
    return _sample_camera_scene(config, config.seed, date, session, camera)


@functools.lru_cache(maxsize=64)
def _background(scene: _CameraScene, width: int, height: int) -> np.ndarray:
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    cols = np.arange(width, dtype=np.float32)[None, :, None]
    hz = np.float32(scene.horizon)
    t_sky = np.clip(rows / max(hz, np.float32(1)), 0, 1)
    t_road = np.clip((rows - hz) / max(np.float32(height) - hz, np.float32(1)), 0, 1)
    sky = np.array(scene.sky_top, np.float32) * (1 - t_sky) \
        + np.array(scene.sky_bottom, np.float32) * t_sky
    road = np.array(scene.road_far, np.float32) * (1 - t_road) \
        + np.array(scene.road_near, np.float32) * t_road
    img = np.where(rows < hz, sky, road) * np.ones((1, width, 1), np.float32)
    vx = np.float32(scene.vanish_x)
    below = rows[..., 0] >= hz
    t2 = t_road[..., 0]
    half = np.float32(0.6) + np.float32(2.0) * t2
    for x_bottom, dashed, colour in ((-0.2 * width, False, (200, 200, 190)),
                                     (1.2 * width, False, (200, 200, 190)),
                                     (0.5 * width, True, (235, 235, 225))):
        x_line = vx + (np.float32(x_bottom) - vx) * t2
        on = (np.abs(cols[..., 0] - x_line) <= half) & below
        if dashed:
            on &= (np.floor(np.float32(3.0) / (t2 + np.float32(0.08))) % 2) == 0
        img[on] = colour
    out = np.rint(np.clip(img, 0, 255)).astype(np.uint8)
    out.setflags(write=False)
    return out


def _box_xy(w: int, h: int, x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """A rectangle clamped to a w×h canvas with x0 <= x1 and y0 <= y1, as PIL requires (on a
    canvas of a few pixels the fractions that place a shape's parts can cross)."""
    x0, x1 = min(max(x0, 0), w - 1), min(max(x1, 0), w - 1)
    y0, y1 = min(max(y0, 0), h - 1), min(max(y1, 0), h - 1)
    return [x0, y0, max(x0, x1), max(y0, y1)]


@functools.lru_cache(maxsize=4096)
def _object_mask(track: _Track) -> tuple[np.ndarray, np.ndarray]:
    """The object's canvas with 0 = empty and k = drawn in ``colours[k - 1]``, and its colours."""
    w, h = track.width, track.height
    canvas = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(canvas)

    def rect(x0: float, y0: float, x1: float, y1: float, fill: int) -> None:
        d.rectangle(_box_xy(w, h, x0, y0, x1, y1), fill=fill)

    def ellipse(x0: float, y0: float, x1: float, y1: float, **kw: object) -> None:
        d.ellipse(_box_xy(w, h, x0, y0, x1, y1), **kw)

    if track.cls == "tiny":
        rect(0, 0, w - 1, h - 1, fill=1)
    elif track.cls == "car":
        if track.variant == 0:
            d.polygon([(0.18 * w, 0.40 * h), (0.30 * w, 0.04 * h), (0.72 * w, 0.04 * h),
                       (0.86 * w, 0.40 * h)], fill=1)
            d.polygon([(0.26 * w, 0.38 * h), (0.34 * w, 0.12 * h), (0.68 * w, 0.12 * h),
                       (0.78 * w, 0.38 * h)], fill=2)
        else:
            rect(0.04 * w, 0.04 * h, 0.96 * w, 0.42 * h, fill=1)
            rect(0.10 * w, 0.10 * h, 0.90 * w, 0.36 * h, fill=2)
        rect(0, 0.38 * h, w - 1, 0.82 * h, fill=1)
        r = 0.18 * h
        for cx in (0.24 * w, 0.76 * w):
            ellipse(cx - r, 0.80 * h - r, cx + r, 0.80 * h + r, fill=3)
    elif track.cls == "pedestrian":
        rect(0.18 * w, 0.17 * h, 0.82 * w, 0.55 * h, fill=1)
        rect(0, 0.20 * h, 0.16 * w, 0.50 * h, fill=1)
        rect(0.84 * w, 0.20 * h, w - 1, 0.50 * h, fill=1)
        ellipse(0.28 * w, 0, 0.72 * w, 0.18 * h, fill=2)
        rect(0.22 * w, 0.55 * h, 0.47 * w, h - 1, fill=3)
        rect(0.53 * w, 0.55 * h, 0.78 * w, h - 1, fill=3)
    elif track.cls == "cyclist":
        dia = min(0.42 * w, 0.42 * h)
        tyre = max(1, round(dia * 0.12))
        left = (dia / 2, h - 1 - dia / 2)
        right = (w - 1 - dia / 2, h - 1 - dia / 2)
        d.line([left, (0.45 * w, 0.52 * h), right], fill=1, width=max(1, round(0.04 * h)))
        for cx, cy in (left, right):
            ellipse(cx - dia / 2, cy - dia / 2, cx + dia / 2, cy + dia / 2, outline=3,
                    width=tyre)
        d.polygon([(0.35 * w, 0.52 * h), (0.45 * w, 0.15 * h), (0.62 * w, 0.18 * h),
                   (0.55 * w, 0.52 * h)], fill=4)
        ellipse(0.45 * w, 0, 0.65 * w, 0.17 * h, fill=2)
    else:  # traffic sign: a face on a pole
        rect(0.42 * w, 0.5 * w, 0.58 * w, h - 1, fill=1)
        s = w - 1
        if track.variant in (0, 1):
            if track.variant == 0:
                k = 0.29 * s
                d.polygon([(k, 0), (s - k, 0), (s, k), (s, s - k), (s - k, s), (k, s), (0, s - k),
                           (0, k)], fill=2)
            else:
                ellipse(0, 0, s, s, fill=2)
            rect(0.2 * s, 0.42 * s, 0.8 * s, 0.58 * s, fill=3)
        elif track.variant == 2:
            d.polygon([(0, 0.1 * s), (s, 0.1 * s), (0.5 * s, s)], fill=2)
            d.polygon([(0.25 * s, 0.25 * s), (0.75 * s, 0.25 * s), (0.5 * s, 0.75 * s)], fill=3)
        else:
            d.polygon([(0.5 * s, 0), (s, 0.5 * s), (0.5 * s, s), (0, 0.5 * s)], fill=2)
            rect(0.4 * s, 0.4 * s, 0.6 * s, 0.6 * s, fill=3)
    mask = np.asarray(canvas, dtype=np.uint8).copy()
    mask.setflags(write=False)
    palette = np.array(track.colours, dtype=np.uint8)
    return mask, palette


# ------------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class _FrameParams:
    t: float  # seconds since the session start (reference clock)
    brightness: float
    blur_radius: float  # 0 = sharp
    noise_seed: int
    jitter_us: int


@dataclass(frozen=True)
class _Placed:
    track: _Track
    x: int
    y: int
    label: str
    unclipped_label: bool = False  # label the object's full extent even beyond the frame


def _frame_params(config: SceneConfig, scene: _CameraScene, t: float, *key: object
                  ) -> _FrameParams:
    r = _py_rng(*key, "frame")
    lo, hi = config.brightness_range
    brightness = min(hi, max(lo, scene.brightness * r.uniform(0.98, 1.02)))
    blur = r.uniform(*config.blur_radius) if r.random() < config.blur_probability else 0.0
    noise_seed = r.getrandbits(63)
    jitter = round(r.gauss(0.0, config.clock_jitter_us)) if config.clock_jitter_us else 0
    return _FrameParams(t=t, brightness=brightness, blur_radius=blur, noise_seed=noise_seed,
                        jitter_us=jitter)


def _placements(scene: _CameraScene, config: SceneConfig, t: float) -> list[_Placed]:
    placed = []
    for track in scene.tracks:
        span = config.width + track.width
        x = (track.x0 + track.speed * t) % span - track.width
        placed.append(_Placed(track, round(x), round(track.bottom - track.height), track.cls))
    # Farther objects (higher on the road) first, so nearer ones occlude them.
    placed.sort(key=lambda p: (p.track.bottom, p.track.track_id))
    return placed


def _render(config: SceneConfig, scene: _CameraScene, placed: list[_Placed],
            planted: list[_Placed], params: _FrameParams) -> Scene:
    w_img, h_img = config.width, config.height
    arr = _background(scene, w_img, h_img).copy()
    inst = np.zeros((h_img, w_img), dtype=np.int32)
    drawn: list[tuple[_Placed, Box, Box, int]] = []
    palettes, masks = [], []
    for item, is_planted in [(p, False) for p in placed] + [(p, True) for p in planted]:
        mask, palette = _object_mask(item.track)
        mh, mw = mask.shape
        x0, y0 = max(item.x, 0), max(item.y, 0)
        x1, y1 = min(item.x + mw, w_img), min(item.y + mh, h_img)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = mask[y0 - item.y:y1 - item.y, x0 - item.x:x1 - item.x]
        sel = sub > 0
        rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
        if rows.size == 0:
            continue
        box = (float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1),
               float(y0 + rows[-1] + 1))
        if not is_planted and min(box[2] - box[0], box[3] - box[1]) < config.min_box_px:
            continue  # mostly out of view: the camera would not see it either
        region = arr[y0:y1, x0:x1]
        region[sel] = palette[sub[sel] - 1]
        inst[y0:y1, x0:x1][sel] = len(drawn) + 1
        label_box = box
        if item.unclipped_label:
            full_rows = np.flatnonzero((mask > 0).any(axis=1))
            full_cols = np.flatnonzero((mask > 0).any(axis=0))
            label_box = (float(item.x + full_cols[0]), float(item.y + full_rows[0]),
                         float(item.x + full_cols[-1] + 1), float(item.y + full_rows[-1] + 1))
        drawn.append((item, box, label_box, int(sel.sum())))
        palettes.append(tuple(tuple(int(v) for v in c) for c in palette))
        masks.append((mask, item.x, item.y))
    visible = np.bincount(inst.ravel(), minlength=len(drawn) + 1)
    objects = tuple(
        SceneObject(class_name=item.track.cls if item.track.cls != "tiny" else item.label,
                    box=box, occluded=round(1.0 - visible[i + 1] / total, 4),
                    track_id=item.track.track_id, label=item.label, label_box=label_box)
        for i, (item, box, label_box, total) in enumerate(drawn)
    )
    # Integer maths from here on: fast, and the same result on every CPU.
    gain = round(params.brightness * 256)
    if gain != 256 or config.noise_std > 0:
        work = arr.astype(np.int32)
        if gain != 256:
            work = (work * gain + 128) >> 8
        if config.noise_std > 0:
            noise = np.frombuffer(np.random.default_rng(params.noise_seed).bytes(work.size),
                                  np.uint8).reshape(work.shape)
            work += _noise_lut(config.noise_std)[noise]
        arr = np.clip(work, 0, 255).astype(np.uint8)
    image = Image.fromarray(arr, "RGB")
    if params.blur_radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(params.blur_radius))
    return Scene(image=image, instance_map=inst, objects=objects, palettes=tuple(palettes),
                 masks=tuple(masks))


@functools.lru_cache(maxsize=16)
def _noise_lut(std: float) -> np.ndarray:
    """Gaussian noise levels for the 256 values of a random byte (equal-probability quantiles):
    a byte per channel costs a fraction of a float normal draw."""
    dist = NormalDist(0.0, std)
    return np.array([round(dist.inv_cdf((i + 0.5) / 256)) for i in range(256)], dtype=np.int32)


def _encode(image: Image.Image, fmt: str, **extra: object) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL,
                   compress_type=PNG_COMPRESS_TYPE, optimize=False, **extra)
    else:
        quality = extra.pop("quality", JPEG_QUALITY)
        image.save(buf, format="JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING,
                   optimize=False, progressive=False, **extra)
    return buf.getvalue()


# --------------------------------------------------------------------------------- defect plan

Slot = tuple[int, int, int]  # session, camera index, frame index


@functools.lru_cache(maxsize=32)
def defect_plan(config: SceneConfig, date: str) -> dict[Slot, tuple[DefectKind, int]]:
    """Which slot carries which defect, and its ordinal among defects of that kind."""
    wanted = [(kind, n) for kind, count in config.defects.counts().items() for n in range(count)]
    slots = [(s, c, k) for s in range(config.sessions_per_day) for c in range(len(config.cameras))
             for k in range(config.frames_per_session)]
    chosen = _py_rng(config.seed, date, "defects").sample(slots, len(wanted))
    return dict(zip(chosen, wanted, strict=True))


def _planted_objects(config: SceneConfig, kind: DefectKind | None, key: tuple[object, ...]
                     ) -> list[_Placed]:
    if kind not in (DefectKind.TINY_BOX, DefectKind.MISLABELED_BOX, DefectKind.BOX_OUT_OF_BOUNDS):
        return []
    r = _py_rng(*key, "planted")
    w_img, h_img = config.width, config.height
    if kind == DefectKind.TINY_BOX:
        side_w, side_h = r.randint(2, TINY_BOX_MAX_PX), r.randint(2, TINY_BOX_MAX_PX)
        cls = r.choice(("pedestrian", "traffic_sign"))
        colour = (r.choice(_CLOTHES),) if cls == "pedestrian" else (_SIGNS[0][0],)
        track = _Track(-1, "tiny", 0, side_w, side_h, 0.0, 0.0, 0.0, colour)
        return [_Placed(track, r.randrange(w_img - side_w), r.randrange(h_img - side_h), cls)]
    track = _sample_track(r, config, round(h_img * 0.45), -1)
    tw, th = min(track.width, w_img - 1), min(track.height, h_img - 1)
    track = _Track(-1, track.cls, track.variant, max(tw, config.min_box_px),
                   max(th, config.min_box_px), 0.0, 0.0, 0.0, track.colours)
    if kind == DefectKind.MISLABELED_BOX:
        wrong = r.choice([c for c in CLASSES if c != track.cls])
        x = r.randrange(max(1, w_img - track.width + 1))
        y = r.randrange(max(1, h_img - track.height + 1))
        return [_Placed(track, x, y, wrong)]
    # Out of bounds: 30-45 % of the object hangs over the right or bottom edge.
    if r.random() < 0.5:
        x = w_img - round(track.width * r.uniform(0.55, 0.7))
        y = r.randrange(max(1, h_img - track.height + 1))
    else:
        x = r.randrange(max(1, w_img - track.width + 1))
        y = h_img - round(track.height * r.uniform(0.55, 0.7))
    return [_Placed(track, x, y, track.cls, unclipped_label=True)]


# ---------------------------------------------------------------------------- frames of a slot


def _slot_key(config: SceneConfig, date: str, session: int, camera: str, index: int
              ) -> tuple[object, ...]:
    return (config.seed, date, session, camera, index)


def _camera_index(config: SceneConfig, camera: str) -> int:
    try:
        return config.cameras.index(camera)
    except ValueError as exc:
        raise ValueError(f"camera {camera!r} is not one of {config.cameras}") from exc


def _check_slot(config: SceneConfig, session: int, index: int) -> None:
    if not 0 <= session < config.sessions_per_day or not 0 <= index < config.frames_per_session:
        raise ValueError(f"slot (session {session}, frame {index}) is outside the day: "
                         f"{config.sessions_per_day} sessions x {config.frames_per_session} frames")


@dataclass(frozen=True)
class _SlotContext:
    kind: DefectKind | None
    ordinal: int  # among planted defects of that kind: picks variants in turn
    key: tuple[object, ...]
    scene: _CameraScene
    params: _FrameParams


def _slot_context(config: SceneConfig, date: str, session: int, camera: str, index: int
                  ) -> _SlotContext:
    _check_slot(config, session, index)
    cam = _camera_index(config, camera)
    kind, ordinal = defect_plan(config, date).get((session, cam, index), (None, 0))
    key = _slot_key(config, date, session, camera, index)
    scene = _camera_scene(config, date, session, camera)
    t = _phase_s(config, date, session, camera, config.camera_hz) + index / config.camera_hz
    return _SlotContext(kind, ordinal, key, scene, _frame_params(config, scene, t, *key))


def render_scene(config: SceneConfig, date: str, session: int, camera: str, index: int) -> Scene:
    """The displayed pixels of one frame slot, before encoding, with its objects.

    Includes the slot's pixel-level defect, if any (dark, blurry, planted boxes); format-level
    defects (truncation, CMYK, EXIF rotation, ...) are applied when encoding.
    """
    return _render_slot(config, _slot_context(config, date, session, camera, index))


def _render_slot(config: SceneConfig, ctx: _SlotContext) -> Scene:
    params = ctx.params
    if ctx.kind == DefectKind.DARK:
        params = dataclasses.replace(params, brightness=DARK_BRIGHTNESS)
    elif ctx.kind == DefectKind.BLURRY:
        params = dataclasses.replace(params, blur_radius=_blurry_radius(config))
    return _render(config, ctx.scene, _placements(ctx.scene, config, params.t),
                   _planted_objects(config, ctx.kind, ctx.key), params)


def _blurry_radius(config: SceneConfig) -> float:
    return max(3.0, 0.025 * max(config.width, config.height))


def synthetic_frame(config: SceneConfig, date: str, session: int, camera: str, index: int
                    ) -> SyntheticFrame:
    """Regenerate one frame slot alone: the same file :func:`generate_day` yields for it."""
    return next(_slot_files(config, date, session, camera, index))


def _frame(config: SceneConfig, date: str, session: int, camera: str, index: int, *,
           path: str, data: bytes, fmt: str, size: tuple[int, int], device_us: int, true_us: int,
           gps: tuple[float, float, float], objects: tuple[SceneObject, ...],
           defects: tuple[PlantedDefect, ...] = ()) -> SyntheticFrame:
    return SyntheticFrame(
        path=path, data=data, sha256=hashlib.sha256(data).hexdigest(), format=fmt,
        width=size[0], height=size[1], timestamp_us=device_us, true_time_us=true_us,
        session=session, session_id=session_id(date, session), device_id=camera, index=index,
        gps=gps,
        objects=objects, defects=defects,
        source_uri=f"synthetic://seed={config.seed}/{date}/{path}",
    )


def _slot_files(config: SceneConfig, date: str, session: int, camera: str, index: int
                ) -> Iterator[SyntheticFrame]:
    """The slot's frame file, then any extra file planted next to it."""
    ctx = _slot_context(config, date, session, camera, index)
    rendered = _render_slot(config, ctx)
    kind, ordinal = ctx.kind, ctx.ordinal
    true_us = session_start_us(config, date, session) + round(ctx.params.t * _US)
    device_us = true_us + clock_offset_us(config, date, session, camera) + ctx.params.jitter_us
    gps = _gps_truth(config, date, session, true_us)
    sid = session_id(date, session)
    folder = f"images/{sid}/{camera}"
    image = rendered.image
    size = image.size
    fmt = config.image_format
    data: bytes
    params_out: dict[str, object] = {}
    detail = ""
    box_index = None
    if kind == DefectKind.ZERO_BYTE:
        data, fmt, detail = b"", "empty", "file of zero bytes"
    elif kind in (DefectKind.TRUNCATED_PNG, DefectKind.TRUNCATED_JPEG):
        fmt = "png" if kind == DefectKind.TRUNCATED_PNG else "jpeg"
        full = _encode(image, fmt)
        data = full[: len(full) // 2]
        params_out = {"full_bytes": len(full), "kept_bytes": len(data)}
        detail = f"{fmt} cut after {len(data)} of {len(full)} bytes"
    elif kind == DefectKind.CMYK_JPEG:
        data, fmt = _encode(image.convert("CMYK"), "jpeg"), "jpeg"
        params_out, detail = {"mode": "CMYK"}, "JPEG in CMYK"
    elif kind == DefectKind.PNG_16BIT:
        grey16 = np.asarray(image.convert("L"), dtype=np.uint16) * np.uint16(257)
        data, fmt = _encode(Image.fromarray(grey16), "png"), "png"
        params_out, detail = {"mode": "I;16", "bit_depth": 16}, "16-bit grayscale PNG"
    elif kind == DefectKind.PALETTE_PNG:
        quantised = image.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        data, fmt = _encode(quantised, "png"), "png"
        params_out, detail = {"mode": "P", "colors": 64}, "palette PNG, 64 colours"
    elif kind == DefectKind.RGBA_PNG:
        data, fmt = _encode(image.convert("RGBA"), "png"), "png"
        params_out, detail = {"mode": "RGBA"}, "opaque RGBA PNG"
    elif kind == DefectKind.EXIF_ROTATED:
        orientation = 6 if ordinal % 2 == 0 else 8
        # Stored sideways so that applying the orientation shows `image`: boxes stay as displayed.
        stored = image.transpose(Image.Transpose.ROTATE_90 if orientation == 6
                                 else Image.Transpose.ROTATE_270)
        exif = Image.Exif()
        exif[0x0112] = orientation
        data, fmt = _encode(stored, "jpeg", exif=exif.tobytes()), "jpeg"
        params_out = {"orientation": orientation, "stored_size": list(stored.size)}
        detail = f"JPEG stored sideways with EXIF orientation {orientation}"
    else:
        data = _encode(image, fmt)
        if kind == DefectKind.DARK:
            params_out, detail = {"brightness": DARK_BRIGHTNESS}, "underexposed frame"
        elif kind == DefectKind.BLURRY:
            params_out = {"radius": _blurry_radius(config)}
            detail = "Gaussian blur over the whole frame"
        elif kind in (DefectKind.TINY_BOX, DefectKind.MISLABELED_BOX,
                      DefectKind.BOX_OUT_OF_BOUNDS):
            box_index = len(rendered.objects) - 1
            obj = rendered.objects[box_index]
            if kind == DefectKind.TINY_BOX:
                params_out = {"box": list(obj.box)}
                detail = f"{obj.label} box of {obj.box[2] - obj.box[0]:g}x" \
                         f"{obj.box[3] - obj.box[1]:g} px"
            elif kind == DefectKind.MISLABELED_BOX:
                params_out = {"true_class": obj.class_name, "labelled_class": obj.label}
                detail = f"a {obj.class_name} labelled {obj.label}"
            else:
                params_out = {"labelled_box": list(obj.label_box), "visible_box": list(obj.box)}
                detail = f"box {obj.label_box} reaches beyond the {size[0]}x{size[1]} frame"
    path = f"{folder}/{device_us}.{EXT[fmt] if fmt in EXT else config.ext}"
    defects: tuple[PlantedDefect, ...] = ()
    if kind is not None and kind not in EXTRA_FILE_DEFECTS:
        defects = (PlantedDefect(kind, path, sid, camera, box_index=box_index, detail=detail,
                                 params=params_out),)
    main = _frame(config, date, session, camera, index, path=path, data=data, fmt=fmt, size=size,
                  device_us=device_us, true_us=true_us, gps=gps, objects=rendered.objects,
                  defects=defects)
    yield main
    if kind not in EXTRA_FILE_DEFECTS:
        return
    # An extra file sits 1 µs after its source in the same folder, as a rig's double write would.
    extra_us = device_us + 1
    common = dict(device_us=extra_us, true_us=true_us + 1, gps=gps)
    if kind == DefectKind.NOT_AN_IMAGE:
        text = (f"capture-rig status log\nsession={sid}\ncamera={camera}\n"
                f"frame={index}\nstatus=ok\n").encode()
        extra_path = f"{folder}/{extra_us}.{config.ext}"
        defect = PlantedDefect(kind, extra_path, sid, camera,
                               detail=f"UTF-8 text under a .{config.ext} name")
        yield _frame(config, date, session, camera, index, path=extra_path, data=text,
                     fmt="text", size=(0, 0), objects=(), defects=(defect,), **common)
        return
    if kind == DefectKind.EXACT_DUPLICATE:
        extra_path = f"{folder}/{extra_us}.{main.ext}"
        defect = PlantedDefect(kind, extra_path, sid, camera, source_path=path,
                               detail="byte-identical copy")
        yield _frame(config, date, session, camera, index, path=extra_path, data=data, fmt=fmt,
                     size=size, objects=rendered.objects, defects=(defect,), **common)
        return
    variant = NEAR_DUPLICATE_VARIANTS[ordinal % len(NEAR_DUPLICATE_VARIANTS)]
    objects = rendered.objects
    if variant == "reencode":
        near_fmt = "jpeg"
        near = _encode(image, "jpeg", quality=NEAR_DUPLICATE_JPEG_QUALITY)
        near_size = size
        near_params: dict[str, object] = {"variant": variant,
                                          "quality": NEAR_DUPLICATE_JPEG_QUALITY}
    elif variant == "resize":
        near_fmt = config.image_format
        near_size = (round(size[0] * NEAR_DUPLICATE_SCALE), round(size[1] * NEAR_DUPLICATE_SCALE))
        near = _encode(image.resize(near_size, Image.Resampling.BILINEAR), near_fmt)
        sx, sy = near_size[0] / size[0], near_size[1] / size[1]
        objects = tuple(_scaled(o, sx, sy) for o in objects)
        near_params = {"variant": variant, "size": list(near_size)}
    else:
        near_fmt = config.image_format
        dx, dy = max(1, round(0.03 * size[0])), max(1, round(0.03 * size[1]))
        near_size = (size[0] - dx, size[1] - dy)
        near = _encode(image.crop((dx, dy, size[0], size[1])), near_fmt)
        objects = _cropped(rendered, dx, dy, size)
        near_params = {"variant": variant, "crop": [dx, dy, size[0], size[1]]}
    extra_path = f"{folder}/{extra_us}.{EXT[near_fmt]}"
    defect = PlantedDefect(kind, extra_path, sid, camera, source_path=path,
                           detail=f"near duplicate ({variant})", params=near_params)
    yield _frame(config, date, session, camera, index, path=extra_path, data=near, fmt=near_fmt,
                 size=near_size, objects=objects, defects=(defect,), **common)


def _scaled(obj: SceneObject, sx: float, sy: float) -> SceneObject:
    def scale(b: Box) -> Box:
        return (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)
    return SceneObject(obj.class_name, scale(obj.box), obj.occluded, obj.track_id, obj.label,
                       scale(obj.label_box))


def _cropped(scene: Scene, dx: int, dy: int, size: tuple[int, int]) -> tuple[SceneObject, ...]:
    """Objects of a frame cropped to (dx, dy, W, H): boxes recomputed from the objects' pixels."""
    out = []
    for obj, (mask, x, y) in zip(scene.objects, scene.masks, strict=True):
        mh, mw = mask.shape
        x0, y0 = max(x, dx), max(y, dy)
        x1, y1 = min(x + mw, size[0]), min(y + mh, size[1])
        if x1 <= x0 or y1 <= y0:
            continue
        sel = mask[y0 - y:y1 - y, x0 - x:x1 - x] > 0
        rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
        if rows.size == 0:
            continue
        box = (float(x0 + cols[0] - dx), float(y0 + rows[0] - dy), float(x0 + cols[-1] + 1 - dx),
               float(y0 + rows[-1] + 1 - dy))
        label_box = box if obj.label_box == obj.box else (
            obj.label_box[0] - dx, obj.label_box[1] - dy, obj.label_box[2] - dx,
            obj.label_box[3] - dy)
        out.append(SceneObject(obj.class_name, box, obj.occluded, obj.track_id, obj.label,
                               label_box))
    return tuple(out)


# ------------------------------------------------------------------------------------ the day


def _slots(config: SceneConfig) -> Iterator[tuple[int, str, int]]:
    for s in range(config.sessions_per_day):
        for camera in config.cameras:
            for k in range(config.frames_per_session):
                yield s, camera, k


def generate_day(config: SceneConfig, date: str, *, workers: int = 1
                 ) -> Iterator[SyntheticFrame]:
    """Every file of a day's ``images/`` folder, one at a time, ordered by (session, camera, index).

    Extra planted files follow the frame they sit next to. With ``workers > 1`` frames render in a
    thread pool, a bounded window ahead of the consumer; the output is the same.
    """
    _day_start_us(date)
    if workers <= 1:
        for slot in _slots(config):
            yield from _slot_files(config, date, *slot)
        return
    window = 4 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for slot in _slots(config):
            pending.append(pool.submit(lambda s=slot: list(_slot_files(config, date, *s))))
            if len(pending) >= window:
                yield from pending.pop(0).result()
        for future in pending:
            yield from future.result()


# ---------------------------------------------------------------------------------- sensors


@dataclass(frozen=True)
class SensorSession:
    """One session's sensor log in the generic format (see ``sensor_logs``) and its sweeps.

    ``table`` holds every IMU, GPS and LiDAR reading with ``timestamp`` in device-clock epoch µs
    (its schema metadata ``timestamp_unit`` says ``us``), grouped by sensor in time order. LiDAR
    rows name their sweep in ``file`` (relative to the log's folder); :meth:`sweeps` renders them on
    demand, so a session never holds all its point clouds.
    """

    config: SceneConfig
    date: str
    session: int
    session_id: str
    table: pa.Table

    def sweeps(self) -> Iterator[tuple[str, bytes]]:
        """(file as referenced by the log, ``.npy`` bytes) for every LiDAR sweep, in order."""
        lidar = self.table.filter(pc.equal(self.table["sensor"], "lidar"))
        for i, name in enumerate(lidar.column("file").to_pylist()):
            yield name, lidar_sweep_npy(self.config, self.date, self.session, i)


def _sensor_times(config: SceneConfig, date: str, session: int, device: str, rate: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seconds since session start, reference µs, device-clock µs) of a device's readings."""
    n = int(math.floor(config.session_seconds * rate))
    start = session_start_us(config, date, session)
    t = _phase_s(config, date, session, device, rate) + np.arange(n) / rate
    true_us = start + np.rint(t * _US).astype(np.int64)
    device_us = true_us + clock_offset_us(config, date, session, device)
    if device != GPS_DEVICE and config.clock_jitter_us > 0:
        jitter = _np_rng(config.seed, date, session, device, "jitter").normal(
            0.0, config.clock_jitter_us, n)
        device_us = device_us + np.rint(jitter).astype(np.int64)
    return (true_us - start) / _US, true_us, device_us


def _lidar_file(sid: str, device_us: int) -> str:
    return f"lidar/{sid}_{LIDAR_DEVICE}_{device_us}.npy"


_SENSOR_VALUE_COLUMNS = ("ax", "ay", "az", "gx", "gy", "gz", "lat", "lon", "alt", "speed",
                         "heading", "pose_x", "pose_y", "pose_z", "pose_qw", "pose_qx", "pose_qy",
                         "pose_qz", "n_points")


def sensor_session(config: SceneConfig, date: str, session: int) -> SensorSession:
    """The sensor log of one session (regenerated alone, like a frame)."""
    if not 0 <= session < config.sessions_per_day:
        raise ValueError(f"session {session} is outside 0..{config.sessions_per_day - 1}")
    sid = session_id(date, session)
    traj = _trajectory(config.seed, date, session)
    parts = []

    def block(sensor: str, device: str, device_us: np.ndarray, values: dict[str, np.ndarray],
              files: list[str] | None = None) -> pa.Table:
        n = len(device_us)
        cols: dict[str, pa.Array] = {
            "timestamp": pa.array(device_us, pa.int64()),
            "sensor": pa.array([sensor] * n, pa.string()),
            "device_id": pa.array([device] * n, pa.string()),
            "session_id": pa.array([sid] * n, pa.string()),
            "firmware": pa.array([FIRMWARE[device]] * n, pa.string()),
            "file": pa.array(files if files is not None else [None] * n, pa.string()),
        }
        for name in _SENSOR_VALUE_COLUMNS:
            cols[name] = pa.array(values[name], pa.float64()) if name in values \
                else pa.nulls(n, pa.float64())
        return pa.table(cols)

    t, _, dev = _sensor_times(config, date, session, IMU_DEVICE, config.imu_hz)
    st = traj.state(t)
    r = _np_rng(config.seed, date, session, IMU_DEVICE, "noise")
    bias_a, bias_g = r.normal(0, 0.05, 3), r.normal(0, 0.002, 3)
    noise_a, noise_g = r.normal(0, 0.02, (3, len(t))), r.normal(0, 0.001, (3, len(t)))
    imu = {
        "ax": st["ax"] + bias_a[0] + noise_a[0], "ay": st["ay"] + bias_a[1] + noise_a[1],
        "az": st["az"] + bias_a[2] + noise_a[2], "gx": bias_g[0] + noise_g[0],
        "gy": bias_g[1] + noise_g[1], "gz": st["yaw_rate"] + bias_g[2] + noise_g[2],
    }
    # Quantised to the sensor's resolution (16-bit IMU, 1 cm GPS): realistic, and it makes the
    # stored values independent of last-bit differences between platforms' maths libraries.
    parts.append(block("imu", IMU_DEVICE, dev, {
        k: np.round(v, 4 if k.startswith("a") else 5) for k, v in imu.items()}))

    t, _, dev = _sensor_times(config, date, session, GPS_DEVICE, config.gps_hz)
    st = traj.state(t)
    r = _np_rng(config.seed, date, session, GPS_DEVICE, "noise")
    pos_noise = r.normal(0, 0.03, (3, len(t)))
    speed_noise = r.normal(0, 0.02, len(t))
    lat_m = math.radians(1) * EARTH_RADIUS_M
    lon_m = lat_m * math.cos(math.radians(traj.lat0))
    parts.append(block("gps", GPS_DEVICE, dev, {
        "lat": np.round(st["lat"] + pos_noise[0] / lat_m, 7),
        "lon": np.round(st["lon"] + pos_noise[1] / lon_m, 7),
        "alt": np.round(st["alt"] + pos_noise[2], 3),
        "speed": np.round(st["speed"] + speed_noise, 3),
        "heading": np.round(np.degrees(np.pi / 2 - st["yaw_enu"]) % 360.0, 3),
    }))

    t, _, dev = _sensor_times(config, date, session, LIDAR_DEVICE, config.lidar_hz)
    st = traj.state(t)
    yaw = st["yaw_enu"]
    parts.append(block("lidar", LIDAR_DEVICE, dev, {
        "pose_x": np.round(st["east"], 3), "pose_y": np.round(st["north"], 3),
        "pose_z": np.round(st["up"], 3), "pose_qw": np.round(np.cos(yaw / 2), 6),
        "pose_qx": np.zeros(len(t)), "pose_qy": np.zeros(len(t)),
        "pose_qz": np.round(np.sin(yaw / 2), 6),
        "n_points": np.full(len(t), float(config.lidar_points)),
    }, files=[_lidar_file(sid, int(d)) for d in dev]))
    table = pa.concat_tables(parts).replace_schema_metadata({UNIT_METADATA_KEY: b"us"})
    return SensorSession(config, date, session, sid, table)


def generate_sensor_records(config: SceneConfig, date: str) -> Iterator[SensorSession]:
    """The day's sensor logs, one session at a time (bounded memory)."""
    for s in range(config.sessions_per_day):
        yield sensor_session(config, date, s)


@dataclass(frozen=True)
class _LidarWorld:
    half_width: float
    posts: np.ndarray  # K×3: u, w, radius (street frame, m)


@functools.lru_cache(maxsize=64)
def _lidar_world(seed: int, date: str, session: int, length_m: float) -> _LidarWorld:
    traj = _trajectory(seed, date, session)
    r = _np_rng(seed, date, session, LIDAR_DEVICE, "world")
    k = 12
    u = r.uniform(-20.0, length_m + 60.0, k)
    side = np.where(r.random(k) < 0.5, -1.0, 1.0)
    w = side * r.uniform(2.5, traj.half_width - 1.0, k)
    return _LidarWorld(traj.half_width, np.stack([u, w, r.uniform(0.3, 1.5, k)], axis=1))


def lidar_sweep(config: SceneConfig, date: str, session: int, index: int) -> np.ndarray:
    """Point cloud of one sweep: N×4 float32 (x forward, y left, z up in m; intensity 0..1).

    Rays of a 32-beam scanner at 1.8 m hit the ground, the street's walls or posts; x, y, z are
    quantised to 1 mm and intensity to 1/255.
    """
    times, _, _ = _sensor_times(config, date, session, LIDAR_DEVICE, config.lidar_hz)
    if not 0 <= index < len(times):
        raise ValueError(f"sweep {index} is outside 0..{len(times) - 1}")
    traj = _trajectory(config.seed, date, session)
    st = traj.state(np.array([times[index]]))
    u_e, w_e, psi = float(st["u"][0]), float(st["w"][0]), float(st["psi"][0])
    world = _lidar_world(config.seed, date, session,
                         round(traj.v0 * config.session_seconds, 1))
    r = _np_rng(config.seed, date, session, LIDAR_DEVICE, index)
    m = 3 * config.lidar_points
    azimuth = r.uniform(0.0, 2 * np.pi, m)
    elevation = LIDAR_ELEVATIONS[r.integers(0, len(LIDAR_ELEVATIONS), m)]
    range_noise = r.normal(0.0, 0.02, m)
    intensity_noise = r.normal(0.0, 0.02, m)
    phi = psi + azimuth
    dir_u, dir_w = np.cos(phi), np.sin(phi)
    with np.errstate(divide="ignore", invalid="ignore"):
        wall = np.where(dir_w > 1e-9, (world.half_width - w_e) / dir_w,
                        np.where(dir_w < -1e-9, (-world.half_width - w_e) / dir_w, np.inf))
        ground = np.where(elevation < 0, SENSOR_HEIGHT_M / np.tan(-elevation), np.inf)
    post = np.full(m, np.inf)
    for pu, pw, radius in world.posts:
        rel_u, rel_w = pu - u_e, pw - w_e
        b = rel_u * dir_u + rel_w * dir_w
        disc = b * b - (rel_u * rel_u + rel_w * rel_w - radius * radius)
        hit = np.sqrt(np.maximum(disc, 0.0))
        d = np.where((disc >= 0) & (b - hit > 0), b - hit, np.inf)
        post = np.minimum(post, d)
    candidates = np.stack([ground, wall, post])
    surface = np.argmin(candidates, axis=0)
    distance = candidates[surface, np.arange(m)]
    keep = np.flatnonzero(distance < LIDAR_MAX_RANGE_M)[: config.lidar_points]
    d = distance[keep] + range_noise[keep]
    az, el = azimuth[keep], elevation[keep]
    reflectivity = np.array([0.15, 0.4, 0.7])[surface[keep]]
    intensity = np.clip(reflectivity * (1.0 - d / (2 * LIDAR_MAX_RANGE_M))
                        + intensity_noise[keep], 0.0, 1.0)
    points = np.stack([d * np.cos(az), d * np.sin(az), d * np.tan(el),
                       np.round(intensity * 255) / 255], axis=1)
    points[:, :3] = np.round(points[:, :3], 3)
    return points.astype(np.float32)


def lidar_sweep_npy(config: SceneConfig, date: str, session: int, index: int) -> bytes:
    """One sweep serialised as ``.npy`` bytes (what ``sensors/lidar/<file>`` holds)."""
    buf = io.BytesIO()
    np.save(buf, lidar_sweep(config, date, session, index), allow_pickle=False)
    return buf.getvalue()


# ------------------------------------------------------------------------------------- drops


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


def _coco_categories() -> list[dict[str, object]]:
    return [{"id": CATEGORY_IDS[c], "name": c,
             "supercategory": "infrastructure" if c == "traffic_sign" else "road_user"}
            for c in CLASSES]


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
    images: list[DropFile] = []
    coco_images: list[dict[str, object]] = []
    coco_annotations: list[dict[str, object]] = []
    defects: list[PlantedDefect] = []
    made: set[Path] = set()
    for frame in generate_day(config, date, workers=workers):
        target = root / frame.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(frame.data)
        defects.extend(frame.defects)
        images.append(DropFile(frame.path, frame.sha256, len(frame.data), frame.format,
                               frame.width, frame.height, frame.session_id, frame.device_id,
                               frame.timestamp_us, len(frame.objects),
                               tuple(str(d.kind) for d in frame.defects)))
        if frame.format == "text":
            continue  # never was an image: nobody labelled it
        image_id = len(coco_images) + 1
        coco_images.append({
            "id": image_id, "file_name": frame.path, "width": frame.width,
            "height": frame.height,
            "date_captured": frame.capture_time.isoformat().replace("+00:00", "Z"),
            "session_id": frame.session_id, "device_id": frame.device_id,
            "timestamp_us": frame.timestamp_us,
        })
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.label_box
            coco_annotations.append({
                "id": len(coco_annotations) + 1, "image_id": image_id,
                "category_id": CATEGORY_IDS[obj.label], "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0, "occluded": obj.occluded,
            })
    annotations_path = root / "annotations.json"
    annotations_path.write_text(json.dumps({
        "info": {"description": "dataops-cv synthetic capture drop", "version": "1",
                 "date_created": date, "seed": config.seed},
        "licenses": [], "images": coco_images, "annotations": coco_annotations,
        "categories": _coco_categories(),
    }, separators=(",", ":")))
    logs: list[Path] = []
    sweeps: list[Path] = []
    sensor_rows = 0
    offsets: dict[str, dict[str, int]] = {}
    sensors = root / "sensors"
    (sensors / "lidar").mkdir(parents=True, exist_ok=True)
    for sess in generate_sensor_records(config, date):
        logs.append(write_sensor_log(sess.table, sensors / f"{sess.session_id}.parquet"))
        sensor_rows += sess.table.num_rows
        offsets[sess.session_id] = clock_offsets(config, date, sess.session)
        for name, data in sess.sweeps():
            target = sensors / name
            target.write_bytes(data)
            sweeps.append(target)
    counts = {"images": len(images), "annotated_images": len(coco_images),
              "annotations": len(coco_annotations), "sensor_rows": sensor_rows,
              "lidar_sweeps": len(sweeps), "defects": len(defects)}
    return DropManifest(root, date, config, tuple(images), annotations_path, tuple(logs),
                        tuple(sweeps), tuple(defects), offsets, counts)


# ------------------------------------------------------------------------- legacy frame API


LEGACY_DEVICE_ID = "synthetic-cam-0"


@dataclass(frozen=True)
class Frame:
    data: bytes
    sha256: str
    width: int
    height: int
    capture_time: dt.datetime
    device_id: str
    source_uri: str
    boxes: tuple[tuple[str, float, float, float, float], ...]


@functools.lru_cache(maxsize=64)
def _legacy_config(seed: int, width: int, height: int) -> SceneConfig:
    return SceneConfig(seed=seed, sessions_per_day=1, frames_per_session=1,
                       cameras=(LEGACY_DEVICE_ID,), width=width, height=height,
                       min_box_px=max(2, min(8, min(width, height) // 12)),
                       blur_probability=0.0, clock_jitter_us=0.0, defects=DefectConfig.none())


def render_frame(seed: int, date: str, index: int, width: int, height: int) -> Frame:
    """One clean PNG frame of a single-camera sequence, ~12 Hz from 08:00 UTC on ``date``."""
    config = _legacy_config(seed, width, height)
    scene = _sample_camera_scene(config, seed, date, "legacy")
    t = index * FRAME_INTERVAL_MS / 1000
    params = _frame_params(config, scene, t, seed, date, "legacy", index)
    rendered = _render(config, scene, _placements(scene, config, t), [], params)
    data = _encode(rendered.image, "png")
    start = dt.datetime.fromisoformat(date).replace(hour=8, tzinfo=dt.UTC)
    return Frame(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        capture_time=start + dt.timedelta(milliseconds=FRAME_INTERVAL_MS * index),
        device_id=LEGACY_DEVICE_ID,
        source_uri=f"synthetic://seed={seed}/{date}/{index:06d}.png",
        boxes=tuple((o.label, *o.box) for o in rendered.objects),
    )


def generate_frames(
    seed: int, date: str, count: int, width: int, height: int
) -> Iterator[Frame]:
    """Yield ``count`` frames one at a time (never the whole partition in memory)."""
    for i in range(count):
        yield render_frame(seed, date, i, width, height)
