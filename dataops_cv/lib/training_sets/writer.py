"""Training sets: leakage-free stratified splits, a per-sample manifest and Parquet image shards.

A training set lives under ``trainsets/<name>/<version>/`` on lakeFS::

    manifest.parquet        one row per sample (MANIFEST_SCHEMA), ordered by (split, sample_id)
    annotations.parquet     one row per box (ANNOTATIONS_SCHEMA), in manifest order
    shards/<split>-<nnnnn>.parquet
                            the samples' original encoded image bytes and boxes (SHARD_SCHEMA),
                            in manifest order, in small row groups so a reader can stream them

Augmented variants are recipes: their manifest rows carry ``augmented_from`` (the source sample,
in the same split) and ``aug_params`` (every parameter), and no shard — a reader renders them on
the fly from the source's bytes (:func:`dataops_cv.lib.augmentation.stream.render_pixels`),
byte-identical to a stored render, so a set with K variants per sample weighs what its originals
weigh. ``content_sha256`` of a variant is its PNG's digest when augmentation stored one, else null.

The manifest's ``shard``/``shard_row`` columns say where each original is, ``shard_sha256`` is the
SHA-256 of that whole shard file (a reader verifies a downloaded shard against it without any other
file), and ``image_offset``/``image_size`` locate the sample's image bytes inside the shard file:
the image column is stored uncompressed and PLAIN-encoded, so each image lies in the file verbatim
and a reader can fetch one sample without decoding its row group (what makes shuffled access as
cheap as sequential). A reader checks such a slice against ``content_sha256``.

The version is ``v<YYYYMMDD>-<10 hex>`` of a digest over the manifest bytes and the shard digests,
so the same inputs give the same version and any changed byte gives a new one; the publish step
tags the merged commit ``trainset-<name>-<version>``.

Shared shards
-------------
Given a ``shard_dir`` (the asset passes ``trainsets/<name>/shards``), shards are instead shared
by the versions of a name, per split and capture day (and source), and content-addressed: a
*pack* of originals of one split of one day is written under
``<shard_dir>/<split>/date=<day>/source=<source>/<key>-<nnnnn>.parquet``, where ``key`` digests
every row digest of the pack (the writer's format, the shard limits, the split and each sample's
id, content digest, size and boxes), beside ``<key>.index.parquet`` naming where each sample
landed and its row digest. The manifest's ``shard`` then holds the repository key. A new version
keeps every original that a pack of the previous version holds with the same row digest where it
is, and packs only the rest of each day: tomorrow's set writes only tomorrow's shards (with
sticky splits, below, yesterday's samples do not move), and a day's late frames one small pack.

Splitting
---------
:func:`assign_splits` keeps every leakage group (session + near-duplicate cluster) in one split and
stratifies by class. Given the splits an earlier version gave (``prior``), splits are sticky: a
group holding a sample seen before goes where that sample was (test before val before train when
a new near-duplicate joins samples of several splits, so an evaluation sample never moves into
train), and only groups of new samples are balanced. :func:`plan_training_set` applies it to
originals only; an augmented variant follows its source and is kept only when the source is in
``train``: augmenting evaluation samples would leak nothing, but val/test must measure the model
on originals.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from dataops_cv.lib.core.tables import to_parquet_bytes
from dataops_cv.lib.lakefs import layout

SPLITS = ("train", "val", "test")
MANIFEST_PATH = "manifest.parquet"
INPUTS_PATH = "inputs.json"  # the tables and settings it was built from (the asset writes it)
ANNOTATIONS_PATH = "annotations.parquet"
SHARDS_DIR = "shards"

DEFAULT_MAX_SHARD_BYTES = 64 << 20
DEFAULT_MAX_SHARD_ROWS = 4096
DEFAULT_ROW_GROUP_ROWS = 32

NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_NAME_LEN = 64
VERSION_RE = re.compile(r"^v\d{8}-[0-9a-f]{10}$")
TAG_PREFIX = "trainset-"
_TAG_RE = re.compile(r"^trainset-([a-z0-9]+(?:-[a-z0-9]+)*)-(v\d{8}-[0-9a-f]{10})$")
_FRACTION_TOLERANCE = 1e-6

BOX_TYPE = pa.struct([
    ("annotation_id", pa.string()),
    ("class_name", pa.string()),
    ("class_id", pa.int32()),
    ("x_min", pa.float64()),
    ("y_min", pa.float64()),
    ("x_max", pa.float64()),
    ("y_max", pa.float64()),
])

SHARD_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("content_sha256", pa.string()),
    ("image", pa.binary()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("boxes", pa.list_(BOX_TYPE)),
])

MANIFEST_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("content_sha256", pa.string()),
    ("object_key", pa.string()),
    ("date", pa.string()),
    ("source", pa.string()),  # the capture source of the frame
    ("rel_path", pa.string()),
    ("session_id", pa.string()),
    ("camera", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("split", pa.string()),
    ("group_key", pa.string()),
    ("classes", pa.list_(pa.string())),
    ("n_boxes", pa.int32()),
    ("label_source", pa.string()),
    ("label_revision", pa.string()),
    ("augmented_from", pa.string()),
    ("aug_policy_version", pa.string()),
    ("aug_input_key", pa.string()),
    ("aug_params", pa.string()),
    ("shard", pa.string()),
    ("shard_row", pa.int32()),
    ("shard_sha256", pa.string()),
    ("image_offset", pa.int64()),
    ("image_size", pa.int64()),
])

ANNOTATIONS_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("annotation_id", pa.string()),
    ("class_name", pa.string()),
    ("class_id", pa.int32()),
    ("x_min", pa.float64()),
    ("y_min", pa.float64()),
    ("x_max", pa.float64()),
    ("y_max", pa.float64()),
    ("split", pa.string()),
])

# Encoded images do not shrink under zstd; stored uncompressed (and without dictionary encoding)
# each lies verbatim in the file, where the manifest's image_offset points. Everything else is
# small and compresses well.
_SHARD_COMPRESSION = {
    "sample_id": "ZSTD", "content_sha256": "ZSTD", "image": "NONE", "width": "ZSTD",
    "height": "ZSTD", **{f"boxes.list.element.{f.name}": "ZSTD" for f in BOX_TYPE},
}
# Generous upper bounds on what Parquet adds around the values, used to close a shard before it
# passes max_shard_bytes; the encoded size is checked afterwards, so these only need to be close.
_ROW_OVERHEAD = 160
_BOX_OVERHEAD = 64
_FILE_OVERHEAD = 8192
_ROW_GROUP_OVERHEAD = 2048


class ContentMismatchError(ValueError):
    """Fetched image bytes do not hash to the sample's recorded ``content_sha256``."""


