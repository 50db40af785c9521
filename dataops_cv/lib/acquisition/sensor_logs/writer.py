"""Writing a table as a sensor log in Parquet, CSV or JSON Lines, byte-stable for equal tables.

The file format is documented in :mod:`dataops_cv.lib.acquisition.sensor_logs.format`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from dataops_cv.lib.acquisition.sensor_logs.format import (
    REQUIRED_COLUMNS,
    UNIT_METADATA_KEY,
    SensorLogError,
    check_unit,
    log_format,
)


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
    check_unit(unit, "unit")
    table, unit = _in_file_columns(table, path, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        _write_parquet(table, path, unit)
    elif fmt == "csv":
        pcsv.write_csv(_with_row_units(table, unit), path)
    else:
        _write_jsonl(_with_row_units(table, unit), path)
    return path


def _in_file_columns(table: pa.Table, path: Path, unit: str | None
                     ) -> tuple[pa.Table, str | None]:
    """``table`` with the file format's columns, and the file-level unit (None: rows carry it)."""
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
        check_unit(unit, f"{path}: table metadata timestamp_unit")
    temporal = pa.types.is_timestamp(table.schema.field("timestamp").type)
    if unit is None and "timestamp_unit" not in table.column_names and not temporal:
        raise SensorLogError(f"{path}: no timestamp unit: pass unit=, set the table's "
                             "'timestamp_unit' metadata or add a timestamp_unit column")
    return table, unit


def _write_parquet(table: pa.Table, path: Path, unit: str | None) -> None:
    metadata = dict(table.schema.metadata or {})
    if unit is not None:
        metadata[UNIT_METADATA_KEY] = unit.encode()
    pq.write_table(table.replace_schema_metadata(metadata), path, compression="zstd")


def _with_row_units(table: pa.Table, unit: str | None) -> pa.Table:
    """The table for a format without file metadata: the unit moves into ``timestamp_unit``."""
    if pa.types.is_timestamp(table.schema.field("timestamp").type):
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
    return table.replace_schema_metadata(None)


def _write_jsonl(table: pa.Table, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for batch in table.to_batches():
            for row in batch.to_pylist():
                # Missing values are left out of the line rather than written as null: the reader
                # treats both alike, and JSON has no NaN.
                kept = {k: v for k, v in row.items()
                        if v is not None and not (isinstance(v, float) and v != v)}
                out.write(json.dumps(kept, separators=(",", ":"), allow_nan=False) + "\n")
