"""The one I/O seam of the pipeline: what a step reads and writes on lakeFS.

* :class:`RefView` reads one ref (a commit, a tag or a branch): objects, tables as rows or Arrow,
  JSON, listings of an asset's days, and the lakeFS checksums that say whether inputs changed.
* :class:`RunBranch` is a view of a run's own branch that also writes: objects, content-addressed
  objects (uploaded once), tables, JSON, and one commit per materialization.

Every run writes on ``dagster-run-<run_id>``, created from a fixed base (main's commit when the
run was launched, or main's head when the first step of the run starts). Creation is idempotent,
so every step process of a multiprocess run may call :func:`ensure_run_branch`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from dataops_cv.lib.core.concurrency import bounded_map
from dataops_cv.lib.core.quarantine import QUARANTINE_SCHEMA, QuarantineRecord
from dataops_cv.lib.core.tables import (
    PARQUET_CONTENT_TYPE,
    from_parquet_bytes,
    table_to_parquet_bytes,
    to_parquet_bytes,
)
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.store import CommitInfo, LakeFSStore, ObjectInfo

RUN_BRANCH_PREFIX = "dagster-run-"
JSON_CONTENT_TYPE = "application/json"
# Concurrent uploads per step: each lakeFS call costs milliseconds of server-side latency, so a
# small pool hides it (measured ~7x on small objects) while bounding memory to 2x this many
# objects in flight.
UPLOAD_WORKERS = 8

Data = bytes | Path | Callable[[], IO[bytes]]


def run_branch_name(run_id: str) -> str:
    """lakeFS branch ids allow letters, digits, '_' and '-': Dagster run ids (UUIDs) fit as they are."""
    return f"{RUN_BRANCH_PREFIX}{run_id}"


def ensure_run_branch(store: LakeFSStore, run_id: str, base: str, main: str = "main") -> str:
    """Create the run's branch at ``base`` unless it exists; return the branch name.

    Args:
        base: a commit id recorded when the run was launched, or the main branch's name when no
            base was recorded (the first step to get here then fixes it for the whole run).
    """
    branch = run_branch_name(run_id)
    if not store.branch_exists(branch):
        store.create_branch(branch, source=base or main, exist_ok=True)
    return branch


@dataclass
class RefView:
    """Reads of one lakeFS ref. On a branch, reads see its committed and staged objects."""

    store: LakeFSStore
    ref: str

    def at(self, ref: str) -> RefView:
        """A view of another ref of the same repository (e.g. a pinned labels commit)."""
        return RefView(self.store, ref)

    def stat(self, path: str) -> ObjectInfo | None:
        return self.store.stat_object(self.ref, path)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def read(self, path: str) -> bytes:
        return self.store.get_object(self.ref, path)

    def read_json(self, path: str, default: Any = None) -> Any:
        """The JSON document at ``path``, or ``default`` when there is none."""
        return json.loads(self.read(path)) if self.exists(path) else default

    def table(self, path: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """The Parquet table at ``path`` (only ``columns`` that it has), or None when absent."""
        if not self.exists(path):
            return None
        return from_parquet_bytes(self.read(path), columns)

    def rows(self, path: str, columns: Sequence[str] | None = None) -> list[dict]:
        """The rows of the Parquet table at ``path``, or [] when there is none."""
        table = self.table(path, columns)
        return [] if table is None else table.to_pylist()

    def day_rows(self, asset: str, partition: str) -> list[dict]:
        """The rows of ``asset``'s table of one day, or [] when the day has none."""
        return self.rows(layout.table_key(asset, partition))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.store.list_objects(self.ref, prefix)

    def partitions(self, asset: str) -> list[str]:
        """Every day that has a table of ``asset``, oldest first."""
        listing = (o.path for o in self.list(layout.partition_prefix(asset)))
        return layout.table_partitions(listing, asset)

    def earlier_partitions(self, asset: str, partition: str, n: int) -> list[str]:
        """The ``n`` latest earlier days of ``partition``'s source with a table of ``asset``,
        oldest first."""
        listing = (o.path for o in self.list(layout.partition_prefix(asset)))
        return layout.earlier_partitions(listing, asset, partition, n)

    def window_partitions(self, asset: str, partition: str, days: int) -> list[str]:
        """Every source's partitions of ``asset`` in the ``days`` latest days up to
        ``partition``'s (0: all days), ``partition`` included."""
        listing = (o.path for o in self.list(layout.partition_prefix(asset)))
        return layout.window_partitions(listing, asset, partition, days)

    def checksums(self, paths: Iterable[str]) -> dict[str, str | None]:
        """lakeFS's checksum of each path (None when absent): equal checksums, equal bytes, so
        they say whether inputs changed without reading them."""
        return {p: (s.checksum if (s := self.stat(p)) else None) for p in paths}

    def last_change(self, path: str) -> CommitInfo | None:
        """The newest commit reachable from this ref that changed ``path``."""
        return self.store.last_change(self.ref, path)