@dataclass(frozen=True)
class Box:
    """One annotated box, xyxy in pixels of the displayed (EXIF-oriented) image."""

    annotation_id: str
    class_name: str
    class_id: int
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True)
class SampleIn:
    """One sample the training-set asset hands over: an original or an augmented variant."""

    sample_id: str
    content_sha256: str
    object_key: str  # lakeFS path of the image bytes
    date: str  # capture day
    rel_path: str
    session_id: str | None
    camera: str | None
    width: int
    height: int
    group_key: str  # leakage group (session + near-duplicate cluster)
    boxes: tuple[Box, ...]
    label_source: str  # labeled | imported
    label_revision: str  # lakeFS commit id of the label snapshot
    augmented_from: str | None = None  # sample_id of the source of an augmented variant
    aug_policy_version: str | None = None
    aug_input_key: str | None = None
    aug_params: str | None = None  # JSON
    source: str | None = None  # the capture source (None: a single-source repository's day)


@dataclass(frozen=True)
class PlannedSample:
    """A sample with the split it was assigned."""

    sample: SampleIn
    split: str


class TrainingSetFile(NamedTuple):
    """One file of a training set: ``path`` relative to the training-set root, or for a shared
    shard (and its index) the repository key."""

    path: str
    data: bytes
    sha256: str
    shared: bool = False


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """``fractions`` validated, in ``SPLITS`` order (missing splits get 0).

    Raises:
        ValueError: an unknown split name, a negative fraction, or fractions not summing to 1.
    """
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split name(s) {unknown} in fractions; expected a subset of "
                         f"{list(SPLITS)}")
    out = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    negative = {s: f for s, f in out.items() if not f >= 0.0}
    if negative:
        raise ValueError(f"split fractions must be >= 0, got {negative}")
    total = sum(out.values())
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise ValueError(f"split fractions must sum to 1, got {dict(fractions)} (sum {total!r})")
    return out


def _group_order_key(seed: str, group: str) -> tuple[bytes, str]:
    return hashlib.sha256(f"{seed}\x1f{group}".encode()).digest(), group


