"""The generic sensor-log format a capture rig hands us, and the one table every log becomes.

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
    :func:`write_sensor_log` writes), else the reader's ``default_unit``. A unit is never guessed
    from the magnitude of the number: a reading with no unit from any of these is malformed.
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
:func:`read_sensor_log` returns a table with :data:`SENSOR_LOG_SCHEMA` (``timestamp_ns`` int64
epoch nanoseconds, ``sensor``, ``device_id``, ``session_id``, ``firmware``, ``file``, then every
known value column, null where a sensor has none) followed by the extra numeric columns in name
order. Rows are sorted by (``device_id``, ``timestamp_ns``), file order among equal timestamps.
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

import csv
import json
import posixpath
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason

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
# Names the normalised table owns: an input column with one of them would be ambiguous.
_OUTPUT_ONLY_COLUMNS = ("timestamp_ns",)

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

_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_DIGITS = len(str(_INT64_MAX))
_ROW_COLUMN = "__row"
_NUMBER_RE = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$"
_DECIMAL_RE = r"^(?P<sign>[+-]?)(?P<int>\d+)(?:\.(?P<frac>\d*))?$"
_ABSOLUTE_RE = re.compile(r"^(?:/|[A-Za-z]:|[A-Za-z][A-Za-z0-9+.-]*://)")


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


def _check_unit(unit: str | None, what: str) -> None:
    if unit is not None and unit not in TIMESTAMP_UNITS:
        raise SensorLogError(f"{what} {unit!r} is not a timestamp unit; expected one of "
                             f"{', '.join(TIMESTAMP_UNITS)}")


# ---------------------------------------------------------------------------------------- writing


def write_sensor_log(table: pa.Table, path: Path, unit: str | None = None) -> Path:
    """Write ``table`` as a sensor log; the format follows the suffix of ``path``.

    ``table`` is either in the file format (``timestamp`` + optional ``timestamp_unit``) or a
    normalised table (``timestamp_ns``, written as ``timestamp`` in ``ns``). The file-level unit is
    ``unit``, else the table's schema metadata ``timestamp_unit``. Parquet stores it in the file's
    key-value metadata; CSV and JSONL, which have no file metadata, get it in ``timestamp_unit``
    wherever a row has none. The same table always gives the same bytes.

    Raises:
        SensorLogError: unsupported suffix, a missing required column or no unit at all.
    """
    path = Path(path)
    fmt = log_format(path)
    _check_unit(unit, "unit")
    names = table.column_names
    if "timestamp" not in names and "timestamp_ns" in names:
        if unit not in (None, "ns"):
            raise SensorLogError(f"{path}: a normalised table is in ns, not {unit!r}")
        table = table.rename_columns(["timestamp" if n == "timestamp_ns" else n for n in names])
        unit = "ns"
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise SensorLogError(f"{path}: cannot write a sensor log without column(s) {missing}; "
                             f"found {table.column_names}")
    if unit is None:
        declared = (table.schema.metadata or {}).get(UNIT_METADATA_KEY)
        unit = declared.decode() if declared else None
        _check_unit(unit, f"{path}: table metadata timestamp_unit")
    temporal = pa.types.is_timestamp(table.schema.field("timestamp").type)
    if unit is None and "timestamp_unit" not in table.column_names and not temporal:
        raise SensorLogError(f"{path}: no timestamp unit: pass unit=, set the table's "
                             "'timestamp_unit' metadata or add a timestamp_unit column")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        metadata = dict(table.schema.metadata or {})
        if unit is not None:
            metadata[UNIT_METADATA_KEY] = unit.encode()
        pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")
        return path
    if temporal:
        ts_type = table.schema.field("timestamp").type
        ints = pc.cast(table.column("timestamp"), pa.int64())
        table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", ints)
        unit = ts_type.unit
    if unit is not None:
        if "timestamp_unit" in table.column_names:
            idx = table.schema.get_field_index("timestamp_unit")
            filled = pc.fill_null(pc.cast(table.column(idx), pa.string()), unit)
            table = table.set_column(idx, "timestamp_unit", filled)
        else:
            table = table.append_column("timestamp_unit", pa.array([unit] * table.num_rows,
                                                                   pa.string()))
    table = table.replace_schema_metadata(None)
    if fmt == "csv":
        pcsv.write_csv(table, path)
        return path
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for batch in table.to_batches():
            for row in batch.to_pylist():
                # Missing values are left out of the line rather than written as null: the reader
                # treats both alike, and JSON has no NaN.
                kept = {k: v for k, v in row.items()
                        if v is not None and not (isinstance(v, float) and v != v)}
                out.write(json.dumps(kept, separators=(",", ":"), allow_nan=False) + "\n")
    return path


# ---------------------------------------------------------------------------------------- reading


class _FileRejected(Exception):
    """The file as a whole is not a readable sensor log (becomes one quarantine record)."""


def read_sensor_log(
    path: Path, default_unit: str | None = None, *, batch_rows: int = 65_536
) -> tuple[pa.Table, list[QuarantineRecord]]:
    """Read one sensor log into the normalised table, quarantining malformed rows.

    The file is read in batches of ``batch_rows`` (Parquet row-group batches, CSV blocks, JSONL
    lines); only the normalised columns of good rows are kept, so memory follows the output.

    Args:
        path: a ``.parquet``/``.pq``, ``.csv`` or ``.jsonl``/``.ndjson`` file.
        default_unit: timestamp unit for rows without one when the file declares none.
        batch_rows: rows per batch (tests use small batches to exercise the streaming path).

    Returns:
        The table (see :data:`SENSOR_LOG_SCHEMA`) and the quarantine records, in file order.

    Raises:
        SensorLogError: unsupported suffix or an invalid ``default_unit``.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    fmt = log_format(path)
    _check_unit(default_unit, "default_unit")
    if batch_rows < 1:
        raise SensorLogError(f"batch_rows must be positive, got {batch_rows}")
    if not path.is_file():
        raise FileNotFoundError(f"sensor log {path} does not exist")
    try:
        if fmt == "parquet":
            normaliser = _read_parquet(path, default_unit, batch_rows)
        elif fmt == "csv":
            normaliser = _read_csv(path, default_unit, batch_rows)
        else:
            normaliser = _read_jsonl(path, default_unit, batch_rows)
    except _FileRejected as exc:
        return _empty_table(), [_file_record(path, str(exc))]
    return normaliser.finish(), normaliser.quarantine


