"""What fusion is told and what it returns: :class:`FusionConfig`, the input columns, the output
schemas, :class:`FusionResult` and :class:`FusionError`.

The rules these settings steer are documented in :mod:`dataops_cv.lib.fusion.fuse`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

import numpy as np
import pyarrow as pa

from dataops_cv.lib.acquisition.sensor_logs.format import CALIBRATION_COLUMNS, POSE_COLUMNS

ALGORITHM_VERSION = "2"  # bump when fused output would change for the same config
POSE = "pose"
CAMERA = "camera"

GPS_VALUES = ("lat", "lon", "alt", "speed", "heading")
IMU_VALUES = ("ax", "ay", "az", "gx", "gy", "gz")
QUATERNION = ("pose_qw", "pose_qx", "pose_qy", "pose_qz")
POSITION = ("pose_x", "pose_y", "pose_z")
FRAME_COLUMNS = ("sha256", "object_key", "rel_path", "device_id", "capture_time")
SENSOR_COLUMNS = ("timestamp_ns", "sensor", "device_id")

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
FUSED_SCHEMA = pa.schema(
    [("sha256", _S), ("object_key", _S), ("rel_path", _S), ("session_id", _S), ("camera", _S),
     ("camera_firmware", _S), ("time_source", _S), ("frame_time_ns", _I),
     ("frame_time_ref_ns", _I), ("camera_offset_us", _I), ("geo_cell", _S),
     ("gps_device", _S), ("gps_dt_us", _I), ("gps_method", _S)]
    + [(c, _F) for c in GPS_VALUES]
    + [("imu_device", _S), ("imu_dt_us", _I)] + [(c, _F) for c in IMU_VALUES]
    + [("lidar_device", _S), ("lidar_firmware", _S), ("lidar_dt_us", _I),
       ("lidar_object_key", _S), ("pose_device", _S), ("pose_dt_us", _I), ("pose_method", _S)]
    + [(c, _F) for c in POSE_COLUMNS] + [(c, _F) for c in CALIBRATION_COLUMNS]
    + [("devices", _S), ("unmatched", _S)]
)
UNMATCHED_SCHEMA = pa.schema(
    [("kind", _S), ("id", _S), ("session_id", _S), ("device_id", _S), ("sensor", _S),
     ("timestamp_ns", _I), ("reason", _S), ("detail", _S)]
)
CLOCK_SCHEMA = pa.schema(
    [("session_id", _S), ("device_id", _S), ("sensor", _S), ("firmware", _S), ("records", _I),
     ("rate_hz", _F), ("period_us", _F), ("jitter_us", _F), ("gaps", _I), ("duplicates", _I),
     ("out_of_order", _I), ("offset_us", _F), ("offset_method", _S), ("offset_confidence", _F),
     ("offset_applied", _B), ("note", _S)]
)

V = TypeVar("V")


class FusionError(ValueError):
    """Inputs that cannot be fused as given (a caller's mistake, not a bad record)."""


class FrozenMapping(Mapping[str, V]):
    """A read-only, hashable mapping, so a :class:`FusionConfig` stays frozen and hashable."""

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        self._items = dict(sorted(dict(items or {}).items()))

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._items!r})"


@dataclass(frozen=True)
class FusionConfig:
    """How frames and sensor records are aligned (see :mod:`dataops_cv.lib.fusion.fuse`)."""

    tolerance_ms: Mapping[str, float] = FrozenMapping({"imu": 10.0, "gps": 60.0, "lidar": 30.0})
    interpolate_max_gap_periods: float = 2.5
    geo_precision: int = 7  # geohash characters (~153 m cells)
    reference_sensor: str = "gps"
    estimate_offsets: bool = True
    min_offset_confidence: float = 0.8
    max_offset_ms: float = 200.0
    known_offsets_us: Mapping[str, int] = FrozenMapping({})

    def __post_init__(self) -> None:
        tolerances = FrozenMapping({str(k).lower(): float(v)
                                    for k, v in dict(self.tolerance_ms).items()})
        bad = {k: v for k, v in tolerances.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"tolerance_ms must be positive and finite per kind, got {bad}")
        if CAMERA in tolerances:
            raise ValueError("tolerance_ms cannot hold 'camera': frames are what is matched")
        offsets = dict(self.known_offsets_us)
        not_int = {k: v for k, v in offsets.items()
                   if isinstance(v, bool) or not isinstance(v, int | np.integer)}
        if not_int:
            raise ValueError(f"known_offsets_us must map device_id to integer µs, got {not_int}")
        object.__setattr__(self, "tolerance_ms", tolerances)
        object.__setattr__(self, "known_offsets_us",
                           FrozenMapping({str(k): int(v) for k, v in offsets.items()}))
        object.__setattr__(self, "reference_sensor", self.reference_sensor.lower())
        if not self.interpolate_max_gap_periods > 0:
            raise ValueError("interpolate_max_gap_periods must be > 0, got "
                             f"{self.interpolate_max_gap_periods}")
        if not 1 <= self.geo_precision <= 12:
            raise ValueError(f"geo_precision must be 1..12 characters, got {self.geo_precision}")
        if not 0 <= self.min_offset_confidence <= 1:
            raise ValueError("min_offset_confidence must be in [0, 1], got "
                             f"{self.min_offset_confidence}")
        if not (math.isfinite(self.max_offset_ms) and self.max_offset_ms > 0):
            raise ValueError(f"max_offset_ms must be positive, got {self.max_offset_ms}")

    def version(self) -> str:
        """Short stable hash of the canonical config and the algorithm version (for re-runs)."""
        canon = {f.name: getattr(self, f.name) for f in fields(self)}
        canon = {k: dict(v) if isinstance(v, Mapping) else v for k, v in canon.items()}
        canon["algorithm"] = ALGORITHM_VERSION
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class FusionResult:
    """What ``fuse`` returns: fused frames, what could not be matched, and the clock report."""

    fused: pa.Table  # FUSED_SCHEMA, one row per frame (time_source "none" when it has no time)
    unmatched: pa.Table  # UNMATCHED_SCHEMA
    clocks: pa.Table  # CLOCK_SCHEMA, one row per (session_id, device_id)
    counts: dict[str, int] = field(default_factory=dict)