# Where a group holds samples an earlier version put in several splits, it goes to the first of
# these: evaluation samples never move into train (that would leak what a model was judged on).
_STICKY_PRECEDENCE = ("test", "val", "train")


def assign_splits(groups: Sequence[str], classes: Sequence[Sequence[str]],
                  fractions: Mapping[str, float], seed: str,
                  prior: Sequence[str | None] | None = None) -> list[str]:
    """The split of each sample, leakage-free and stratified by class.

    All samples of a group get the same split. Groups are visited in an order fixed by
    ``sha256(seed, group)``; each goes to the split furthest below its target share, summed over
    the classes the group holds (each class counted as a share of its own total, so a rare class
    weighs as much as a common one), with the sample-count deficit as tie-break and ``SPLITS``
    order after that. Splits with fraction 0 get nothing.

    Args:
        groups: leakage group per sample.
        classes: per sample, the class names of its boxes (repeat a name per box to weigh classes
            by boxes, as :func:`plan_training_set` does).
        fractions: target share of samples per split name; must sum to 1.
        seed: any string; a different seed gives a different (equally stratified) assignment.
        prior: per sample, the split an earlier version gave it (None: new). A group with any
            prior split keeps it (``_STICKY_PRECEDENCE`` when its samples had several), whatever
            the fractions; the new groups are then balanced around them.

    Raises:
        ValueError: bad fractions, ``groups``/``classes``/``prior`` of different lengths, or an
            unknown split in ``prior``.
    """
    targets = check_fractions(fractions)
    if len(groups) != len(classes):
        raise ValueError(f"groups and classes must be per sample, got {len(groups)} groups and "
                         f"{len(classes)} class lists")
    if prior is not None and len(prior) != len(groups):
        raise ValueError(f"prior must be per sample, got {len(prior)} for {len(groups)} samples")
    candidates = [s for s in SPLITS if targets[s] > 0.0]
    rank = {s: i for i, s in enumerate(SPLITS)}
    sizes: Counter[str] = Counter(groups)
    held: dict[str, Counter[str]] = {}
    for group, names in zip(groups, classes):
        held.setdefault(group, Counter()).update(names)
    class_total: Counter[str] = Counter()
    for counts in held.values():
        class_total.update(counts)
    n = len(groups)
    have = {s: Counter() for s in SPLITS}
    size_have = dict.fromkeys(SPLITS, 0)
    chosen = _sticky_groups(groups, prior)
    for group, split in chosen.items():
        have[split].update(held[group])
        size_have[split] += sizes[group]
    for group in sorted(held, key=lambda g: _group_order_key(seed, g)):
        if group in chosen:
            continue
        names = sorted(held[group])

        def score(split: str, names: list[str] = names) -> tuple[float, float, int]:
            t = targets[split]
            need = sum((t * class_total[c] - have[split][c]) / class_total[c] for c in names)
            return need, t * n - size_have[split], -rank[split]

        best = max(candidates, key=score)
        chosen[group] = best
        have[best].update(held[group])
        size_have[best] += sizes[group]
    return [chosen[g] for g in groups]


def _sticky_groups(groups: Sequence[str], prior: Sequence[str | None] | None) -> dict[str, str]:
    """The split of every group holding a sample with a prior split."""
    if prior is None:
        return {}
    unknown = sorted({p for p in prior if p is not None} - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown} in prior; expected {list(SPLITS)}")
    had: dict[str, set[str]] = {}
    for group, split in zip(groups, prior):
        if split is not None:
            had.setdefault(group, set()).add(split)
    return {g: next(s for s in _STICKY_PRECEDENCE if s in splits) for g, splits in had.items()}