def _file_record(path: Path, detail: str) -> QuarantineRecord:
    return QuarantineRecord(source_uri=str(path), kind="sensor_record",
                            reason=Reason.MALFORMED_SENSOR_RECORD, detail=detail)


def _empty_table() -> pa.Table:
    return SENSOR_LOG_SCHEMA.empty_table()


def _check_columns(names: list[str], unit_known: bool) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise _FileRejected(f"missing required column(s) {', '.join(missing)}; found {names}")
    if not unit_known and "timestamp_unit" not in names:
        raise _FileRejected(
            "no timestamp unit: no timestamp_unit column, no file-level 'timestamp_unit' "
            "metadata and no default_unit given"
        )


def _read_parquet(path: Path, default_unit: str | None, batch_rows: int) -> _Normaliser:
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, FileNotFoundError | PermissionError):
            raise
        raise _FileRejected(f"not a readable Parquet file: {exc}") from exc
    declared = (schema.metadata or {}).get(UNIT_METADATA_KEY)
    file_unit = declared.decode() if declared else None
    if file_unit is not None and file_unit not in TIMESTAMP_UNITS:
        raise _FileRejected(f"file-level timestamp_unit {file_unit!r} is not one of "
                            f"{', '.join(TIMESTAMP_UNITS)}")
    temporal = "timestamp" in schema.names and pa.types.is_timestamp(
        schema.field("timestamp").type)
    _check_columns(schema.names, unit_known=bool(file_unit or default_unit or temporal))
    normaliser = _Normaliser(path, file_unit or default_unit)
    start = 0
    for batch in _guarded(parquet.iter_batches(batch_size=batch_rows),
                          lambda: f"corrupt Parquet data after row {start}"):
        table = pa.Table.from_batches([batch])
        normaliser.add(table, np.arange(start, start + table.num_rows, dtype=np.int64))
        start += table.num_rows
    return normaliser


