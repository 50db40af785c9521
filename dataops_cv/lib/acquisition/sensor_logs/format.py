"""The generic sensor-log format a capture rig hands us, and the one table every log becomes.

This module holds the format's constants, the normalised schema and the caller-mistake error;
:mod:`~dataops_cv.lib.acquisition.sensor_logs.writer` writes logs,
:mod:`~dataops_cv.lib.acquisition.sensor_logs.reader` reads them and
:mod:`~dataops_cv.lib.acquisition.sensor_logs.normalise` turns their rows into the table.

File format
-----------
One row per sensor reading, in any of:

- **Parquet** (``.parquet``, ``.pq``),
- **CSV** (``.csv``: UTF-8, comma-separated, one header row; an empty cell is a missing value),
- **JSON Lines** (``.jsonl``, ``.ndjson``: one JSON object per line; a missing key or ``null`` is a
  missing value; blank lines are skipped).

Column names are lower-case, exactly as listed.

Required columns

``timestamp``
    Unix epoch time (UTC) of the reading in the *device's own clock*: an integer or a decimal number
    (``1717228800``, ``1717228800.083217``, ``1.7172288e9``). Plain decimal text (CSV, JSONL, a
    Parquet string column) is converted exactly, without a float: rounded to the nearest ns, halves
    away from zero. A float column or exponent notation is only as exact as float64 (~0.2 µs for
    epoch seconds). In Parquet the column may also be a native timestamp type, whose unit then wins
    (a naive one is read as UTC).
``timestamp_unit``
    ``s`` | ``ms`` | ``us`` | ``ns``, per row. Where a row leaves it empty, or the column is absent,
    the file-level default applies: the Parquet key-value metadata ``timestamp_unit`` (what
    :func:`~dataops_cv.lib.acquisition.sensor_logs.writer.write_sensor_log` writes), else the
    reader's ``default_unit``. A unit is never guessed from the magnitude of the number: a
    reading with no unit from any of these is malformed.
``sensor``
    Kind of sensor, case-insensitive, stored lower-case: ``imu``, ``gps``, ``lidar``, ``camera``,
    ...
``device_id``
    Which device of that kind (``imu0``, ``lidar_top``); every device has its own clock.

Optional columns

``session_id``
    Capture session the reading belongs to.
``firmware``
    Firmware version of the device.
``file``
    A blob the reading refers to (a LiDAR sweep, an image), as a ``/``-separated path relative to
    the folder that holds the log. Absolute paths, drive letters, URLs and paths that leave the
    folder (``..``) are malformed. Whether the file exists is not checked here.

Value columns (every other column; stored as float64)

=============  ==============================================================================
imu            ``ax, ay, az`` specific force in m/s² and ``gx, gy, gz`` angular rate in rad/s,
               body frame: x forward, y left, z up (a resting IMU reads ``az`` ≈ +9.81)
gps            ``lat, lon`` in degrees WGS84, ``alt`` in m, ``speed`` in m/s, ``heading`` in
               degrees clockwise from north
camera         ``exposure_ms, gain`` (camera rows usually also carry a ``file``)
lidar          no values: ``file`` names the sweep, a NumPy ``.npy`` float32 array of shape
               N×4 (x, y, z in m in the sensor frame, intensity in [0, 1])
ego pose       ``pose_x, pose_y, pose_z`` vehicle position in m in a session-local ENU world
               frame; ``pose_qw, pose_qx, pose_qy, pose_qz`` vehicle→world rotation quaternion
calibration    ``calib_x, calib_y, calib_z, calib_qw, calib_qx, calib_qy, calib_qz``
               sensor→vehicle extrinsics (translation in m, rotation quaternion)
=============  ==============================================================================

Any other column is kept as float64 when it holds numbers: in Parquet when its type is numeric,
in CSV/JSONL (which have no types) when its first non-empty value in the file is a number. A
column of text is dropped and named in the result's schema metadata ``dropped_columns``. In a value
column an empty cell or ``NaN`` means "no reading" (null); text or ``±inf`` makes the row
malformed. A row needs at least one value or a ``file``.

The normalised table
--------------------
:func:`~dataops_cv.lib.acquisition.sensor_logs.reader.read_sensor_log` returns a table with
:data:`SENSOR_LOG_SCHEMA` (``timestamp_ns`` int64 epoch nanoseconds, ``sensor``, ``device_id``,
``session_id``, ``firmware``, ``file``, then every known value column, null where a sensor has
none) followed by the extra numeric columns in name order. Rows are sorted by (``device_id``,
``timestamp_ns``), file order among equal timestamps.
Duplicate and out-of-order timestamps are kept: clock fusion decides what they mean, not the
reader.

Quarantine
----------
A malformed row is left out of the table and reported as a
:class:`~dataops_cv.lib.core.quarantine.QuarantineRecord` with reason ``MALFORMED_SENSOR_RECORD``,
``kind="sensor_record"``, ``source_uri="<path>#row=<i>"`` (``i`` counts data rows from 0: after the
CSV header, non-blank JSONL lines) and every problem of the row in ``detail``. CSV rows with the
wrong number of fields are not counted by ``i`` (pyarrow does not report their position): their
``source_uri`` is ``<path>#ragged_row`` and their detail quotes the row. A file that cannot be read
as a log at all (a corrupt container, a missing required column, no timestamp unit anywhere) is one
record whose ``source_uri`` is the path, and the table is empty.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

TIMESTAMP_UNITS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
UNIT_METADATA_KEY = b"timestamp_unit"
DROPPED_COLUMNS_METADATA_KEY = b"dropped_columns"

VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "imu": ("ax", "ay", "az", "gx", "gy", "gz"),
    "gps": ("lat", "lon", "alt", "speed", "heading"),
    "camera": ("exposure_ms", "gain"),
    "lidar": (),
}
POSE_COLUMNS = ("pose_x", "pose_y", "pose_z", "pose_qw", "pose_qx", "pose_qy", "pose_qz")
CALIBRATION_COLUMNS = (
    "calib_x", "calib_y", "calib_z", "calib_qw", "calib_qx", "calib_qy", "calib_qz",
)
KNOWN_VALUE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys([c for cols in VALUE_COLUMNS.values() for c in cols]
                  + list(POSE_COLUMNS) + list(CALIBRATION_COLUMNS))
)
REQUIRED_COLUMNS = ("timestamp", "sensor", "device_id")
RESERVED_COLUMNS = ("timestamp", "timestamp_unit", "sensor", "device_id", "session_id",
                    "firmware", "file")

SENSOR_LOG_SCHEMA = pa.schema(
    [
        pa.field("timestamp_ns", pa.int64(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string()),
        pa.field("firmware", pa.string()),
        pa.field("file", pa.string()),
    ]
    + [pa.field(name, pa.float64()) for name in KNOWN_VALUE_COLUMNS]
)

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class SensorLogError(ValueError):
    """A sensor log that cannot be read or written as asked (a caller's mistake, not a bad row)."""


def log_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from the file name.

    Raises:
        SensorLogError: for any other suffix.
    """
    name = Path(path).name.lower()
    for fmt, suffixes in (("parquet", PARQUET_SUFFIXES), ("csv", CSV_SUFFIXES),
                          ("jsonl", JSONL_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    raise SensorLogError(
        f"{path}: unsupported sensor-log file type; expected one of "
        f"{', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES + JSONL_SUFFIXES)}"
    )


def check_unit(unit: str | None, what: str) -> None:
    """Accept ``None`` or one of :data:`TIMESTAMP_UNITS`.

    Args:
        unit: the unit a caller passed or a table declared.
        what: names where ``unit`` came from, for the message.

    Raises:
        SensorLogError: ``unit`` is not a timestamp unit.
    """
    if unit is not None and unit not in TIMESTAMP_UNITS:
        raise SensorLogError(f"{what} {unit!r} is not a timestamp unit; expected one of "
                             f"{', '.join(TIMESTAMP_UNITS)}")