def plan_training_set(samples: Iterable[SampleIn], fractions: Mapping[str, float],
                      seed: str, prior: Mapping[str, str] | None = None
                      ) -> list[PlannedSample]:
    """Assign splits to originals and place augmented variants; ordered by (split, sample_id).

    Originals (``augmented_from`` None) are split by :func:`assign_splits` on their
    ``group_key`` and box classes. A variant takes its source's split and is dropped unless that
    is ``train``: evaluation sets hold originals only. Variants do not count towards the
    stratification, since most of them are dropped from val/test anyway. ``prior`` (sample id
    -> split, from an earlier version) makes the originals' splits sticky (:func:`assign_splits`).

    Raises:
        ValueError: duplicate ``sample_id``, a variant whose source is not among the originals,
            or bad fractions.
    """
    samples = list(samples)
    seen: set[str] = set()
    for s in samples:
        if s.sample_id in seen:
            raise ValueError(f"sample_id {s.sample_id!r} appears more than once in the training "
                             "set input")
        seen.add(s.sample_id)
    originals = [s for s in samples if s.augmented_from is None]
    splits = assign_splits([s.group_key for s in originals],
                           [[b.class_name for b in s.boxes] for s in originals], fractions, seed,
                           None if prior is None else [prior.get(s.sample_id) for s in originals])
    split_of = {s.sample_id: split for s, split in zip(originals, splits)}
    planned = [PlannedSample(s, split) for s, split in zip(originals, splits)]
    for s in samples:
        if s.augmented_from is None:
            continue
        source_split = split_of.get(s.augmented_from)
        if source_split is None:
            what = "is itself a variant" if s.augmented_from in seen else "is not in the input"
            raise ValueError(f"augmented sample {s.sample_id!r}: its source "
                             f"{s.augmented_from!r} {what}; a variant must derive from an "
                             "original in the same training set")
        if source_split == "train":
            planned.append(PlannedSample(s, "train"))
    return sorted(planned, key=_manifest_order)


def _manifest_order(p: PlannedSample) -> tuple[int, str]:
    return SPLITS.index(p.split), p.sample.sample_id


def shard_path(split: str, index: int) -> str:
    """Path of a split's ``index``-th shard, relative to the training-set root."""
    return f"{SHARDS_DIR}/{split}-{index:05d}.parquet"


def _sorted_boxes(s: SampleIn) -> list[Box]:
    ids = [b.annotation_id for b in s.boxes]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"sample {s.sample_id}: annotation id(s) {dup} appear more than once")
    for b in s.boxes:
        if not isinstance(b.class_id, int):
            raise ValueError(f"sample {s.sample_id}, annotation {b.annotation_id}: class_id must "
                             f"be an int, got {b.class_id!r}")
    # Sorted so the bytes do not depend on the order the labels happened to be read in.
    return sorted(s.boxes, key=lambda b: b.annotation_id)


def _box_dict(b: Box) -> dict:
    return {"annotation_id": b.annotation_id, "class_name": b.class_name,
            "class_id": b.class_id, "x_min": float(b.x_min), "y_min": float(b.y_min),
            "x_max": float(b.x_max), "y_max": float(b.y_max)}


def encode_shard(rows: Sequence[dict], row_group_rows: int = DEFAULT_ROW_GROUP_ROWS) -> bytes:
    """Shard rows (SHARD_SCHEMA dicts) as Parquet bytes; the same rows give the same bytes."""
    table = pa.Table.from_pylist(list(rows), schema=SHARD_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_rows, compression=_SHARD_COMPRESSION,
                   use_dictionary=False, write_statistics=False, store_schema=True)
    return buf.getvalue()


def _row_estimate(image: bytes, boxes: Sequence[Box]) -> int:
    return len(image) + _ROW_OVERHEAD + sum(
        _BOX_OVERHEAD + len(b.annotation_id) + len(b.class_name) for b in boxes)


def _fetched(planned: Sequence[PlannedSample], fetch: Callable[[str], bytes],
             workers: int) -> Iterator[tuple[PlannedSample, bytes]]:
    """Each sample with its verified bytes, in order, fetching a bounded window ahead."""

    def get(p: PlannedSample) -> bytes:
        s = p.sample
        data = fetch(s.object_key)
        if not data:
            raise ContentMismatchError(f"sample {s.sample_id}: {s.object_key} is empty")
        found = hashlib.sha256(data).hexdigest()
        if found != s.content_sha256:
            raise ContentMismatchError(
                f"sample {s.sample_id}: {s.object_key} holds {len(data)} bytes with sha256 "
                f"{found}, expected content_sha256 {s.content_sha256}")
        return data

    if workers <= 1:
        for p in planned:
            yield p, get(p)
        return
    window = 2 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for p in planned:
            pending.append((p, pool.submit(get, p)))
            if len(pending) >= window:
                q, future = pending.pop(0)
                yield q, future.result()
        for q, future in pending:
            yield q, future.result()


