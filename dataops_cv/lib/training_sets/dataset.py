"""A PyTorch ``Dataset`` over a training set published on lakeFS (see ``trainset``).

The ref is resolved to a commit id once, in ``__init__``, so every ``DataLoader`` worker reads the
same immutable commit however the branch moves meanwhile. Shards are downloaded once into a local
cache keyed by their digest (``<cache_dir>/<repository>/sha256/<ab>/<sha256>.parquet``, so the
versions of a name share every shard they have in common), written through a temp file and a
rename, and checked against the ``shard_sha256`` the manifest records: a corrupted or truncated
cached file is fetched again, and a shard lakeFS serves with other bytes raises.

Each process builds its own lakeFS client and file maps (nothing of them is pickled, and a
forked worker drops what it inherited), so the dataset works with ``num_workers > 0`` under both
fork and spawn.

Reading a sample does not decode Parquet: the manifest's ``image_offset``/``image_size`` locate
the image bytes verbatim inside the memory-mapped shard, and the boxes come from
``annotations.parquet``, read once in ``__init__``. A row-group reader would decode 32 images to
return one under a shuffling sampler (about twice the CPU per sample, measured); a slice costs the
same in any order. Every slice is checked against the sample's ``content_sha256`` before it is
decoded, so the pixels returned are exactly the ingested bytes even if a cached file rots.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import math
import mmap
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lakefs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from lakefs_sdk.exceptions import ApiException
from PIL import Image

from dataops_cv.lib.core.images import to_rgb
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.store import (
    TRANSPORT_ERRORS,
    LakeFSConfig,
    LakeFSError,
    LakeFSNotFound,
    LakeFSStore,
)
from dataops_cv.lib.services.lakefs_server import DEFAULT_REPOSITORY
from dataops_cv.lib.training_sets.writer import (
    ANNOTATIONS_PATH,
    MANIFEST_PATH,
    SPLITS,
    TAG_PREFIX,
    parse_tag,
    trainset_root,
    validate_name,
    validate_version,
)

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "dataops-cv" / "trainsets"
ENV_VARS = ("LAKEFS_ENDPOINT", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY")
OPEN_SHARDS = 16
_CHUNK = 1 << 20
_BOX_COLUMNS = ["sample_id", "class_name", "class_id", "x_min", "y_min", "x_max", "y_max"]
_PROCESS_STATE = ("_client", "_verified", "_fresh", "_maps")


class TrainingSetError(RuntimeError):
    """A training set could not be resolved or read; the message says what exists instead."""


class ShardDigestError(TrainingSetError):
    """A shard's bytes do not hash to the digest the manifest records."""


def lakefs_config_from_env() -> LakeFSConfig:
    """LakeFS client settings from ``LAKEFS_ENDPOINT``, ``LAKEFS_ACCESS_KEY_ID``,
    ``LAKEFS_SECRET_ACCESS_KEY`` and ``LAKEFS_REPOSITORY`` (default ``dataops-cv``).

    Raises:
        TrainingSetError: naming the variables that are not set.
    """
    missing = [k for k in ENV_VARS if not os.environ.get(k)]
    if missing:
        raise TrainingSetError(f"lakeFS settings missing: set {', '.join(missing)} or pass "
                               "lakefs=LakeFSConfig(...)")
    return LakeFSConfig(endpoint=os.environ["LAKEFS_ENDPOINT"],
                        access_key_id=os.environ["LAKEFS_ACCESS_KEY_ID"],
                        secret_access_key=os.environ["LAKEFS_SECRET_ACCESS_KEY"],
                        repository=os.environ.get("LAKEFS_REPOSITORY") or DEFAULT_REPOSITORY)