def _guarded(batches: Iterator[pa.RecordBatch], where: Callable[[], str]
             ) -> Iterator[pa.RecordBatch]:
    """The reader's batches, with its parse errors (only those) turned into a rejected file."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _FileRejected(f"{where()}: {exc}") from exc
        yield batch


def _read_csv(path: Path, default_unit: str | None, batch_rows: int) -> _Normaliser:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            header = next(csv.reader(handle), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _FileRejected(f"unreadable CSV header: {exc}") from exc
    if not header:
        raise _FileRejected("empty CSV file: no header row")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise _FileRejected(f"duplicate column names in the CSV header {header}")
    _check_columns(header, unit_known=bool(default_unit))
    normaliser = _Normaliser(path, default_unit)
    ragged: list[str] = []

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        ragged.append(f"CSV row has {row.actual_columns} fields, expected "
                      f"{row.expected_columns}: {row.text[:200]!r}")
        return "skip"

    # Every column is read as text so that one bad cell is one bad row (type inference would fail
    # the whole block) and decimal timestamps are converted exactly, not through a float.
    reader_options = pcsv.ReadOptions(column_names=header, skip_rows=1,
                                      block_size=max(1 << 16, batch_rows * 64))
    convert = pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                  strings_can_be_null=True, quoted_strings_can_be_null=True,
                                  null_values=[""])
    start = 0
    try:
        reader = pcsv.open_csv(path, read_options=reader_options,
                               parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row),
                               convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _FileRejected(f"CSV parse error at the start: {exc}") from exc
    for batch in _guarded(iter(reader), lambda: f"CSV parse error after data row {start}"):
        for offset in range(0, batch.num_rows, batch_rows):
            table = pa.Table.from_batches([batch.slice(offset, batch_rows)])
            normaliser.add(table, np.arange(start, start + table.num_rows, dtype=np.int64))
            start += table.num_rows
    for detail in ragged:
        normaliser.quarantine.append(QuarantineRecord(
            source_uri=f"{path}#ragged_row", kind="sensor_record",
            reason=Reason.MALFORMED_SENSOR_RECORD, detail=detail))
    return normaliser


def _json_text(value: object) -> str | None:
    """One JSON value as text; numbers keep their literal so decimals convert exactly."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _read_jsonl(path: Path, default_unit: str | None, batch_rows: int) -> _Normaliser:
    normaliser = _Normaliser(path, default_unit)
    rows: list[dict[str, str | None]] = []
    indices: list[int] = []

    def flush() -> None:
        if not rows:
            return
        columns: dict[str, list[str | None]] = {}
        for i, row in enumerate(rows):
            for key, value in row.items():
                columns.setdefault(key, [None] * len(rows))[i] = value
        if not columns:
            columns = {"timestamp": [None] * len(rows)}
        table = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
        normaliser.add(table, np.asarray(indices, dtype=np.int64))
        rows.clear()
        indices.clear()

    index = 0
    with path.open("rb") as handle:
        for raw_line in handle:
            if not raw_line.strip():
                continue
            try:
                record = json.loads(raw_line.decode("utf-8"), parse_float=str,
                                    parse_constant=str)
            except (UnicodeDecodeError, ValueError) as exc:
                normaliser.reject_row(index, f"line is not valid UTF-8 JSON: {exc}")
                index += 1
                continue
            if not isinstance(record, dict):
                normaliser.reject_row(index, f"line is a JSON {type(record).__name__}, "
                                             "expected an object")
                index += 1
                continue
            rows.append({str(k): _json_text(v) for k, v in record.items()})
            indices.append(index)
            index += 1
            if len(rows) >= batch_rows:
                flush()
    flush()
    return normaliser


