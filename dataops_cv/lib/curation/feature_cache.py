"""Image features per content hash, computed once: a day's cached features are reused when the
feature version matches, and only the rest are decoded, in bounded chunks on every core
(:mod:`dataops_cv.lib.core.parallel`), with the same rows as one process computes.

Features are held as arrays (:class:`Features`), never as Python lists of floats: a
3,072-d embedding is 6 KB in half precision and ~100 KB as a list of Python floats, which at
10k frames is the difference between 60 MB and 1 GB per copy. Tables store it as float32 (what
DuckDB and every Parquet reader take); the values are exactly half-precision ones, so reading
them back loses nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Images decoded per chunk: bounds memory whatever the day's size (a chunk's bytes in flight).
DECODE_BATCH = 64


@dataclass(frozen=True)
class Features:
    """phash and embedding of each sha256 in ``shas`` (row ``k`` of the arrays is ``shas[k]``),
    under the feature version ``version`` of each row."""

    shas: list[str]
    phash: np.ndarray  # uint64 (n,)
    embedding: np.ndarray  # float16 (n, EMBEDDING_DIM)
    versions: list[str]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {s: k for k, s in enumerate(self.shas)})
        n = len(self.shas)
        if self.phash.shape != (n,) or self.embedding.ndim != 2 or len(self.embedding) != n \
                or len(self.versions) != n or len(self.index) != n:
            raise ValueError(f"features of {n} sha256 (unique?) with phash {self.phash.shape}, "
                             f"embedding {self.embedding.shape}, {len(self.versions)} versions")

    @classmethod
    def empty(cls) -> Features:
        from dataops_cv.lib.curation.features import EMBEDDING_DIM

        return cls([], np.zeros(0, np.uint64), np.zeros((0, EMBEDDING_DIM), np.float16), [])

    def __len__(self) -> int:
        return len(self.shas)

    def __contains__(self, sha: object) -> bool:
        return sha in self.index

    def rows(self, shas: Iterable[str]) -> np.ndarray:
        """Row numbers of ``shas`` (each must be here)."""
        return np.fromiter((self.index[s] for s in shas), dtype=np.int64)

    def take(self, shas: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(phash, embedding)`` arrays of ``shas``, in that order."""
        k = self.rows(shas)
        return self.phash[k], self.embedding[k]

    def subset(self, shas: Sequence[str]) -> Features:
        k = self.rows(shas)
        return Features(list(shas), self.phash[k], self.embedding[k],
                        [self.versions[i] for i in k])

    def phash_hex(self, sha: str) -> str:
        from dataops_cv.lib.curation.features import phash_to_hex

        return phash_to_hex(self.phash[self.index[sha]])

    def to_table(self) -> pa.Table:
        """``FEATURES_SCHEMA`` rows: the same bytes as ``Table.from_pylist`` of the rows."""
        from dataops_cv.lib.curation.features import phash_to_hex
        from dataops_cv.lib.curation.tables import FEATURES_SCHEMA

        n, d = self.embedding.shape
        offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
        values = pa.array(np.ascontiguousarray(self.embedding, np.float32).reshape(-1))
        return pa.Table.from_arrays([
            pa.array(self.shas, pa.string()), pa.array(self.versions, pa.string()),
            pa.array([phash_to_hex(h) for h in self.phash.tolist()], pa.string()),
            pa.ListArray.from_arrays(offsets, values, type=FEATURES_SCHEMA.field(
                "embedding").type)], schema=FEATURES_SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table | None) -> Features:
        """The features of a ``FEATURES_SCHEMA`` table (None: none), without a Python object
        per value; the first row of a repeated sha256 wins.

        Raises:
            ValueError: the embeddings do not all have one length, or a phash is malformed.
        """
        from dataops_cv.lib.curation.features import phash_from_hex

        if table is None or table.num_rows == 0:
            return cls.empty()
        shas = table.column("sha256").to_pylist()
        emb = table.column("embedding").combine_chunks()
        lengths = pc.list_value_length(emb).to_numpy(zero_copy_only=False)
        if len(set(lengths.tolist())) != 1:
            raise ValueError(f"features table with embeddings of lengths "
                             f"{sorted(set(lengths.tolist()))[:5]}; one length expected")
        values = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float16)
        out = cls._unique(shas, np.array([phash_from_hex(h) for h in
                                          table.column("phash").to_pylist()], dtype=np.uint64),
                          values.reshape(len(shas), int(lengths[0])),
                          table.column("feature_version").to_pylist())
        return out

    @classmethod
    def _unique(cls, shas: list[str], phash: np.ndarray, emb: np.ndarray,
                versions: list[str]) -> Features:
        first: dict[str, int] = {}
        for k, s in enumerate(shas):
            first.setdefault(s, k)
        if len(first) == len(shas):
            return cls(shas, phash, emb, versions)
        k = np.fromiter(first.values(), dtype=np.int64)
        return cls(list(first), phash[k], emb[k], [versions[i] for i in k])

    @classmethod
    def concat(cls, parts: Sequence[Features]) -> Features:
        """Every part's rows, the first of a repeated sha256 kept."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls._unique([s for p in parts for s in p.shas],
                           np.concatenate([p.phash for p in parts]),
                           np.concatenate([p.embedding for p in parts]),
                           [v for p in parts for v in p.versions])


def features_of_chunk(datas: list[bytes]) -> tuple:
    """``("ok", phash, emb)`` of one chunk of encoded images, or ``("error", index, sha256,
    reason)`` for the first that does not decode (the error's own class does not pickle)."""
    from dataops_cv.lib.curation.features import ImageFeatureError, image_features

    try:
        return ("ok", *image_features(datas))
    except ImageFeatureError as exc:
        return ("error", exc.index, exc.sha256, exc.reason)


def day_features(read: Callable[[str], bytes], keys: Mapping[str, str], cached: Features,
                 batch: int = DECODE_BATCH, workers: int = 0) -> tuple[Features, int]:
    """The features of every sha256 of ``keys`` (sorted) and how many were computed.

    Args:
        read: object key -> image bytes (called in this process, chunk by chunk).
        keys: sha256 -> object key of every frame that needs features.
        cached: the day's previous features; rows of the current feature version are reused.
        workers: processes decoding chunks; <= 0: every CPU available
            (:func:`dataops_cv.lib.core.parallel.default_workers`).

    Raises:
        ImageFeatureError: a frame does not decode; names its position among those computed.
    """
    from dataops_cv.lib.core.parallel import chunked, process_map
    from dataops_cv.lib.curation.features import (
        EMBEDDING_DIM,
        FEATURE_VERSION,
        ImageFeatureError,
    )

    shas = sorted(keys)
    n = len(shas)
    phash = np.zeros(n, dtype=np.uint64)
    emb = np.zeros((n, EMBEDDING_DIM), dtype=np.float16)
    todo: list[int] = []
    for k, sha in enumerate(shas):
        row = cached.index.get(sha)
        if row is not None and cached.versions[row] == FEATURE_VERSION \
                and cached.embedding.shape[1] == EMBEDDING_DIM:
            phash[k], emb[k] = cached.phash[row], cached.embedding[row]
        else:
            todo.append(k)

    def datas() -> Iterator[list[bytes]]:
        for chunk in chunked(todo, batch):
            yield [read(keys[shas[k]]) for k in chunk]

    for start, result in zip(range(0, len(todo), batch),
                             process_map(features_of_chunk, datas(), workers), strict=True):
        if result[0] == "error":
            _, index, sha, reason = result
            raise ImageFeatureError(start + index, len(todo), sha, reason)
        rows = todo[start:start + batch]
        phash[rows], emb[rows] = result[1], result[2]
    return Features(shas, phash, emb, [FEATURE_VERSION] * n), len(todo)
