"""Normalising sensor-log rows: timestamps to epoch ns, values to float64, file references checked.

:class:`Normaliser` takes the raw batches a reader hands it (columns as the file gave them, text
for CSV and JSONL), quarantines each malformed row with every problem it has, and assembles the
good rows into the normalised table described in
:mod:`dataops_cv.lib.acquisition.sensor_logs.format`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.acquisition.sensor_logs.format import (
    DROPPED_COLUMNS_METADATA_KEY,
    KNOWN_VALUE_COLUMNS,
    RESERVED_COLUMNS,
    SENSOR_LOG_SCHEMA,
    TIMESTAMP_UNITS,
)
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason

# Names the normalised table owns: an input column with one of them would be ambiguous.
_OUTPUT_ONLY_COLUMNS = ("timestamp_ns",)
_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_DIGITS = len(str(_INT64_MAX))
_ROW_COLUMN = "__row"
_NUMBER_RE = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$"
_DECIMAL_RE = r"^(?P<sign>[+-]?)(?P<int>\d+)(?:\.(?P<frac>\d*))?$"
_ABSOLUTE_RE = re.compile(r"^(?:/|[A-Za-z]:|[A-Za-z][A-Za-z0-9+.-]*://)")


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
        return _text_timestamps_ns(array, safe_mult, why)
    else:
        for i in np.flatnonzero(given):
            why[int(i)] = f"timestamp of type {typ} is not a number"
        return np.zeros(n, np.int64), np.zeros(n, bool), why
    ok &= given
    for i in np.flatnonzero(given & ~ok):
        why[int(i)] = f"timestamp {array[int(i)].as_py()!r} is not a finite number in the " \
                      "int64 nanosecond range"
    return ns, ok, why


def _text_timestamps_ns(array: pa.Array, mult: np.ndarray, why: dict[int, str]
                        ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """:func:`_timestamps_ns` for text: exact for plain decimals, through float64 otherwise."""
    text = _clean_text(array)
    given = _valid(text)
    for i in np.flatnonzero(~given):
        why[int(i)] = "timestamp is missing"
    ns, ok, matched = _decimal_text_to_ns(text, mult)
    rest = given & ~matched
    if rest.any():
        values, present, _ = _numbers(text)
        ns_f, ok_f = _floats_to_ns(values, mult)
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




# Row index -> every problem found in that row, in the order the checks ran.
_Problems = dict[int, list[str]]


def _flag(problems: _Problems, mask: np.ndarray, message: Callable[[int], str]) -> None:
    for i in np.flatnonzero(mask):
        problems.setdefault(int(i), []).append(message(int(i)))


def _unit_multipliers(timestamp: pa.Array, unit_column: pa.Array | None,
                      default_unit: str | None, problems: _Problems) -> np.ndarray:
    """Nanoseconds per timestamp unit for each row (0 where the unit is missing or unknown)."""
    unit_raw = _clean_text(unit_column) if unit_column is not None \
        else pa.nulls(len(timestamp), pa.string())
    unit = pc.utf8_lower(unit_raw)
    if default_unit is not None:
        unit = pc.fill_null(unit, default_unit)
    unit_index = pc.index_in(unit, value_set=pa.array(list(TIMESTAMP_UNITS)))
    known = _valid(unit_index)
    index_np = pc.fill_null(unit_index, 0).to_numpy(zero_copy_only=False)
    mult = np.where(known, np.array(list(TIMESTAMP_UNITS.values()), np.int64)[index_np], 0)
    # A native timestamp column carries its own unit: the row's is not needed.
    if not pa.types.is_timestamp(timestamp.type):
        unit_given = _valid(unit)
        _flag(problems, ~unit_given, lambda i: "no timestamp unit: the row has no timestamp_unit "
                                               "and the file has no default (Parquet metadata "
                                               "'timestamp_unit' or default_unit=)")
        _flag(problems, unit_given & ~known,
              lambda i: f"unknown timestamp unit {unit_raw[i].as_py()!r} "
                        f"(expected one of {', '.join(TIMESTAMP_UNITS)})")
    return mult


def _file_references(file_raw: pa.Array, problems: _Problems) -> list[str | None]:
    """The normalised ``file`` of each row; None where it has none or it is malformed."""
    file_values: list[str | None] = [None] * len(file_raw)
    for i in np.flatnonzero(_valid(file_raw)):
        normal, problem = _file_reference(file_raw[int(i)].as_py())
        if problem:
            problems.setdefault(int(i), []).append(problem)
        file_values[int(i)] = normal
    return file_values


class Normaliser:
    """Turns raw batches into normalised chunks; remembers per-file decisions across batches.

    A reader calls :meth:`add` per batch, :meth:`reject_row` for a row it cannot even split into
    columns, and :meth:`finish` once; ``quarantine`` then holds every rejected row in file order.
    """

    def __init__(self, path: Path, default_unit: str | None) -> None:
        self.path = path
        self.default_unit = default_unit
        self.quarantine: list[QuarantineRecord] = []
        self.chunks: list[pa.Table] = []
        # Extra column -> True (numeric), False (text, dropped) or None (no value seen yet).
        self.extra_numeric: dict[str, bool | None] = {}

    def reject_row(self, row: int, detail: str) -> None:
        """Quarantine data row ``row`` (counted from 0 in the file) with ``detail``."""
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

    def _values(self, columns: dict[str, pa.Array], n: int, problems: _Problems
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """The value columns as float64 (NaN: no reading), which rows have a value, which a bad
        one."""
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
            _flag(problems, not_number, lambda i, a=array, c=name:
                  f"{c} value {a[i].as_py()!r} is not numeric")
            _flag(problems, infinite, lambda i, a=array, c=name:
                  f"{c} value {a[i].as_py()!r} is not finite")
            values[name] = np.where(present & ~infinite, numbers, np.nan)
            has_value |= present & ~infinite
            bad_value |= not_number | infinite
        return values, has_value, bad_value

    def add(self, raw: pa.Table, rows: np.ndarray) -> None:
        """Normalise one batch; ``rows`` are the file's row numbers of its rows."""
        n = raw.num_rows
        if n == 0:
            return
        problems: _Problems = {}
        columns = {name: _as_array(raw.column(name)) for name in raw.column_names}
        null_text = pa.nulls(n, pa.string())

        timestamp = columns.get("timestamp", null_text)
        mult = _unit_multipliers(timestamp, columns.get("timestamp_unit"), self.default_unit,
                                 problems)
        ns, _, why = _timestamps_ns(timestamp, mult)
        for i, message in why.items():
            problems.setdefault(i, []).append(message)

        text = {
            "sensor": pc.utf8_lower(_clean_text(columns.get("sensor", null_text))),
            "device_id": _clean_text(columns.get("device_id", null_text)),
        }
        _flag(problems, ~_valid(text["sensor"]), lambda i: "sensor is missing")
        _flag(problems, ~_valid(text["device_id"]), lambda i: "device_id is missing")
        text["session_id"] = _clean_text(columns.get("session_id", null_text))
        text["firmware"] = _clean_text(columns.get("firmware", null_text))
        file_values = _file_references(_clean_text(columns.get("file", null_text)), problems)
        text["file"] = pa.array(file_values, pa.string())
        has_file = np.array([v is not None for v in file_values], dtype=bool)

        values, has_value, bad_value = self._values(columns, n, problems)
        # A row whose only values were rejected already says why; "no values" would be noise.
        _flag(problems, ~has_value & ~has_file & ~bad_value,
              lambda i: "row has no values and no file")

        keep = np.ones(n, dtype=bool)
        for i in sorted(problems):
            keep[i] = False
            self.reject_row(int(rows[i]), "; ".join(problems[i]))
        if keep.any():
            self.chunks.append(_chunk(keep, rows, ns, text, values))

    def finish(self) -> pa.Table:
        """Every good row so far in one table, sorted by (device_id, timestamp_ns, file order)."""
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


def _chunk(keep: np.ndarray, rows: np.ndarray, ns: np.ndarray, text: dict[str, pa.Array],
           values: dict[str, np.ndarray]) -> pa.Table:
    """The kept rows of one batch in normalised columns, plus their file row numbers."""
    mask = pa.array(keep)
    out: dict[str, pa.Array] = {"timestamp_ns": pa.array(ns[keep], pa.int64())}
    for name in ("sensor", "device_id", "session_id", "firmware", "file"):
        out[name] = text[name].filter(mask)
    for name in KNOWN_VALUE_COLUMNS:
        column = values.get(name)
        out[name] = pa.nulls(int(keep.sum()), pa.float64()) if column is None \
            else pa.array(column[keep], pa.float64(), from_pandas=True)
    for name in sorted(set(values) - set(KNOWN_VALUE_COLUMNS)):
        out[name] = pa.array(values[name][keep], pa.float64(), from_pandas=True)
    out[_ROW_COLUMN] = pa.array(rows[keep], pa.int64())
    return pa.table(out)
