"""What shapes a synthetic capture day: the scene, the rig and the planted defects it gets.

The same :class:`SceneConfig` gives the same bytes on every run (see :mod:`.seeds`); its
``repr`` keys the cache of generated drops, so field names and order are part of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum

CLASSES = ("car", "pedestrian", "cyclist", "traffic_sign")
CATEGORY_IDS = {name: i + 1 for i, name in enumerate(CLASSES)}  # COCO category ids

IMU_DEVICE = "imu0"
GPS_DEVICE = "gps0"
LIDAR_DEVICE = "lidar_top"

EXT = {"png": "png", "jpeg": "jpg"}


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
        """How many of each kind, in :class:`DefectKind` order."""
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