class _SplitWriter:
    """Packs one split's samples into shards; holds at most one shard's rows."""

    def __init__(self, split: str, max_bytes: int, max_rows: int, row_group_rows: int,
                 path_of: Callable[[int], str] | None = None):
        self.split = split
        self.path_of = path_of or (lambda index: shard_path(split, index))
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.row_group_rows = row_group_rows
        self.index = 0
        self.rows: list[tuple[PlannedSample, bytes, list[Box]]] = []
        self.size = 0
        self.manifest: list[dict] = []
        self.annotations: list[dict] = []

    def _estimate(self, rows: int, size: int) -> int:
        groups = -(-rows // self.row_group_rows)
        return size + _FILE_OVERHEAD + groups * _ROW_GROUP_OVERHEAD

    def add(self, p: PlannedSample, image: bytes) -> Iterator[TrainingSetFile]:
        boxes = _sorted_boxes(p.sample)
        size = _row_estimate(image, boxes)
        while self.rows and (len(self.rows) >= self.max_rows
                             or self._estimate(len(self.rows) + 1, self.size + size)
                             > self.max_bytes):
            yield self._close_shard()
        self.rows.append((p, image, boxes))
        self.size += size

    def finish(self) -> Iterator[TrainingSetFile]:
        while self.rows:
            yield self._close_shard()

    def _close_shard(self) -> TrainingSetFile:
        """Encode the pending rows as one shard; rows that push it past the byte limit (the
        estimate was low) stay pending for the next one."""
        rows, carry = self.rows, []
        while True:
            data = encode_shard([_shard_row(p, image, boxes) for p, image, boxes in rows],
                                self.row_group_rows)
            if len(data) <= self.max_bytes:
                break
            if len(rows) == 1:
                s = rows[0][0].sample
                raise ValueError(
                    f"sample {s.sample_id}: its shard alone is {len(data)} bytes "
                    f"({len(rows[0][1])} of image), more than max_shard_bytes "
                    f"{self.max_bytes}; raise max_shard_bytes")
            carry.insert(0, rows[-1])
            rows = rows[:-1]
        self.rows = carry
        self.size = sum(_row_estimate(image, boxes) for _, image, boxes in carry)
        return self._emit(rows, data)

    def recipe(self, p: PlannedSample) -> None:
        """An augmented variant's manifest row and boxes, without a shard: readers render it."""
        if not p.sample.aug_params:
            raise ValueError(f"augmented sample {p.sample.sample_id}: no aug_params, so no reader "
                             "could render it")
        self._record(p, _sorted_boxes(p.sample), None, None, None, None, None)

    def _record(self, p: PlannedSample, boxes: list[Box], path: str | None, row: int | None,
                digest: str | None, offset: int | None, size: int | None) -> None:
        s = p.sample
        self.manifest.append({
            "sample_id": s.sample_id, "content_sha256": s.content_sha256,
            "object_key": s.object_key, "date": s.date, "source": s.source,
            "rel_path": s.rel_path, "session_id": s.session_id, "camera": s.camera,
            "width": s.width, "height": s.height, "split": self.split,
            "group_key": s.group_key, "classes": sorted({b.class_name for b in boxes}),
            "n_boxes": len(boxes), "label_source": s.label_source,
            "label_revision": s.label_revision, "augmented_from": s.augmented_from,
            "aug_policy_version": s.aug_policy_version, "aug_input_key": s.aug_input_key,
            "aug_params": s.aug_params, "shard": path, "shard_row": row, "shard_sha256": digest,
            "image_offset": offset, "image_size": size,
        })
        self.annotations.extend({"sample_id": s.sample_id, **_box_dict(b), "split": self.split}
                                for b in boxes)

    def reuse(self, p: PlannedSample, at: Mapping) -> None:
        """An original's manifest row pointing into a shard an earlier version wrote."""
        self._record(p, _sorted_boxes(p.sample), at["shard"], at["shard_row"],
                     at["shard_sha256"], at["image_offset"], at["image_size"])

    def _emit(self, rows: list[tuple[PlannedSample, bytes, list[Box]]],
              data: bytes) -> TrainingSetFile:
        path = self.path_of(self.index)
        digest = hashlib.sha256(data).hexdigest()
        offsets = _image_offsets(data, [image for _, image, _ in rows], path)
        self.index += 1
        for row, ((p, image, boxes), offset) in enumerate(zip(rows, offsets)):
            self._record(p, boxes, path, row, digest, offset, len(image))
        return TrainingSetFile(path, data, digest)


def _image_offsets(data: bytes, images: Sequence[bytes], path: str) -> list[int]:
    """Byte offset of each image inside the encoded shard.

    Found, not computed: each image is searched for after the previous one, where PLAIN encoding
    puts it right after its 4-byte little-endian length.
    """
    offsets = []
    cursor = 0
    for row, image in enumerate(images):
        prefix = len(image).to_bytes(4, "little")
        pos = data.find(image, cursor)
        while pos != -1 and (pos < 4 or data[pos - 4:pos] != prefix):
            pos = data.find(image, pos + 1)
        if pos == -1:
            raise RuntimeError(f"{path}: the image of row {row} is not stored verbatim in the "
                               "encoded shard; the image column must stay uncompressed and "
                               "PLAIN-encoded")
        offsets.append(pos)
        cursor = pos + len(image)
    return offsets


def _shard_row(p: PlannedSample, image: bytes, boxes: Sequence[Box]) -> dict:
    s = p.sample
    return {"sample_id": s.sample_id, "content_sha256": s.content_sha256, "image": image,
            "width": s.width, "height": s.height, "boxes": [_box_dict(b) for b in boxes]}


# Bumped when the same samples would be packed into other shard bytes: part of every row digest.
SHARD_FORMAT = "1"
SHARD_INDEX_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("row_sha256", pa.string()),  # what the sample's shard row was made from (_row_digest)
    ("shard", pa.string()),
    ("shard_row", pa.int32()),
    ("shard_sha256", pa.string()),
    ("image_offset", pa.int64()),
    ("image_size", pa.int64()),
])
_INDEX_COLUMNS = tuple(SHARD_INDEX_SCHEMA.names)
_PACK_SHARD_RE = re.compile(r"^(.+)-\d{5}\.parquet$")