def decode_image(data: bytes) -> torch.Tensor:
    """Encoded image bytes as a uint8 (3, H, W) RGB tensor of the displayed pixels."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = to_rgb(img)
        rgb.load()
        return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)


def collate_detection(batch: Sequence[tuple[torch.Tensor, dict]]
                      ) -> tuple[list[torch.Tensor], list[dict]]:
    """``DataLoader`` collate for detection: images and targets as lists (sizes may differ).

    The lists are :class:`DetectionBatch`, which cross a worker queue with one shared-memory
    handoff per dtype instead of one per tensor.
    """
    return (DetectionBatch(image for image, _ in batch),
            DetectionBatch(target for _, target in batch))


def list_training_sets(store: LakeFSStore, ref: str) -> dict[str, list[str]]:
    """Training-set names at ``ref`` with their versions (those holding a manifest), sorted."""
    found: dict[str, list[str]] = {}
    for obj in store.list_objects(ref, prefix=layout.TRAINSETS):
        parts = obj.path.split("/")
        if len(parts) == 4 and parts[3] == MANIFEST_PATH:
            found.setdefault(parts[1], []).append(parts[2])
    return {name: sorted(versions) for name, versions in sorted(found.items())}


def list_training_set_tags(config: LakeFSConfig) -> list[str]:
    """Names of the repository's ``trainset-*`` tags, sorted (each call with the config's
    timeout)."""
    tags_api = lakefs.Client(host=config.endpoint, username=config.access_key_id,
                             password=config.secret_access_key).sdk_client.tags_api
    found: list[str] = []
    after = ""
    while True:
        page = tags_api.list_tags(config.repository, prefix=TAG_PREFIX, after=after, amount=1000,
                                  _request_timeout=config.timeout_s)
        found.extend(ref.id for ref in page.results)
        if not page.pagination.has_more:
            return sorted(found)
        after = page.pagination.next_offset


def _tags_hint(config: LakeFSConfig) -> str:
    """The training-set tags that do exist, for an error message about one that does not."""
    try:
        return ", ".join(list_training_set_tags(config)) or "none"
    except (ApiException, *TRANSPORT_ERRORS) as exc:
        # The error being reported matters more than this hint; say why it is missing.
        return f"(could not list them: {exc})"


def _describe(sets: dict[str, list[str]]) -> str:
    if not sets:
        return "none"
    return "; ".join(f"{n}: {', '.join(v)}" for n, v in sets.items())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"


def _stamp_matches(path: Path, sha256: str) -> bool:
    try:
        return _stamp_path(path).read_text() == _stamp(path, sha256)
    except FileNotFoundError:
        return False


def _write_stamp(path: Path, sha256: str) -> None:
    stamp = _stamp_path(path)
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    tmp.write_text(_stamp(path, sha256))
    os.replace(tmp, stamp)


def _discard(path: Path) -> None:
    _stamp_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


class _CorruptShard(Exception):
    """A cached shard is unreadable or holds bytes the manifest does not record."""


class _Slot:
    """Where a packed tensor sat inside a batch."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self) -> tuple:
        return _Slot, (self.index,)


def _strip(obj: Any, tensors: list[torch.Tensor]) -> Any:
    # Exact type only: a subclass (a torchvision tv_tensor) carries metadata a view would lose.
    if type(obj) is torch.Tensor and obj.device.type == "cpu" and not obj.requires_grad:
        tensors.append(obj)
        return _Slot(len(tensors) - 1)
    if isinstance(obj, dict):
        return {k: _strip(v, tensors) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_strip(v, tensors) for v in obj)
    return obj


