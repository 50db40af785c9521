"""Incremental, content-addressed ingest of one partition's images.

Costs scale with what changed: a listed file whose size and fingerprint match the partition's
previous table is carried over without reading a byte; only new or changed files are read,
hashed and decoded once (:func:`dataops_cv.lib.core.images.inspect_image`), then uploaded under
``frames/<sha256[:2]>/<sha256>.<ext>`` (skipped when the key exists: same hash, same bytes).

Nothing is lost: an unusable file goes to the quarantine table with its reason and its bytes are
kept under ``quarantine/``; a file that disappeared from the source keeps its row; a file whose
bytes changed under the same name is quarantined as ``name_conflict`` and the earlier version
stays the frame.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from dataops_cv.lib.acquisition.sources import Source, SourceObject
from dataops_cv.lib.core.concurrency import bounded_map
from dataops_cv.lib.core.images import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason
from dataops_cv.lib.lakefs.layout import frame_key, quarantine_blob_key

FRAMES_SCHEMA = pa.schema(
    [
        ("sha256", pa.string()),
        ("object_key", pa.string()),
        ("source_uri", pa.string()),
        ("source", pa.string()),  # the source's name (CaptureSourceResource.source_name)
        ("rel_path", pa.string()),
        ("size", pa.int64()),
        ("fingerprint", pa.string()),
        ("format", pa.string()),
        ("mode", pa.string()),
        ("channels", pa.int8()),
        ("width", pa.int32()),  # displayed, after EXIF orientation
        ("height", pa.int32()),
        ("stored_width", pa.int32()),
        ("stored_height", pa.int32()),
        ("exif_orientation", pa.int8()),
        ("capture_time", pa.timestamp("us", tz="UTC")),
        ("device_id", pa.string()),
        ("gps_lat", pa.float64()),
        ("gps_lon", pa.float64()),
        ("duplicate_of", pa.string()),  # rel_path of the first file with the same bytes
        # Quality metrics from the ingest decode (dataops_cv.lib.core.images.quality_metrics).
        ("brightness", pa.float32()),
        ("contrast", pa.float32()),
        ("laplacian_var", pa.float32()),
    ]
)

MIME = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "bmp": "image/bmp",
        "tif": "image/tiff", "gif": "image/gif"}


_DERIVED = ("brightness", "contrast", "laplacian_var")
_PACK_ROWS = 2048  # new frame rows packed into Arrow at a time



class FrameRow:
    """One frame's ``FRAMES_SCHEMA`` values in slots, read and set by column name like a dict:
    ~250 bytes a row where a 23-key dict takes 832 before its values, which is what a day of
    50,000 files holds until the table is written."""

    __slots__ = tuple(FRAMES_SCHEMA.names)

    def __init__(self, values: Mapping[str, object]):
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    def __getitem__(self, name: str) -> object:
        return getattr(self, name)

    def __setitem__(self, name: str, value: object) -> None:
        setattr(self, name, value)

    def get(self, name: str, default: object = None) -> object:
        return getattr(self, name, default)


def frames_table(rows: Sequence[FrameRow]) -> pa.Table:
    """``rows`` as a ``FRAMES_SCHEMA`` table, column by column (the same bytes as the dicts'
    ``Table.from_pylist``)."""
    return pa.Table.from_arrays(
        [pa.array([getattr(r, f.name) for r in rows], type=f.type) for f in FRAMES_SCHEMA],
        schema=FRAMES_SCHEMA)


@dataclass
class IngestResult:
    table: pa.Table  # FRAMES_SCHEMA, in rel_path order
    quarantine: list[QuarantineRecord]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict]:
        """The frame rows as dicts (a copy: the table is what the asset writes)."""
        return self.table.to_pylist()


# What the caller provides to store bytes: (key, bytes, content type) -> whether bytes were sent.
PutFn = Callable[[str, bytes, str], bool]
CaptureMeta = Callable[[SourceObject], Mapping[str, object]]


_EPOCH_DIGITS = {10: 1, 13: 1_000, 16: 1_000_000, 19: 1_000_000_000}  # s, ms, us, ns


def rig_capture_meta(obj: SourceObject) -> dict[str, object]:
    """Capture time and camera from a rig's file layout, ``.../<camera>/<epoch>.<ext>``: the
    stem is a UNIX epoch in s, ms, us or ns (by its digit count) and the folder names the device.
    Files not named that way get nothing here (EXIF, if any, is used instead)."""
    path = PurePosixPath(obj.rel_path)
    per_second = _EPOCH_DIGITS.get(len(path.stem)) if path.stem.isdigit() else None
    if per_second is None:
        return {}
    seconds, frac = divmod(int(path.stem), per_second)
    when = dt.datetime.fromtimestamp(seconds, dt.UTC) + dt.timedelta(
        microseconds=frac * 1_000_000 // per_second)
    meta: dict[str, object] = {"capture_time": when}
    if len(path.parts) > 1:
        meta["device_id"] = path.parts[-2]
    return meta


def _frame_row(obj: SourceObject, info: ImageInfo, extra: Mapping[str, object]) -> dict:
    return {
        "sha256": info.sha256,
        "object_key": frame_key(info.sha256, info.ext),
        "source_uri": obj.uri,
        "rel_path": obj.rel_path,
        "size": obj.size,
        "fingerprint": obj.fingerprint,
        "format": info.format,
        "mode": info.mode,
        "channels": info.channels,
        "width": info.width,
        "height": info.height,
        "stored_width": info.stored_width,
        "stored_height": info.stored_height,
        "exif_orientation": info.exif_orientation,
        "capture_time": extra.get("capture_time") or info.capture_time,
        "device_id": extra.get("device_id") or info.device_model,
        "gps_lat": extra.get("gps_lat", info.gps_lat),
        "gps_lon": extra.get("gps_lon", info.gps_lon),
        "duplicate_of": None,
        "brightness": info.brightness,
        "contrast": info.contrast,
        "laplacian_var": info.laplacian_var,
    }


def ingest_images(
    source: Source,
    partition: str,
    previous_rows: Iterable[Mapping[str, object]],
    previous_quarantine: Iterable[Mapping[str, object]],
    put: PutFn,
    asset: str = "raw_frames",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    capture_meta: CaptureMeta | None = rig_capture_meta,
    workers: int = 8,
    progress: Callable[[int, int], None] | None = None,
    source_name: str = "default",
) -> IngestResult:
    """Ingest the images of ``source`` for ``partition``.

    Args:
        source_name: the ``source`` column of every row, carried-over rows too (a renamed
            source renames its whole day).
        previous_rows / previous_quarantine: the partition's tables as of the run's base; their
            size and fingerprint columns decide what is unchanged.
        put: stores one object on the run branch (content-addressed keys are skipped if present).
        capture_meta: per-file capture time / device / GPS known from the source (e.g. a rig's
            folder layout), preferred over EXIF.
    """
    tally = _Tally(prev={str(r["source_uri"]): FrameRow(r) for r in previous_rows},
                   prev_q={str(r["source_uri"]): dict(r) for r in previous_quarantine})
    read = functools.partial(_read_file, source=source, partition=partition, put=put,
                             asset=asset, max_pixels=max_pixels, capture_meta=capture_meta,
                             prev=tally.prev)
    results = bounded_map(read, _to_read(source, tally), workers, name="ingest")
    uploaded, bytes_read = _collect(results, tally, progress)

    kept_missing = [r for uri, r in tally.prev.items() if uri not in tally.listed_uris]
    for r in kept_missing:
        tally.rows[str(r["source_uri"])] = r

    table, duplicates = _day_table(tally, source_name)
    records = sorted(tally.quarantine.values(), key=lambda q: q.source_uri)
    stats = tally.stats
    return IngestResult(
        table=table,
        quarantine=records,
        counts={
            "listed": stats["listed"],
            "ingested": table.num_rows,
            "quarantined": len(records),
            "duplicates": duplicates,
            "read": stats["read"],
            "unchanged": stats["unchanged"],
            "uploaded": uploaded,
            "bytes_read": bytes_read,
            "missing_from_source": len(kept_missing),
            "ignored_non_images": stats["ignored"],
        },
    )


@dataclass
class _Tally:
    """One run's decisions so far, keyed by source URI, next to the previous tables'."""

    prev: dict[str, FrameRow]
    prev_q: dict[str, dict]
    rows: dict[str, FrameRow] = field(default_factory=dict)
    # New rows already packed into Arrow, a batch at a time: a 50,000-file day holds ~400
    # bytes a frame there instead of ~1.5 KB of Python objects.
    packed: list[pa.Table] = field(default_factory=list)
    fresh: list[FrameRow] = field(default_factory=list)

    def add_new(self, row: FrameRow) -> None:
        self.fresh.append(row)
        if len(self.fresh) >= _PACK_ROWS:
            self.packed.append(frames_table(self.fresh))
            self.fresh = []
    quarantine: dict[str, QuarantineRecord] = field(default_factory=dict)
    listed_uris: set[str] = field(default_factory=set)
    stats: dict[str, int] = field(
        default_factory=lambda: {"listed": 0, "ignored": 0, "unchanged": 0, "read": 0})


class _Read(NamedTuple):
    """What reading one file gave: its frame row or its quarantine record."""

    obj: SourceObject
    row: FrameRow | None
    record: QuarantineRecord | None
    uploaded: bool
    nbytes: int


def _to_read(source: Source, tally: _Tally) -> Iterator[SourceObject]:
    """The listing, streamed: unchanged files are settled here, the rest go on to be read
    (no list of every file is held)."""
    stats = tally.stats
    for obj in source.list():
        if not obj.is_image:
            stats["ignored"] += 1  # annotation files and sensor logs have assets of their own
            continue
        stats["listed"] += 1
        tally.listed_uris.add(obj.uri)
        old = tally.prev.get(obj.uri)
        old_q = tally.prev_q.get(obj.uri)
        # A row written before a column existed is read again, to fill it in.
        if (old and old["size"] == obj.size and old["fingerprint"] == obj.fingerprint
                and all(old.get(c) is not None for c in _DERIVED)):
            tally.rows[obj.uri] = old
            stats["unchanged"] += 1
        elif (old_q and old_q.get("size") == obj.size
              and old_q.get("fingerprint") == obj.fingerprint):
            tally.quarantine[obj.uri] = QuarantineRecord(
                **{**old_q, "reason": Reason(old_q["reason"])})
            if old:  # a name conflict seen before: the earlier version stays the frame
                tally.rows[obj.uri] = old
            stats["unchanged"] += 1
        else:
            stats["read"] += 1
            yield obj


def _read_file(obj: SourceObject, *, source: Source, partition: str, put: PutFn, asset: str,
               max_pixels: int, capture_meta: CaptureMeta | None,
               prev: Mapping[str, Mapping[str, object]]) -> _Read:
    """Read, inspect and store one new or changed file (runs in a worker thread)."""
    data = source.read(obj)
    result = inspect_image(data, max_pixels=max_pixels)
    if not isinstance(result, ImageInfo):
        key = quarantine_blob_key(asset, partition, result.sha256) if result.sha256 else None
        if key:
            put(key, data, "application/octet-stream")
        return _Read(obj, None, QuarantineRecord(obj.uri, "image", result.reason, result.detail,
                                                 result.sha256, key, obj.size, obj.fingerprint),
                     False, len(data))
    old = prev.get(obj.uri)
    if old and old["sha256"] != result.sha256:
        key = quarantine_blob_key(asset, partition, result.sha256)
        put(key, data, MIME.get(result.ext, "application/octet-stream"))
        return _Read(obj, None, QuarantineRecord(
            obj.uri, "image", Reason.NAME_CONFLICT,
            f"bytes changed under the same name: was {old['sha256']}, now {result.sha256}; "
            "the earlier version stays the frame", result.sha256, key, obj.size,
            obj.fingerprint), False, len(data))
    row = FrameRow(_frame_row(obj, result, capture_meta(obj) if capture_meta else {}))
    uploaded = put(row["object_key"], data, MIME.get(result.ext, "application/octet-stream"))
    return _Read(obj, row, None, uploaded, len(data))


def _collect(results: Iterable[_Read], tally: _Tally,
             progress: Callable[[int, int], None] | None) -> tuple[int, int]:
    """File each read into the tally; (objects uploaded, bytes read)."""
    uploaded = bytes_read = done = 0
    for obj, row, record, sent, nbytes in results:
        bytes_read += nbytes
        uploaded += sent
        if row is not None:
            tally.add_new(row)
        else:
            assert record is not None
            tally.quarantine[obj.uri] = record
            if record.reason == Reason.NAME_CONFLICT:
                tally.rows[obj.uri] = tally.prev[obj.uri]
        done += 1
        if progress and done % 500 == 0:
            progress(done, tally.stats["read"])
    if progress and done:
        progress(done, tally.stats["read"])
    return uploaded, bytes_read


def _day_table(tally: _Tally, source_name: str) -> tuple[pa.Table, int]:
    """Every frame row of the day in ``rel_path`` order, ``source`` set to ``source_name`` and
    ``duplicate_of`` to the ``rel_path`` of the first row with the same bytes; and how many
    rows are such duplicates."""
    table = pa.concat_tables([*tally.packed, frames_table(tally.fresh),
                              frames_table(list(tally.rows.values()))])
    tally.packed, tally.fresh, tally.rows = [], [], {}
    table = table.take(pc.sort_indices(table, [("rel_path", "ascending")]))
    first_by_sha: dict[str, str] = {}
    duplicate_of: list[str | None] = []
    for sha, rel in zip(table.column("sha256").to_pylist(), table.column("rel_path").to_pylist(),
                        strict=True):
        first = first_by_sha.setdefault(sha, rel)
        duplicate_of.append(first if first != rel else None)
    n = table.num_rows
    table = table.set_column(table.schema.get_field_index("source"), "source",
                             pa.array([source_name] * n, pa.string()))
    table = table.set_column(table.schema.get_field_index("duplicate_of"), "duplicate_of",
                             pa.array(duplicate_of, pa.string()))
    return table.combine_chunks(), sum(d is not None for d in duplicate_of)