def shard_group_folder(shard_dir: str, split: str, date: str, source: str | None) -> str:
    """The folder of one split's shared shards of one capture day (and source)."""
    day = f"date={date}" if source is None else f"date={date}/source={source}"
    return f"{shard_dir}/{split}/{day}"


def _row_digest(p: PlannedSample, limits: tuple[int, int, int]) -> str:
    """Digest of everything that decides a sample's shard row and how it is packed: the format,
    the shard limits, the split, and the sample's id, content, size and boxes."""
    s = p.sample
    return hashlib.sha256(json.dumps(
        [SHARD_FORMAT, list(limits), p.split, s.sample_id, s.content_sha256, s.width, s.height,
         [_box_dict(b) for b in _sorted_boxes(s)]], sort_keys=True).encode()).hexdigest()


def _pack_key(digests: Sequence[str]) -> str:
    """The name of one pack of shards: a digest of its rows' digests, in sample_id order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:24]


def _read_index(data: bytes | None, exists: Callable[[str], bool]) -> list[dict] | None:
    """A pack index's rows; None when it is absent, unreadable or names a shard that is gone
    (the pack is then written again, to the same bytes)."""
    if data is None:
        return None
    try:
        rows = pq.read_table(pa.BufferReader(data), columns=list(_INDEX_COLUMNS)).to_pylist()
    except (pa.ArrowException, OSError):
        return None
    if not all(exists(shard) for shard in sorted({r["shard"] for r in rows})):
        return None
    return rows


def _earlier_rows(shards: Iterable[str], existing: Callable[[str], bytes | None],
                  exists: Callable[[str], bool]) -> dict[str, dict]:
    """sample_id -> index row of every sample in the packs the shared ``shards`` belong to."""
    out: dict[str, dict] = {}
    for stem in sorted({m.group(1) for s in shards if s and (m := _PACK_SHARD_RE.match(s))}):
        for r in _read_index(existing(f"{stem}.index.parquet"), exists) or ():
            out[r["sample_id"]] = r
    return out


def _day_groups(originals: Sequence[PlannedSample]
                ) -> list[tuple[tuple[str, str], list[PlannedSample]]]:
    groups: dict[tuple[str, str], list[PlannedSample]] = {}
    for p in originals:
        groups.setdefault((p.sample.date, p.sample.source or ""), []).append(p)
    return [(k, sorted(v, key=lambda p: p.sample.sample_id)) for k, v in sorted(groups.items())]


def _write_split_shared(
    split: str, originals: Sequence[PlannedSample], fetch: Callable[[str], bytes],
    recorder: _SplitWriter, shard_dir: str, existing: Callable[[str], bytes | None],
    exists: Callable[[str], bool], earlier: Mapping[str, dict], limits: tuple[int, int, int],
    fetch_workers: int,
) -> Iterator[TrainingSetFile]:
    """One split's originals as shared per-day packs of shards: a sample an earlier pack of its
    day and split holds with the same row digest stays where it is, the rest of the day become
    one new pack (or reuse the pack of exactly those rows, when a build made it before)."""
    max_bytes, max_rows, row_group_rows = limits
    for (date, source), members in _day_groups(originals):
        folder = shard_group_folder(shard_dir, split, date, source or None)
        rest: list[tuple[PlannedSample, str]] = []
        for p in members:
            digest = _row_digest(p, limits)
            at = earlier.get(p.sample.sample_id)
            if (at is not None and at["row_sha256"] == digest
                    and at["shard"].startswith(folder + "/")):
                recorder.reuse(p, at)
            else:
                rest.append((p, digest))
        if not rest:
            continue
        stem = f"{folder}/{_pack_key([d for _, d in rest])}"
        index_path = f"{stem}.index.parquet"
        found = _read_index(existing(index_path), exists)
        if found is not None and {r["sample_id"] for r in found} == {
                p.sample.sample_id for p, _ in rest}:
            at = {r["sample_id"]: r for r in found}
            for p, _ in rest:
                recorder.reuse(p, at[p.sample.sample_id])
            continue
        pack = _SplitWriter(split, max_bytes, max_rows, row_group_rows,
                            lambda index, stem=stem: f"{stem}-{index:05d}.parquet")
        for p, image in _fetched([p for p, _ in rest], fetch, fetch_workers):
            for f in pack.add(p, image):
                yield f._replace(shared=True)
        for f in pack.finish():
            yield f._replace(shared=True)
        recorder.manifest.extend(pack.manifest)
        recorder.annotations.extend(pack.annotations)
        digest_of = {p.sample.sample_id: d for p, d in rest}
        index = to_parquet_bytes([{**{c: r.get(c) for c in _INDEX_COLUMNS},
                                   "row_sha256": digest_of[r["sample_id"]]}
                                  for r in pack.manifest], SHARD_INDEX_SCHEMA)
        # Written after its shards: an index that exists names shards that were all written.
        yield TrainingSetFile(index_path, index, hashlib.sha256(index).hexdigest(), True)


def write_training_set(
    planned: Sequence[PlannedSample], fetch: Callable[[str], bytes], *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, max_shard_rows: int = DEFAULT_MAX_SHARD_ROWS,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS, fetch_workers: int = 1,
    shard_dir: str | None = None, existing: Callable[[str], bytes | None] | None = None,
    exists: Callable[[str], bool] | None = None, earlier_shards: Iterable[str] = (),
) -> Iterator[TrainingSetFile]:
    """Stream a training set's files: every shard as soon as it is complete, then the annotations
    and, last, the manifest.

    Originals' images come from ``fetch(object_key)`` (variants are recipes: never fetched) and
    are verified against ``content_sha256`` before they
    are stored. Memory is bounded by one shard: while it is encoded, its rows, their Arrow table
    and the encoded bytes coexist (about 3 x ``max_shard_bytes``), plus ``2 * fetch_workers``
    images fetched ahead. Samples are written in (split, sample_id) order whatever the input
    order, boxes in ``annotation_id`` order, with fixed compression and row groups: the same
    samples and bytes always give the same files.

    The files belong under :func:`trainset_root` of the version the caller named (the asset
    names it by a hash of its inputs, so it is known before the first file).

    Args:
        planned: samples with their split (from :func:`plan_training_set`).
        fetch: returns an object's bytes; called from ``fetch_workers`` threads at once.
        max_shard_bytes: a shard file never exceeds this size.
        max_shard_rows: a shard never holds more samples than this.
        row_group_rows: samples per Parquet row group (what a streaming reader decodes at once).
        shard_dir: write shared per-day, content-addressed shards under this repository folder
            (module docstring) instead of ``shards/`` under the version.
        existing: with ``shard_dir``, returns the bytes of a pack index an earlier build
            wrote (None when absent); a pack is reused only when ``exists`` finds every shard
            its index names.
        earlier_shards: with ``shard_dir``, the shards an earlier version's manifest names
            (its ``shard`` column): each original found in their packs with the same row digest
            keeps its place, so a day's late frames add one small pack instead of rewriting it.

    Raises:
        ContentMismatchError: fetched bytes do not match the sample's ``content_sha256``.
        ValueError: no samples, duplicate sample ids, an unknown split, a box without an int
            ``class_id``, or a single sample larger than ``max_shard_bytes``.
    """
    if max_shard_rows < 1 or row_group_rows < 1 or max_shard_bytes < 1:
        raise ValueError(f"max_shard_rows, row_group_rows and max_shard_bytes must be >= 1, got "
                         f"{max_shard_rows}, {row_group_rows}, {max_shard_bytes}")
    if not planned:
        raise ValueError("a training set needs at least one sample, got none")
    ids = Counter(p.sample.sample_id for p in planned)
    dup = sorted(i for i, n in ids.items() if n > 1)
    if dup:
        raise ValueError(f"sample_id(s) {dup[:10]} appear more than once in the planned set")
    bad = sorted({p.split for p in planned} - set(SPLITS))
    if bad:
        raise ValueError(f"unknown split(s) {bad} in the planned set; expected {list(SPLITS)}")
    ordered = sorted(planned, key=_manifest_order)
    manifest: list[dict] = []
    annotations: list[dict] = []
    limits = (max_shard_bytes, max_shard_rows, row_group_rows)
    earlier = ({} if shard_dir is None else _earlier_rows(
        earlier_shards, existing or (lambda _key: None), exists or (lambda _key: False)))
    for split in SPLITS:
        writer = _SplitWriter(split, *limits)
        in_split = [p for p in ordered if p.split == split]
        originals = [p for p in in_split if p.sample.augmented_from is None]
        if shard_dir is None:
            for p, image in _fetched(originals, fetch, fetch_workers):
                yield from writer.add(p, image)
            yield from writer.finish()
        else:
            yield from _write_split_shared(split, originals, fetch, writer, shard_dir,
                                           existing or (lambda _key: None),
                                           exists or (lambda _key: False), earlier, limits,
                                           fetch_workers)
        for p in in_split:
            if p.sample.augmented_from is not None:
                writer.recipe(p)
        manifest.extend(writer.manifest)
        annotations.extend(writer.annotations)
    # Originals and recipes of a split interleave by sample_id, boxes by annotation_id within.
    order = {(r["split"], r["sample_id"]): i for i, r in enumerate(
        sorted(manifest, key=lambda r: (SPLITS.index(r["split"]), r["sample_id"])))}
    manifest.sort(key=lambda r: order[r["split"], r["sample_id"]])
    annotations.sort(key=lambda a: (order[a["split"], a["sample_id"]], a["annotation_id"]))
    yield _file(ANNOTATIONS_PATH, to_parquet_bytes(annotations, ANNOTATIONS_SCHEMA))
    yield _file(MANIFEST_PATH, to_parquet_bytes(manifest, MANIFEST_SCHEMA))


def _file(path: str, data: bytes) -> TrainingSetFile:
    return TrainingSetFile(path, data, hashlib.sha256(data).hexdigest())


def validate_name(name: str) -> str:
    """``name`` if it is a valid training-set name (lowercase letters, digits, single '-').

    Raises:
        ValueError: naming the rule and the value.
    """
    if not isinstance(name, str) or len(name) > MAX_NAME_LEN or not NAME_RE.match(name):
        raise ValueError(f"training-set name must be 1-{MAX_NAME_LEN} lowercase letters, digits "
                         f"and single '-' between them (e.g. 'street-detect'), got {name!r}")
    return name


def validate_version(version: str) -> str:
    """``version`` if it looks like ``v<YYYYMMDD>-<10 hex>``; ValueError otherwise."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ValueError(f"training-set version must look like 'v20261122-0123456789' "
                         f"(v<YYYYMMDD>-<10 hex>), got {version!r}")
    return version



def trainset_root(name: str, version: str) -> str:
    """Folder of one training-set version in the repository: ``trainsets/<name>/<version>``."""
    return layout.trainset_root(validate_name(name), validate_version(version))


def tag_name(name: str, version: str) -> str:
    """The lakeFS tag of a published training set: ``trainset-<name>-<version>``."""
    return f"{TAG_PREFIX}{validate_name(name)}-{validate_version(version)}"


def parse_tag(tag: str) -> tuple[str, str] | None:
    """``(name, version)`` of a training-set tag, None for any other string."""
    m = _TAG_RE.match(tag) if isinstance(tag, str) else None
    if m is None or len(m.group(1)) > MAX_NAME_LEN:
        return None
    return m.group(1), m.group(2)