# ---------------------------------------------------------------------------------- normalising


def _as_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _clean_text(array: pa.Array) -> pa.Array:
    """Text with surrounding blanks removed; empty becomes null."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    array = pc.cast(pc.utf8_trim_whitespace(array), pa.string())
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)


def _numbers(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing, present, not-a-number) for one column."""
    n = len(array)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) \
            or pa.types.is_decimal(array.type):
        floats = pc.cast(array, pa.float64())
        values = pc.fill_null(floats, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        present = _valid(floats) & ~np.isnan(values)
        return values, present, np.zeros(n, dtype=bool)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) \
            or pa.types.is_dictionary(array.type):
        text = _clean_text(array)
        ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER_RE, ignore_case=True), False)
        floats = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
        values = pc.fill_null(floats, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        given = _valid(text)
        ok_np = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
        return values, ok_np & ~np.isnan(values), given & ~ok_np
    given = _valid(array)
    return np.full(n, np.nan), np.zeros(n, dtype=bool), given


def _ints_to_ns(values: np.ndarray, mult: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    limit = _INT64_MAX // mult
    ok = np.abs(values) <= limit
    return np.where(ok, values, 0) * mult, ok


def _floats_to_ns(values: np.ndarray, mult: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = np.isfinite(values)
    whole = np.floor(np.where(finite, values, 0.0))
    # Whole and fractional parts separately: value * 1e9 in float64 would lose the microseconds of
    # an epoch time in seconds.
    ok = finite & (np.abs(whole) < (_INT64_MAX // mult) - 1)
    whole_i = np.where(ok, whole, 0.0).astype(np.int64)
    frac_ns = np.rint((np.where(ok, values, 0.0) - np.where(ok, whole, 0.0)) * mult)
    return whole_i * mult + frac_ns.astype(np.int64), ok


def _decimal_text_to_ns(text: pa.Array, mult: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact conversion of plain decimal text; returns (ns, converted, matched the pattern)."""
    n = len(text)
    parts = pc.extract_regex(text, _DECIMAL_RE)
    matched = _valid(parts)
    if not matched.any():
        return np.zeros(n, np.int64), np.zeros(n, bool), matched
    matched_arr = pa.array(matched)
    # Rows that did not match are a null struct whose children still hold values: mask them.
    whole_text = pc.utf8_ltrim(pc.if_else(matched_arr, parts.field("int"), "0"), characters="0")
    whole_text = pc.if_else(pc.equal(whole_text, ""), "0", whole_text)
    # Digit strings of equal length compare like the numbers they spell.
    length = pc.utf8_length(whole_text)
    too_long = np.asarray(pc.or_(
        pc.greater(length, _INT64_DIGITS),
        pc.and_(pc.equal(length, _INT64_DIGITS), pc.greater(whole_text, str(_INT64_MAX))),
    ).to_numpy(zero_copy_only=False), dtype=bool)
    whole_text = pc.if_else(pa.array(too_long), "0", whole_text)
    whole = pc.cast(whole_text, pa.int64()).to_numpy(zero_copy_only=False)
    # Twelve fractional digits: a picosecond of a second, enough to round any unit to the ns.
    frac_text = pc.utf8_rpad(pc.utf8_slice_codeunits(
        pc.if_else(matched_arr, pc.fill_null(parts.field("frac"), ""), ""), 0, 12), 12, "0")
    frac12 = pc.cast(frac_text, pa.int64()).to_numpy(zero_copy_only=False)
    negative = np.asarray(pc.equal(pc.if_else(matched_arr, parts.field("sign"), ""), "-")
                          .to_numpy(zero_copy_only=False), dtype=bool)
    ns_whole, ok = _ints_to_ns(whole, mult)
    ok &= matched & ~too_long
    # Units are powers of ten of a ns, so frac12 / step is the fraction in ns: round half up in
    # integers (the sign is applied after, so halves round away from zero).
    step = 1_000_000_000_000 // mult
    frac_ns = (frac12 + step // 2) // step
    ok &= ns_whole <= _INT64_MAX - frac_ns
    magnitude = np.where(ok, ns_whole + frac_ns, 0)
    return np.where(negative, -magnitude, magnitude), ok, matched


def _timestamps_ns(array: pa.Array, mult: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Epoch nanoseconds per row, which rows converted, and why the others did not."""
    n = len(array)
    why: dict[int, str] = {}
    given = _valid(array)
    for i in np.flatnonzero(~given):
        why[int(i)] = "timestamp is missing"
    safe_mult = np.where(mult > 0, mult, 1)
    typ = array.type
    if pa.types.is_timestamp(typ):
        raw = pc.cast(array, pa.int64()).to_numpy(zero_copy_only=False)
        raw = np.where(given, raw, 0)
        unit_mult = np.full(n, TIMESTAMP_UNITS[typ.unit], dtype=np.int64)
        ns, ok = _ints_to_ns(raw, unit_mult)
    elif pa.types.is_integer(typ):
        if pa.types.is_unsigned_integer(typ):
            fits = pc.fill_null(pc.less_equal(array, pa.scalar(_INT64_MAX, typ)), True)
            array = pc.if_else(fits, array, pa.scalar(0, typ))
            fits_np = np.asarray(fits.to_numpy(zero_copy_only=False), dtype=bool)
        else:
            fits_np = np.ones(n, dtype=bool)
        raw = pc.fill_null(pc.cast(array, pa.int64()), 0).to_numpy(zero_copy_only=False)
        ns, ok = _ints_to_ns(raw, safe_mult)
        ok &= fits_np
    elif pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        raw = pc.fill_null(pc.cast(array, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        ns, ok = _floats_to_ns(raw, safe_mult)
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
        text = _clean_text(array)
        given = _valid(text)
        for i in np.flatnonzero(~given):
            why[int(i)] = "timestamp is missing"
        ns, ok, matched = _decimal_text_to_ns(text, safe_mult)
        rest = given & ~matched
        if rest.any():
            values, present, _ = _numbers(text)
            ns_f, ok_f = _floats_to_ns(values, safe_mult)
            ok_f &= present & rest
            ns = np.where(ok_f, ns_f, ns)
            ok = ok | ok_f
        for i in np.flatnonzero(given & ~ok):
            raw_text = text[int(i)].as_py()
            if matched[i] or _is_number_text(raw_text):
                why[int(i)] = f"timestamp {raw_text!r} is outside the int64 nanosecond range"
            else:
                why[int(i)] = f"timestamp {raw_text!r} is not a number"
        ok &= given
        return ns, ok, why
    else:
        for i in np.flatnonzero(given):
            why[int(i)] = f"timestamp of type {typ} is not a number"
        return np.zeros(n, np.int64), np.zeros(n, bool), why
    ok &= given
    for i in np.flatnonzero(given & ~ok):
        why[int(i)] = f"timestamp {array[int(i)].as_py()!r} is not a finite number in the " \
                      "int64 nanosecond range"
    return ns, ok, why


def _is_number_text(text: str | None) -> bool:
    return text is not None and re.fullmatch(_NUMBER_RE, text, flags=re.IGNORECASE) is not None


def _file_reference(ref: str) -> tuple[str | None, str | None]:
    """(normalised relative path, problem) for one ``file`` cell."""
    unified = ref.replace("\\", "/")
    if _ABSOLUTE_RE.match(unified):
        return None, (f"file {ref!r} is absolute (or a URL); expected a path relative to the "
                      "log's folder")
    normal = posixpath.normpath(unified)
    if normal == ".." or normal.startswith("../"):
        return None, f"file {ref!r} escapes the log's folder"
    if normal == ".":
        return None, f"file {ref!r} names the log's folder, not a file"
    return normal, None


class _Normaliser:
    """Turns raw batches into normalised chunks; remembers per-file decisions across batches."""

    def __init__(self, path: Path, default_unit: str | None) -> None:
        self.path = path
        self.default_unit = default_unit
        self.quarantine: list[QuarantineRecord] = []
        self.chunks: list[pa.Table] = []
        # Extra column -> True (numeric), False (text, dropped) or None (no value seen yet).
        self.extra_numeric: dict[str, bool | None] = {}

    def reject_row(self, row: int, detail: str) -> None:
        self.quarantine.append(QuarantineRecord(
            source_uri=f"{self.path}#row={row}", kind="sensor_record",
            reason=Reason.MALFORMED_SENSOR_RECORD, detail=detail))

    def _decide_extra(self, name: str, array: pa.Array) -> bool | None:
        decided = self.extra_numeric.get(name)
        if decided is not None:
            return decided
        typ = array.type
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
            decided = True
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ) \
                or pa.types.is_dictionary(typ) or pa.types.is_null(typ):
            text = _clean_text(array) if not pa.types.is_null(typ) else array
            first = next((v for v in text.to_pylist() if v is not None), None)
            decided = None if first is None else _is_number_text(first)
        else:
            decided = False
        self.extra_numeric[name] = decided
        return decided

    def add(self, raw: pa.Table, rows: np.ndarray) -> None:
        n = raw.num_rows
        if n == 0:
            return
        problems: dict[int, list[str]] = {}

        def flag(mask: np.ndarray, message: Callable[[int], str]) -> None:
            for i in np.flatnonzero(mask):
                problems.setdefault(int(i), []).append(message(int(i)))

        columns = {name: _as_array(raw.column(name)) for name in raw.column_names}
        null_text = pa.nulls(n, pa.string())

        timestamp = columns.get("timestamp", pa.nulls(n, pa.string()))
        temporal = pa.types.is_timestamp(timestamp.type)
        unit_raw = _clean_text(columns["timestamp_unit"]) if "timestamp_unit" in columns \
            else null_text
        unit = pc.utf8_lower(unit_raw)
        if self.default_unit is not None:
            unit = pc.fill_null(unit, self.default_unit)
        unit_index = pc.index_in(unit, value_set=pa.array(list(TIMESTAMP_UNITS)))
        known = _valid(unit_index)
        index_np = pc.fill_null(unit_index, 0).to_numpy(zero_copy_only=False)
        mult = np.where(known, np.array(list(TIMESTAMP_UNITS.values()), np.int64)[index_np], 0)
        if not temporal:
            unit_given = _valid(unit)
            flag(~unit_given, lambda i: "no timestamp unit: the row has no timestamp_unit and "
                                        "the file has no default (Parquet metadata "
                                        "'timestamp_unit' or default_unit=)")
            flag(unit_given & ~known, lambda i: f"unknown timestamp unit {unit_raw[i].as_py()!r} "
                                                f"(expected one of {', '.join(TIMESTAMP_UNITS)})")
        ns, ts_ok, why = _timestamps_ns(timestamp, mult)
        for i, message in why.items():
            problems.setdefault(i, []).append(message)

        sensor = pc.utf8_lower(_clean_text(columns.get("sensor", null_text)))
        device = _clean_text(columns.get("device_id", null_text))
        flag(~_valid(sensor), lambda i: "sensor is missing")
        flag(~_valid(device), lambda i: "device_id is missing")
        session = _clean_text(columns.get("session_id", null_text))
        firmware = _clean_text(columns.get("firmware", null_text))

        file_raw = _clean_text(columns.get("file", null_text))
        file_values: list[str | None] = [None] * n
        for i in np.flatnonzero(_valid(file_raw)):
            normal, problem = _file_reference(file_raw[int(i)].as_py())
            if problem:
                problems.setdefault(int(i), []).append(problem)
            file_values[int(i)] = normal
        has_file = np.array([v is not None for v in file_values], dtype=bool)

        values: dict[str, np.ndarray] = {}
        has_value = np.zeros(n, dtype=bool)
        bad_value = np.zeros(n, dtype=bool)
        for name, array in columns.items():
            if name in RESERVED_COLUMNS:
                continue
            if name in _OUTPUT_ONLY_COLUMNS:
                self.extra_numeric[name] = False
                continue
            if name not in KNOWN_VALUE_COLUMNS and not self._decide_extra(name, array):
                continue
            numbers, present, not_number = _numbers(array)
            infinite = present & np.isinf(numbers)
            flag(not_number, lambda i, a=array, c=name:
                 f"{c} value {a[i].as_py()!r} is not numeric")
            flag(infinite, lambda i, a=array, c=name:
                 f"{c} value {a[i].as_py()!r} is not finite")
            values[name] = np.where(present & ~infinite, numbers, np.nan)
            has_value |= present & ~infinite
            bad_value |= not_number | infinite
        # A row whose only values were rejected already says why; "no values" would be noise.
        flag(~has_value & ~has_file & ~bad_value, lambda i: "row has no values and no file")

        keep = np.ones(n, dtype=bool)
        for i in sorted(problems):
            keep[i] = False
            self.reject_row(int(rows[i]), "; ".join(problems[i]))
        if not keep.any():
            return
        mask = pa.array(keep)
        out: dict[str, pa.Array] = {
            "timestamp_ns": pa.array(ns[keep], pa.int64()),
            "sensor": sensor.filter(mask),
            "device_id": device.filter(mask),
            "session_id": session.filter(mask),
            "firmware": firmware.filter(mask),
            "file": pa.array(file_values, pa.string()).filter(mask),
        }
        for name in KNOWN_VALUE_COLUMNS:
            column = values.get(name)
            out[name] = pa.nulls(int(keep.sum()), pa.float64()) if column is None \
                else pa.array(column[keep], pa.float64(), from_pandas=True)
        for name in sorted(set(values) - set(KNOWN_VALUE_COLUMNS)):
            out[name] = pa.array(values[name][keep], pa.float64(), from_pandas=True)
        out[_ROW_COLUMN] = pa.array(rows[keep], pa.int64())
        self.chunks.append(pa.table(out))

    def finish(self) -> pa.Table:
        extras = sorted(name for name, numeric in self.extra_numeric.items()
                        if numeric is not False and name not in _OUTPUT_ONLY_COLUMNS)
        dropped = sorted(name for name, numeric in self.extra_numeric.items() if numeric is False)
        schema = pa.schema(list(SENSOR_LOG_SCHEMA) + [pa.field(e, pa.float64()) for e in extras])
        tables = []
        for chunk in self.chunks:
            for name in extras:
                if name not in chunk.column_names:
                    chunk = chunk.append_column(name, pa.nulls(chunk.num_rows, pa.float64()))
            rows = chunk.column(_ROW_COLUMN)
            tables.append(chunk.select(schema.names).cast(schema).append_column(_ROW_COLUMN, rows))
        if not tables:
            table = schema.empty_table()
        else:
            merged = pa.concat_tables(tables)
            # The row number breaks ties so equal timestamps keep their file order on any engine.
            order = pc.sort_indices(merged, sort_keys=[("device_id", "ascending"),
                                                       ("timestamp_ns", "ascending"),
                                                       (_ROW_COLUMN, "ascending")])
            table = merged.take(order).drop_columns([_ROW_COLUMN])
        metadata = {DROPPED_COLUMNS_METADATA_KEY: ",".join(dropped).encode()} if dropped else None
        return table.replace_schema_metadata(metadata)