def _fill(obj: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(obj, _Slot):
        return tensors[obj.index]
    if isinstance(obj, dict):
        return {k: _fill(v, tensors) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_fill(v, tensors) for v in obj)
    return obj


def _dense_layout(t: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A contiguous view of ``t``'s memory in storage order and the permutation back to ``t``.

    Copying in storage order is a memcpy; copying a permuted uint8 image into CHW order would
    cost about as much as decoding it.
    """
    order = sorted(range(t.dim()), key=lambda d: (-t.stride(d), -t.shape[d]))
    dense = t.permute(order)
    if not dense.is_contiguous():
        return t.contiguous(), tuple(range(t.dim()))
    return dense, tuple(sorted(range(t.dim()), key=order.__getitem__))


def _unpack_batch(skeleton: list, flats: dict[torch.dtype, torch.Tensor],
                  specs: list[tuple[torch.dtype, int, tuple[int, ...], tuple[int, ...]]]
                  ) -> DetectionBatch:
    tensors = []
    for dtype, offset, shape, back in specs:
        n = math.prod(shape)
        tensors.append(flats[dtype][offset:offset + n].view(shape).permute(back))
    return DetectionBatch(_fill(item, tensors) for item in skeleton)


class DetectionBatch(list):
    """A list of a batch's images or targets that crosses a DataLoader worker queue packed into
    one shared-memory tensor per dtype, and arrives as views into it: same values and shapes, and
    the same strides for any permutation of a contiguous tensor (such as a decoded image).

    Every tensor a worker sends gets its own shared-memory segment and file-descriptor handoff
    (a socket round trip through multiprocessing's resource sharer): about 2 ms per tensor here,
    more than decoding a 320x240 PNG, and a sample has three. In one process it is a plain list.
    """

    def __reduce__(self) -> tuple:
        tensors: list[torch.Tensor] = []
        skeleton = [_strip(item, tensors) for item in self]
        sizes: dict[torch.dtype, int] = {}
        specs = []
        dense = []
        for t in tensors:
            d, back = _dense_layout(t)
            dense.append(d)
            specs.append((t.dtype, sizes.get(t.dtype, 0), tuple(d.shape), back))
            sizes[t.dtype] = sizes.get(t.dtype, 0) + t.numel()
        # Allocated in shared memory up front, so pickling does not copy it there again.
        flats = {dtype: torch.empty(n, dtype=dtype).share_memory_() for dtype, n in sizes.items()}
        for d, (dtype, offset, shape, _) in zip(dense, specs):
            flats[dtype][offset:offset + d.numel()].view(shape).copy_(d)
        return _unpack_batch, (skeleton, flats, specs)


class TrainingSetDataset(torch.utils.data.Dataset):
    """Samples of one split (or all) of a training set on lakeFS.

    ``dataset[i]`` is ``(image, target)``: ``image`` a uint8 (3, H, W) RGB tensor, ``target`` a
    dict with ``boxes`` (float32 (n, 4) xyxy pixels), ``labels`` (int64 (n,) class ids),
    ``class_names``, ``sample_id`` and ``content_sha256``. With ``transform`` the pair is passed
    through ``transform(image, target)``, which returns the new pair (torchvision v2 style).

    An augmented variant is a recipe in the manifest: its pixels are rendered here from its
    source's stored bytes and ``aug_params``, byte-identical to the PNG augmentation stores with
    ``render: all`` (in any process, DataLoader workers included); its ``content_sha256`` is that
    PNG's digest when one was stored, else None.

    Args:
        ref: a tag ``trainset-<name>-<version>``, or a commit id or branch; for the latter
            ``name`` is required and ``version`` may be left out when only one exists there.
        split: ``train``, ``val``, ``test`` or None for every sample.
        lakefs: client settings; by default from the environment (:func:`lakefs_config_from_env`).
        cache_dir: where shards are cached (default ``~/.cache/dataops-cv/trainsets``).

    Raises:
        TrainingSetError: the ref, name or version does not resolve; the message lists what
            exists.
    """

    def __init__(self, ref: str, *, name: str | None = None, version: str | None = None,
                 split: str | None = None, lakefs: LakeFSConfig | None = None,
                 cache_dir: str | Path | None = None,
                 transform: Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]] | None = None
                 ) -> None:
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)} or None, got {split!r}")
        self.config = lakefs or lakefs_config_from_env()
        self.split = split
        self.transform = transform
        self.cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
        self._pid: int | None = None
        # Format plugins load lazily on first decode; loading them here spares every forked
        # worker (of every epoch) the imports.
        Image.preinit()
        store = self._store()
        self.ref = ref
        self.name, self.version, self.commit_id = self._resolve(store, ref, name, version)
        self.root = trainset_root(self.name, self.version)
        try:
            data = store.get_object(self.commit_id, f"{self.root}/{MANIFEST_PATH}")
        except LakeFSNotFound:
            raise TrainingSetError(
                f"{ref!r} ({self.commit_id[:12]}) has no {self.root}/{MANIFEST_PATH}; training "
                f"sets there: {_describe(list_training_sets(store, self.commit_id))}") from None
        whole = from_parquet_bytes(data)
        manifest = whole
        if split is not None:
            manifest = manifest.filter(pc.equal(manifest["split"], split))
        self.manifest: pa.Table = manifest
        self._sample_ids: list[str] = manifest["sample_id"].to_pylist()
        self._sha: list[str | None] = manifest["content_sha256"].to_pylist()
        # Where each sample's stored image is: its own, or for an augmented variant (a recipe,
        # rendered on the fly) its source's, looked up over the whole set.
        stored = {sid: (shard, offset, size, sha) for sid, shard, offset, size, sha in zip(
            *(whole[c].to_pylist() for c in ("sample_id", "shard", "image_offset", "image_size",
                                            "content_sha256"))) if shard is not None}
        self._recipe: list[str | None] = [
            params if origin else None for origin, params in zip(
                manifest["augmented_from"].to_pylist(), manifest["aug_params"].to_pylist())]
        self._location: list[tuple[str, int, int, str, str]] = []
        for sid, origin in zip(self._sample_ids, manifest["augmented_from"].to_pylist()):
            at = origin or sid
            if at not in stored:
                raise TrainingSetError(
                    f"{self.root}/{MANIFEST_PATH}: sample {sid} has no stored image"
                    + (f" and its source {origin} neither" if origin else "")
                    + ": the training set is inconsistent")
            self._location.append((*stored[at], at))
        self._shard_sha: dict[str, str] = {
            shard: digest for shard, digest in zip(whole["shard"].to_pylist(),
                                                   whole["shard_sha256"].to_pylist())
            if shard is not None}
        self._load_boxes(store)

    def _resolve(self, store: LakeFSStore, ref: str, name: str | None,
                 version: str | None) -> tuple[str, str, str]:
        repo = self.config.repository
        tagged = parse_tag(ref)
        if tagged is not None:
            for given, found, what in ((name, tagged[0], "name"), (version, tagged[1], "version")):
                if given is not None and given != found:
                    raise TrainingSetError(f"tag {ref!r} is training set {what} {found!r}, but "
                                           f"{what}={given!r} was given")
            try:
                commit = store.head(ref)
            except LakeFSNotFound:
                raise TrainingSetError(
                    f"tag {ref!r} not found in lakeFS repository {repo!r} at "
                    f"{self.config.endpoint}; training-set tags there: "
                    f"{_tags_hint(self.config)}") from None
            return tagged[0], tagged[1], commit
        try:
            commit = store.head(ref)
        except LakeFSNotFound:
            raise TrainingSetError(
                f"ref {ref!r} is neither a training-set tag nor a branch or commit of lakeFS "
                f"repository {repo!r}; training-set tags there: {_tags_hint(self.config)}"
            ) from None
        sets = list_training_sets(store, commit)
        if name is None:
            raise TrainingSetError(
                f"ref {ref!r} is not a training-set tag, so name= is required; training sets at "
                f"{ref} ({commit[:12]}): {_describe(sets)}")
        validate_name(name)
        versions = sets.get(name, [])
        if version is None:
            if len(versions) != 1:
                raise TrainingSetError(
                    f"training set {name!r} has {len(versions)} versions at {ref} "
                    f"({commit[:12]}), so version= is required; training sets there: "
                    f"{_describe(sets)}")
            version = versions[0]
        validate_version(version)
        if version not in versions:
            raise TrainingSetError(
                f"training set {name!r} version {version!r} not found at {ref} ({commit[:12]}); "
                f"training sets there: {_describe(sets)}")
        return name, version, commit

    def _load_boxes(self, store: LakeFSStore) -> None:
        """Every box of this dataset's samples as flat arrays, grouped by manifest row."""
        key = f"{self.root}/{ANNOTATIONS_PATH}"
        table = from_parquet_bytes(store.get_object(self.commit_id, key), columns=_BOX_COLUMNS)
        position = pc.index_in(table["sample_id"], value_set=self.manifest["sample_id"])
        table = table.filter(pc.is_valid(position))
        rows = pc.drop_null(position).to_numpy().astype(np.int64)
        # Stable: within a sample, boxes keep the file's (annotation_id) order, as in the shard.
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=len(self))
        expected = self.manifest["n_boxes"].to_numpy()
        if not np.array_equal(counts, expected):
            i = int(np.flatnonzero(counts != expected)[0])
            raise TrainingSetError(
                f"{key} has {counts[i]} boxes for sample {self._sample_ids[i]}, the manifest "
                f"says {expected[i]}: the training set is inconsistent")
        self._box_start = np.concatenate([[0], np.cumsum(counts)]).tolist()
        self._xyxy = np.stack([table[k].to_numpy()[order] for k in ("x_min", "y_min", "x_max",
                                                                  "y_max")],
                              axis=1).astype(np.float32).reshape(-1, 4)
        self._labels = table["class_id"].to_numpy().astype(np.int64)[order]
        self._class_names = table["class_name"].to_numpy(zero_copy_only=False)[order]

    def _process_state(self) -> None:
        """Start this process's caches afresh after a fork or an unpickle."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._client: LakeFSStore | None = None
            self._verified: set[str] = set()
            self._fresh: set[str] = set()
            self._maps: OrderedDict[str, mmap.mmap] = OrderedDict()

    def _store(self) -> LakeFSStore:
        """This process's lakeFS client, built on first use (a warm cache never needs one)."""
        self._process_state()
        if self._client is None:
            self._client = LakeFSStore(self.config)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in _PROCESS_STATE:
            state.pop(key, None)
        state["_pid"] = None
        return state

    def shard_cache_path(self, shard: str) -> Path:
        """Local path of a shard (as the manifest names it) in the cache: by its SHA-256, so
        versions sharing a shard (a new day's set reuses every earlier day's) share one copy."""
        digest = self._shard_sha[shard]
        return self.cache_dir / self.config.repository / "sha256" / digest[:2] / f"{digest}.parquet"

    def _local_shard(self, shard: str) -> Path:
        """The shard's verified local copy, downloading it if missing or corrupt.

        A cached copy is hashed in full unless its stamp (written when it was last verified)
        still matches its size, mtime, ctime and inode; the per-image check in ``_image``
        covers what a stamp cannot see.
        """
        path = self.shard_cache_path(shard)
        if shard in self._verified:
            return path
        expected = self._shard_sha[shard]
        if _stamp_matches(path, expected):
            self._verified.add(shard)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One process downloads while the others wait for it, instead of all fetching at once.
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists() and not _stamp_matches(path, expected):
                found = _file_sha256(path)
                if found == expected:
                    _write_stamp(path, expected)
                else:
                    log.warning("cached shard %s has sha256 %s, the manifest records %s; "
                                "fetching it again", path, found, expected)
                    _discard(path)
            if not path.exists():
                self._download(shard, path, expected)
                self._fresh.add(shard)
        self._verified.add(shard)
        return path

    def _download(self, shard: str, path: Path, expected: str) -> None:
        key = layout.trainset_shard_key(self.root, shard)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
        h = hashlib.sha256()
        try:
            with self._store().open_object(self.commit_id, key) as stream, tmp.open("wb") as out:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != expected:
                raise ShardDigestError(
                    f"shard {key} at lakeFS commit {self.commit_id} of repository "
                    f"{self.config.repository!r} has sha256 {h.hexdigest()}, but the manifest "
                    f"records {expected}: the training set is inconsistent")
            os.replace(tmp, path)
        except (LakeFSError, OSError, ShardDigestError):
            tmp.unlink(missing_ok=True)
            raise
        _write_stamp(path, expected)

    def _evict(self, shard: str) -> None:
        """Forget a cached shard found corrupt in this process, and delete it for all."""
        mapped = self._maps.pop(shard, None)
        if mapped is not None:
            mapped.close()
        self._verified.discard(shard)
        _discard(self.shard_cache_path(shard))

    def _map(self, shard: str) -> mmap.mmap:
        maps = self._maps
        if shard in maps:
            maps.move_to_end(shard)
            return maps[shard]
        with open(self._local_shard(shard), "rb") as f:
            maps[shard] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if len(maps) > OPEN_SHARDS:
            maps.popitem(last=False)[1].close()
        return maps[shard]

    def _image(self, index: int) -> bytes:
        """The stored image bytes of the sample (of its source, for a variant), checked against
        the manifest.

        Raises:
            _CorruptShard: the cached shard cannot be read or holds other bytes there.
        """
        shard, start, size, sha, owner = self._location[index]
        try:
            mapped = self._map(shard)
        except (OSError, ValueError) as exc:  # ValueError: mmap of an empty file
            raise _CorruptShard(f"{self.shard_cache_path(shard)} cannot be read: {exc}") from exc
        image = mapped[start:start + size]
        found = hashlib.sha256(image).hexdigest()
        if found != sha:
            raise _CorruptShard(
                f"{self.root}/{shard} bytes {start}+{size} (sample {owner}) have sha256 "
                f"{found}, the manifest records {sha}")
        return image

    def _checked_image(self, index: int) -> bytes:
        """The stored image bytes; a corrupt cached shard is deleted and fetched once more.

        Raises:
            TrainingSetError: the bytes are wrong in a shard this process just downloaded (and
                found matching its digest): the training set itself is inconsistent.
        """
        shard = self._location[index][0]
        while True:
            try:
                return self._image(index)
            except _CorruptShard as exc:
                if shard in self._fresh:
                    raise TrainingSetError(
                        f"{exc}, in a shard just downloaded and matching its digest: the "
                        "training set is inconsistent") from None
                log.warning("%s; fetching the shard again", exc)
                self._evict(shard)

    def __len__(self) -> int:
        return len(self._sample_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        self._process_state()
        data = self._checked_image(index)
        recipe = self._recipe[index]
        if recipe is None:
            image = decode_image(data)
        else:  # an augmented variant: rendered from its recipe, as augmentation would store it
            from dataops_cv.lib.augmentation.params import AugParams
            from dataops_cv.lib.augmentation.stream import render_pixels

            image = torch.from_numpy(render_pixels(data, AugParams.from_json(recipe))
                                     ).permute(2, 0, 1)
        lo, hi = self._box_start[index], self._box_start[index + 1]
        target = {
            # Copies: a caller editing a target in place must not edit the dataset's arrays.
            "boxes": torch.from_numpy(self._xyxy[lo:hi].copy()),
            "labels": torch.from_numpy(self._labels[lo:hi].copy()),
            "class_names": self._class_names[lo:hi].tolist(),
            "sample_id": self._sample_ids[index],
            "content_sha256": self._sha[index],
        }
        if self.transform is not None:
            return self.transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"TrainingSetDataset(name={self.name!r}, version={self.version!r}, "
                f"split={self.split!r}, samples={len(self)}, ref={self.ref!r}, "
                f"commit={self.commit_id[:12]!r}, repository={self.config.repository!r})")
