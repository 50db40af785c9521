"""Reading one sensor log (Parquet, CSV or JSON Lines) in batches into the normalised table.

Each reader checks the file as a whole (container, header, required columns, a timestamp unit
from somewhere) and streams its rows in batches to the
:class:`~dataops_cv.lib.acquisition.sensor_logs.normalise.Normaliser`. The format and the
quarantine records are documented in :mod:`dataops_cv.lib.acquisition.sensor_logs.format`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from dataops_cv.lib.acquisition.sensor_logs.format import (
    REQUIRED_COLUMNS,
    SENSOR_LOG_SCHEMA,
    TIMESTAMP_UNITS,
    UNIT_METADATA_KEY,
    SensorLogError,
    check_unit,
    log_format,
)
from dataops_cv.lib.acquisition.sensor_logs.normalise import Normaliser
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason


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
    check_unit(default_unit, "default_unit")
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


def _read_parquet(path: Path, default_unit: str | None, batch_rows: int) -> Normaliser:
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
    normaliser = Normaliser(path, file_unit or default_unit)
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


def _read_csv(path: Path, default_unit: str | None, batch_rows: int) -> Normaliser:
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
    normaliser = Normaliser(path, default_unit)
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


def _read_jsonl(path: Path, default_unit: str | None, batch_rows: int) -> Normaliser:
    normaliser = Normaliser(path, default_unit)
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