@dataclass
class RunBranch(RefView):
    """A run's branch: reads as of its base plus this run's writes, and the writes of one
    materialization, committed together with the run's metadata."""

    commit_metadata: Mapping[str, str] = field(default_factory=dict)
    written: list[ObjectInfo] = field(default_factory=list)
    skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def branch(self) -> str:
        return self.ref

    def put(self, path: str, data: Data, content_type: str = "application/octet-stream"
            ) -> ObjectInfo:
        info = self.store.put_object(self.branch, path, data, content_type)
        assert info is not None  # unconditional uploads always store
        with self._lock:
            self.written.append(info)
        return info

    def put_rows(self, path: str, rows: Sequence[dict], schema: pa.Schema) -> ObjectInfo:
        """Write ``rows`` as a byte-stable Parquet table (same rows, same bytes)."""
        return self.put(path, to_parquet_bytes(rows, schema), PARQUET_CONTENT_TYPE)

    def put_table(self, path: str, table: pa.Table) -> ObjectInfo:
        return self.put(path, table_to_parquet_bytes(table), PARQUET_CONTENT_TYPE)

    def put_json(self, path: str, doc: Any, indent: int | None = None) -> ObjectInfo:
        """Write ``doc`` as JSON with sorted keys, so equal documents are equal bytes."""
        return self.put(path, json.dumps(doc, sort_keys=True, indent=indent).encode(),
                        JSON_CONTENT_TYPE)

    def put_quarantine(self, asset: str, partition: str,
                       records: Iterable[QuarantineRecord]) -> str:
        """Write the day's quarantine table of ``asset``; return its path."""
        path = layout.quarantine_key(asset, partition)
        self.put_rows(path, [q.row() for q in records], QUARANTINE_SCHEMA)
        return path

    def put_content_addressed(self, path: str, data: Data, content_type: str) -> bool:
        """Upload unless the key already exists; return whether a new object was stored.

        The key is derived from the content hash, so an existing key already holds these bytes.
        Existence is a stat, then the upload is unconditional: lakeFS v1.84 can lose a
        conditional (``If-None-Match``) upload that races a commit of the same branch by
        another step (the retry into the new staging token sees the entry in the sealed one,
        answers 412, and the sealed token is then dropped). An unconditional retry always
        lands. Two writers of the same key write the same bytes, so the stat's window is
        harmless.
        """
        if self.exists(path):
            with self._lock:
                self.skipped += 1
            return False
        self.put(path, data, content_type)
        return True

    def put_content_addressed_many(self, items: Iterable[tuple[str, Data, str]],
                                   workers: int = UPLOAD_WORKERS) -> int:
        """Upload ``(path, data, content_type)`` items concurrently, skipping existing keys.

        Consumes ``items`` lazily with at most ``2 * workers`` objects in flight, so a partition
        is never held in memory. Returns how many objects were uploaded. The first failure
        propagates (after in-flight uploads finish); nothing is committed by this call.
        """
        def put(item: tuple[str, Data, str]) -> bool:
            return self.put_content_addressed(*item)

        return sum(bounded_map(put, items, workers, name="lakefs-put"))

    def unchanged(self, inputs_path: str, inputs: Mapping[str, Any],
                  outputs: Iterable[str]) -> bool:
        """Whether ``inputs_path`` already records exactly ``inputs`` (compared as JSON) and
        every output exists: then the step has nothing to recompute."""
        recorded = self.read_json(inputs_path)
        return (recorded is not None and recorded == json.loads(json.dumps(inputs))
                and all(self.exists(p) for p in outputs))

    def commit(self, message: str, extra: Mapping[str, str] | None = None) -> CommitInfo:
        """Commit what was staged; with nothing staged, an empty commit still records the step."""
        meta = {**self.commit_metadata, **(extra or {})}
        return self.store.commit(self.branch, message, meta, allow_empty=True)
