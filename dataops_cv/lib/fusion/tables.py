"""Arrow helpers shared by the fusion steps: required columns, string and float columns read by
row index (``-1`` for none), dictionary codes and sorted vocabularies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.fusion.config import FusionError

_S, _F, _I = pa.string(), pa.float64(), pa.int64()


def require_columns(table: pa.Table, columns: tuple[str, ...], what: str) -> None:
    """Raise :class:`FusionError` naming the columns of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise FusionError(f"{what} table lacks column(s) {missing}; found {table.column_names}")


def string_column(table: pa.Table, name: str) -> pa.Array:
    """Column ``name`` as one string array (all null when the table has no such column)."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, _S)
    col = table.column(name)
    col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col if col.type == _S else col.cast(_S)


def floats_at(table: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    """Values of ``name`` at ``rows`` (NaN for null, missing column or row -1)."""
    out = np.full(len(rows), np.nan)
    ok = rows >= 0
    if name not in table.column_names or not ok.any():
        return out
    taken = table.column(name).take(pa.array(rows[ok], _I))
    out[ok] = taken.to_numpy(zero_copy_only=False).astype(np.float64)
    return out


def take_strings(values: pa.Array, rows: np.ndarray) -> pa.Array:
    """``values[rows]``, null where rows is -1."""
    return values.take(pa.array(np.where(rows >= 0, rows, 0), _I, mask=rows < 0))


def codes_in(values: pa.Array, vocab: pa.Array, null_code: int) -> np.ndarray:
    """Index of every value in ``vocab``; ``null_code`` for nulls and values not in it."""
    idx = pc.index_in(values, value_set=vocab)
    return pc.fill_null(idx, null_code).to_numpy(zero_copy_only=False).astype(np.int64)


def sorted_vocab(*arrays: pa.Array) -> pa.Array:
    """Sorted distinct non-null strings of the arrays."""
    values: set[str] = set()
    for a in arrays:
        values.update(v for v in pc.unique(a).to_pylist() if v is not None)
    return pa.array(sorted(values), _S)


def int_array(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """int64 array of ``values``, null where ``valid`` is False."""
    return pa.array(values.astype(np.int64), _I, mask=~valid)


def float_array(values: np.ndarray) -> pa.Array:
    """float64 array of ``values``, null where NaN."""
    return pa.array(values, _F, from_pandas=True)
