"""Ingest one drop's sensor logs: normalise every log (see
:mod:`dataops_cv.lib.acquisition.sensor_logs.format`), store referenced blobs (LiDAR sweeps, ...)
content-addressed under ``sensors/``, and carry the rows of unchanged logs over from the previous
table without reading them again."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.acquisition.sensor_logs.format import SENSOR_LOG_SCHEMA
from dataops_cv.lib.acquisition.sensor_logs.reader import read_sensor_log
from dataops_cv.lib.acquisition.sources import SENSOR_LOG_EXTENSIONS, Source, SourceObject
from dataops_cv.lib.core.concurrency import bounded_map
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason
from dataops_cv.lib.lakefs.layout import sensor_blob_key

LOG_PATH = "log_path"
OBJECT_KEY = "object_key"
MANIFEST_SCHEMA = pa.schema([("log_path", pa.string()), ("size", pa.int64()),
                             ("fingerprint", pa.string()), ("rows", pa.int64())])
PutFn = Callable[[str, bytes, str], bool]  # called from several threads at once
BLOB_WORKERS = 8



def empty_sensor_table() -> pa.Table:
    schema = SENSOR_LOG_SCHEMA.append(pa.field(LOG_PATH, pa.string())).append(
        pa.field(OBJECT_KEY, pa.string()))
    return schema.empty_table()


@dataclass
class SensorIngest:
    table: pa.Table
    manifest: list[dict]
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def ingest_sensor_logs(
    source: Source,
    previous: pa.Table | None,
    previous_manifest: Iterable[Mapping[str, object]],
    put: PutFn,
) -> SensorIngest:
    """Normalise the drop's ``*.parquet|csv|jsonl`` logs into one table sorted by device and time.

    Each row gains ``log_path`` (the log it came from) and ``object_key`` (where its referenced
    file is stored, if it has one). A reference to a file that is not in the drop is quarantined
    with the row's log and index.
    """
    listing = {o.rel_path: o for o in source.list()}
    logs = [o for o in listing.values() if o.suffix in SENSOR_LOG_EXTENSIONS]
    before = {str(m["log_path"]): m for m in previous_manifest}
    parts: list[pa.Table] = []
    manifest: list[dict] = []
    quarantine: list[QuarantineRecord] = []
    read = carried = blobs_uploaded = 0
    for log in sorted(logs, key=lambda o: o.rel_path):
        old = before.get(log.rel_path)
        if (previous is not None and old and old["size"] == log.size
                and old["fingerprint"] == log.fingerprint):
            parts.append(previous.filter(pc.equal(previous[LOG_PATH], log.rel_path)))
            manifest.append(dict(old))
            carried += 1
            continue
        read += 1
        table, bad = _read_log(source, log)
        quarantine.extend(bad)
        table, missing, uploaded = _store_blobs(source, listing, log, table, put)
        quarantine.extend(missing)
        blobs_uploaded += uploaded
        parts.append(table)
        manifest.append({"log_path": log.rel_path, "size": log.size,
                         "fingerprint": log.fingerprint, "rows": table.num_rows})
    if parts:
        combined = pa.concat_tables(parts, promote_options="permissive")
        order = pc.sort_indices(combined, sort_keys=[("device_id", "ascending"),
                                                     ("timestamp_ns", "ascending"),
                                                     (LOG_PATH, "ascending")])
        combined = combined.take(order)
    else:
        combined = empty_sensor_table()
    return SensorIngest(
        table=combined,
        manifest=manifest,
        quarantine=sorted(quarantine, key=lambda q: q.source_uri),
        counts={"sensor_logs": len(logs), "sensor_logs_read": read,
                "sensor_logs_unchanged": carried, "sensor_rows": combined.num_rows,
                "sensor_blobs_uploaded": blobs_uploaded,
                "sensor_rows_quarantined": len(quarantine)},
    )


def _read_log(source: Source, log: SourceObject) -> tuple[pa.Table, list[QuarantineRecord]]:
    # The reader streams from a path; remote logs are spooled to a temp file first.
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / PurePosixPath(log.rel_path).name
        local.write_bytes(source.read(log))
        table, bad = read_sensor_log(local)
    # Point quarantine records at the source, not at the temp copy.
    bad = [QuarantineRecord(log.uri + q.source_uri[len(str(local)):], q.kind, q.reason,
                            q.detail) for q in bad]
    return table.append_column(LOG_PATH, pa.array([log.rel_path] * table.num_rows,
                                                  pa.string())), bad


def _store_blobs(
    source: Source, listing: Mapping[str, SourceObject], log: SourceObject, table: pa.Table,
    put: PutFn, workers: int = BLOB_WORKERS,
) -> tuple[pa.Table, list[QuarantineRecord], int]:
    """Store every file the log's rows reference (read, hashed and uploaded in ``workers``
    threads, a bounded number in flight: hashing and I/O release the GIL) and add each row's
    ``object_key``; a row whose file is not in the drop is quarantined."""
    refs = table["file"].to_pylist() if "file" in table.column_names else [None] * table.num_rows
    base = PurePosixPath(log.rel_path).parent
    rels = [None if not ref else (str(base / ref) if str(base) != "." else ref) for ref in refs]
    wanted = sorted({rel for rel in rels if rel is not None and rel in listing})

    def store(rel: str) -> tuple[str, str, bool]:
        data = source.read(listing[rel])
        key = sensor_blob_key(hashlib.sha256(data).hexdigest(), PurePosixPath(rel).suffix)
        return rel, key, put(key, data, "application/octet-stream")

    stored: dict[str, str] = {}
    uploaded = 0
    for rel, key, new in bounded_map(store, wanted, workers, name="sensor-blob"):
        stored[rel] = key
        uploaded += new
    keys: list[str | None] = []
    keep: list[bool] = []
    missing: list[QuarantineRecord] = []
    for i, (ref, rel) in enumerate(zip(refs, rels)):
        if rel is not None and rel not in stored:
            missing.append(QuarantineRecord(
                f"{log.uri}#row={i}", "sensor_record", Reason.MALFORMED_SENSOR_RECORD,
                f"file {ref!r} is referenced but not in the drop"))
            keys.append(None)
            keep.append(False)
            continue
        keys.append(None if rel is None else stored[rel])
        keep.append(True)
    table = table.append_column(OBJECT_KEY, pa.array(keys, pa.string()))
    return table.filter(pa.array(keep, pa.bool_())), missing, uploaded
