"""Small Parquet tables with byte-stable encoding: the same rows always give the same bytes, so a
re-run with unchanged inputs leaves an empty lakeFS diff."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


def to_parquet_bytes(rows: Sequence[dict], schema: pa.Schema) -> bytes:
    return table_to_parquet_bytes(pa.Table.from_pylist(list(rows), schema=schema))


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=True, store_schema=True)
    return buf.getvalue()


def from_parquet_bytes(data: bytes, columns: Sequence[str] | None = None) -> pa.Table:
    """The table in ``data``; with ``columns``, only those that exist in it are decoded."""
    if columns is None:
        return pq.read_table(io.BytesIO(data))
    present = set(pq.read_schema(io.BytesIO(data)).names)
    return pq.read_table(io.BytesIO(data), columns=[c for c in columns if c in present])
