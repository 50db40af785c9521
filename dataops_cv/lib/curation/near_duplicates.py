"""Near-duplicate search for curation: the rule, its candidate search and the clusters it forms.

Exact duplicates are known from SHA-256; this module finds *near* duplicates -- the same
picture re-encoded, resized or cropped -- from the features of
:mod:`dataops_cv.lib.curation.features`; the crop rule registers thumbnails with
:mod:`dataops_cv.lib.curation.registration`.

The rule (``NearDupConfig``)
----------------------------
A pair is a near duplicate when it is

* the *same framing*: ``hamming <= 4`` and ``cosine >= 0.9995`` (re-encoded, resized, exact), or
* a *crop*: one frame's coarse layout matches a crop view of the other (``>= 0.97``), and after
  registering its thumbnail as a crop window of the other's (axis-aligned scale and shift,
  inverse-compositional Gauss-Newton on cubic B-splines, gain and offset projected out, a fixed
  set of cells compared so that no window wins by hiding cells) the NCC is ``>= 0.9994`` and
  no block of 6x8 differs by more than 0.008 (mean squared z-score difference). The block test
  is what rejects video frames: a moving object leaves one block off, a crop leaves none.

Measured with ``python benchmarks/curation/bench_neardup.py --distributions --seeds 12``: 12
synthetic days (PNG and JPEG, 2 sessions x 3 cameras x 12 frames), every frame planted four
ways (JPEG q70; 0.75x bilinear; 3 % of every side cropped; 3 % of left and top cropped, as
``dataops_cv.lib.synthetic.defects`` plants them). "motion" is the largest move of a box edge between the frames.

=============================  =========  =======================  ======  ===============  ======================  =======
pair (count)                   hamming    cosine                   view    registered NCC   worst block             flagged
                               p50/95/max p5 / p50 / p95           min     p1 / p50         min / p50 / max
=============================  =========  =======================  ======  ===============  ======================  =======
planted JPEG q70 (864)         0/2/4      .99986 .99992 .99995     .9998   .99984 .99992    .0001 .0003 .0027       100 %
planted resize 0.75 (864)      0/2/4      .99991 .99995 .99997     1.0     .99990 .99995    .0001 .0002 .0004       100 %
planted crop 3 %/side (864)    6/12/20    .90334 .97684 .99229     .9789   .99948 .99976    .0008 .0022 .0077       99.9 %
planted crop left+top (864)    6/12/18    .91638 .96073 .97366     .9918   .99969 .99987    .0003 .0012 .0043       100 %
consecutive, motion <= 1 px    2/4/4      .99933 .99968 .99984     .9995   .99940 .99978    .0002 .0053 .0165       83 %
(35)
consecutive, motion 2 px (26)  2/4/4      .99814 .99926 .99979     .9990   .99868 .99975    .0021 .0053 .0316       62 %
consecutive, motion > 2 px     4/12/20    .92340 .98544 .99795     .9510   .93746 .99381    .0051 .1823 inf         0.3 %
(731)
2-5 frames apart (2448)        12/28/48   .82708 .96669 .99679     .6797   .80934 .98339    .0080 inf   inf         0.5 %
unrelated (2000)               30/38/52   .55436 .76194 .92921     --      .52456 .81664    .2970 inf   inf         0 %
=============================  =========  =======================  ======  ===============  ======================  =======

(``inf``: dropped at the coarse registration level; "view": best coarse cosine under a crop
view, the gate to registration; "flagged": share reported by ``near_duplicate_pairs``.)

Consecutive frames, decided with these numbers: a frame is *not* a near duplicate of its
neighbour once anything in it moved more than about 2 px (2 of 731 such pairs flagged, 0.3 %).
Where nothing moved more than a pixel or two, the frames differ only by sensor noise and no
thumbnail feature can tell them from a re-encode (cosine p5-p95 0.99933-0.99984 against
0.99986-0.99995): they are reported as near duplicates, and they are redundant for training.
On the generator that is 47 of 792 consecutive pairs (6 %); the asset can keep them apart by
session, camera and time if it wants them. Planted pairs: recall 99.9-100 % per variant.

Search (``near_duplicate_pairs``)
---------------------------------
Never all pairs above 2048 frames. Candidates are (a) pairs sharing one of 5 phash bands
(pigeonhole: within 4 bits two hashes agree on a band, so every same-framing pair is a
candidate) and (b) pairs where one frame's full view meets any of the 16 crop views (0 or 4 %
off each side) of the other under 24 random-hyperplane tables of 24 bits; the views are exact
linear maps of the embedding's lowest frequencies, centred and scaled by the batch for hashing.
Batches of up to 2048 frames compare every view instead of hashing. A bucket larger than 65 (a
day of blank or identical frames) pairs each member only with its next 64, so it costs
O(size x 64) and stays connected (``clusters`` are exact; the pair list within such a bucket is
a spanning subset). Every candidate is then checked exactly. Registration costs about 2 ms per
pair that reaches it (alike under a view and not the same framing), which on video days is most
consecutive frames: measure per frame with the benchmark before running it on a 100k-frame day.

Limits: one frame must be a crop of the other (two different crops of one original are not
paired), crops much beyond 6 % per side are found less reliably (views stop at 4 %), and two
frames of a static scene are near duplicates (above).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dataops_cv.lib.core.memory import release_free_memory
from dataops_cv.lib.curation.features import (
    EMBEDDING_DIM,
    KEEP_H,
    KEEP_W,
    THUMB_H,
    THUMB_W,
    dct_matrix,
)
from dataops_cv.lib.curation.registration import register_pairs


@dataclass(frozen=True)
class NearDupConfig:
    """The near-duplicate rule and the search for its pairs; defaults measured on the synthetic
    generator (module docstring).

    A pair is a near duplicate when it is the *same framing* -- ``hamming <=
    phash_max_hamming`` and ``cosine >= embedding_min_cosine`` -- or a *crop*: its coarse
    layouts agree under one of the crop views (``>= crop_min_cosine``) and, once one thumbnail
    is registered as a crop window of the other (axis-aligned scale and shift, at most
    ``max_crop`` in from each side), ``aligned_cosine >= aligned_min_cosine`` and no block of
    the pair differs by more than ``block_max_residual``.
    """

    phash_max_hamming: int = 4  # bits; also the pigeonhole radius, so such pairs are candidates
    embedding_min_cosine: float = 0.9995  # same framing: re-encoded, resized, exact copies
    crop_min_cosine: float = 0.97  # coarse cosine under the best crop view (3 % crops: >= 0.98)
    max_crop: float = 0.08  # most a crop window may come in from a side, fraction of the side
    aligned_min_cosine: float = 0.9994  # NCC of the registered thumbnails
    block_max_residual: float = 0.008  # worst of 6x8 blocks: mean squared z-score difference
    lsh_tables: int = 24  # random-hyperplane tables over the crop views (0: no crop search
    # in batches of more than 2048 frames, which are hashed; smaller ones compare every pair)
    lsh_bits: int = 24  # hyperplanes per table
    max_bucket: int = 64  # a larger bucket pairs each member with its next max_bucket only

    def __post_init__(self) -> None:
        if not 0 <= self.phash_max_hamming < 64:
            raise ValueError(f"phash_max_hamming must be in [0, 63], got {self.phash_max_hamming}")
        for name in ("embedding_min_cosine", "crop_min_cosine", "aligned_min_cosine"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [-1, 1], got {getattr(self, name)}")
        if not 0.0 <= self.max_crop < 0.25:
            raise ValueError(f"max_crop must be in [0, 0.25), got {self.max_crop}")
        if self.block_max_residual < 0:
            raise ValueError(f"block_max_residual must be >= 0, got {self.block_max_residual}")
        if self.lsh_tables < 0 or not 1 <= self.lsh_bits <= 30 or self.max_bucket < 1:
            raise ValueError("need lsh_tables >= 0, 1 <= lsh_bits <= 30 and max_bucket >= 1, got "
                             f"{self.lsh_tables}, {self.lsh_bits}, {self.max_bucket}")


@dataclass(frozen=True)
class NearDupPairs:
    """Near-duplicate pairs ``i < j``, sorted by ``(i, j)``, with their evidence."""

    i: np.ndarray  # int64
    j: np.ndarray  # int64
    hamming: np.ndarray  # int64: phash bits that differ
    cosine: np.ndarray  # float32: embedding dot product
    aligned_cosine: np.ndarray  # float32: NCC after registration (= cosine for same framing)
    cropped: np.ndarray  # bool: found by the crop rule, not as the same framing

    def __len__(self) -> int:
        return len(self.i)


_LSH_SEED = 0x5EED_C0A2
_LSH_GROUP = 6  # hash tables whose keys are held at once
_CANDIDATE_CHUNK = 65536  # candidate pairs whose coarse evidence is computed at once
_EXACT_ROWS = 2048  # up to this many frames every pair's views are compared, no hashing
_VIEW_CROP = 0.04  # a view crops 0 or this much from each side
_VIEW_KEEP = (6, 8)  # lowest DCT frequencies (rows, columns) of a view that the LSH hashes
_VIEW_SOURCE = (12, 16)  # embedding frequencies a view is computed from
# (x0, x1, y0, y1) of each view in normalised coordinates; view 0 is the full frame.
_VIEW_WINDOWS = [(left, 1 - right, top, 1 - bottom)
                 for top in (0, _VIEW_CROP) for bottom in (0, _VIEW_CROP)
                 for left in (0, _VIEW_CROP) for right in (0, _VIEW_CROP)]


def _pair_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)


def _bucket_pairs(keys: np.ndarray, window: int, n: int) -> np.ndarray:
    """Codes of the pairs that share a key: every pair of a bucket of up to ``window + 1``
    members, and in a larger bucket each member with its next ``window`` (by index). A bucket
    of m members (a day of blank or identical frames) costs at most m * window pairs, not m^2,
    and its members stay connected."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    out = []
    for d in range(1, window + 1):
        same = sorted_keys[d:] == sorted_keys[:-d]
        if not same.any():
            break  # buckets are contiguous runs, so none is longer than d
        out.append(_pair_codes(order[:-d][same], order[d:][same], n))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _view_maps() -> tuple[np.ndarray, np.ndarray]:
    """Per view, the linear maps from an embedding's lowest ``_VIEW_SOURCE`` DCT frequencies to
    the lowest ``_VIEW_KEEP`` frequencies of that window stretched to the full frame:
    ``(V, 6, 12)`` for rows and ``(V, 8, 16)`` for columns. Exact for the band-limited
    thumbnail, whose DCT basis functions are cosines that can be evaluated anywhere."""
    def axis(size: int, keep: int, source: int, lo: float, hi: float) -> np.ndarray:
        pos = lo + (np.arange(size) + 0.5) / size * (hi - lo)
        k = np.arange(source)[None, :]
        scale = np.where(k == 0, np.sqrt(1.0 / size), np.sqrt(2.0 / size))
        return dct_matrix(size)[:keep] @ (np.cos(np.pi * k * pos[:, None]) * scale)
    rows = np.stack([axis(THUMB_H, _VIEW_KEEP[0], _VIEW_SOURCE[0], y0, y1)
                     for _, _, y0, y1 in _VIEW_WINDOWS])
    cols = np.stack([axis(THUMB_W, _VIEW_KEEP[1], _VIEW_SOURCE[1], x0, x1)
                     for x0, x1, _, _ in _VIEW_WINDOWS])
    return rows, cols


_VIEW_MAPS = _view_maps()


def _raw_views(low: np.ndarray) -> np.ndarray:
    """``(n, V, d)`` coarse descriptors of every view of ``low`` (embeddings' low block)."""
    rows, cols = _VIEW_MAPS
    views = np.einsum("vas,nst,vbt->nvab", rows, low.astype(np.float64), cols, optimize=True)
    # The DC term is dropped: it is 0 for every frame but a flat one.
    return views.reshape(len(low), len(rows), _VIEW_KEEP[0] * _VIEW_KEEP[1])[:, :, 1:]


class _Views:
    """Coarse descriptors of the crop views of a batch, from the embeddings' lowest
    frequencies, in two forms: for comparing two frames, each coefficient weighted by its
    frequency (the lowest few carry most of the energy and would decide alone), which depends on
    nothing but the two frames; and for hashing, centred and scaled by the batch's full views,
    so that what every frame of the batch shares (a sky, a road) does not put them all in one
    bucket."""

    def __init__(self, emb: np.ndarray, chunk: int = 2048):
        n = len(emb)
        low = emb.reshape(n, KEEP_H, KEEP_W)[:, :_VIEW_SOURCE[0], :_VIEW_SOURCE[1]]
        # Half precision keeps the views of 100k frames at 150 MB; they are compared with
        # thresholds far coarser than its 1e-3.
        self.raw = np.empty((n, len(_VIEW_WINDOWS), _VIEW_KEEP[0] * _VIEW_KEEP[1] - 1),
                            dtype=np.float16)
        total = np.zeros(self.raw.shape[2])
        squares = np.zeros_like(total)
        for s in range(0, n, chunk):
            raw = _raw_views(low[s:s + chunk])
            self.raw[s:s + chunk] = raw
            total += raw[:, 0].sum(axis=0)
            squares += (raw[:, 0] ** 2).sum(axis=0)
        self.centre = total / max(n, 1)
        spread = np.sqrt(np.maximum(squares / max(n, 1) - self.centre ** 2, 0.0))
        self.scale = 1.0 / np.maximum(spread, 1e-6 * max(spread.max(), 1e-12))
        ky, kx = np.meshgrid(np.arange(_VIEW_KEEP[0]), np.arange(_VIEW_KEEP[1]), indexing="ij")
        self.weight = np.hypot(ky, kx).ravel()[1:]

    def compared(self, rows: np.ndarray) -> np.ndarray:
        return _unit(self.raw[rows].astype(np.float32) * self.weight)

    def hashed(self, rows: np.ndarray) -> np.ndarray:
        raw = self.raw[rows].astype(np.float32)
        views = _unit((raw - self.centre) * self.scale)
        views[~raw.any(axis=(1, 2))] = 0.0  # a flat frame has no layout to hash
        return views


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _band_candidates(phash: np.ndarray, config: NearDupConfig) -> np.ndarray:
    """Sorted codes ``i * n + j`` of the pairs within ``phash_max_hamming`` bits. Pigeonhole:
    split the 64 bits into H + 1 bands; two hashes within H bits agree on one of them."""
    n = len(phash)
    edges = np.linspace(0, 64, config.phash_max_hamming + 2).round().astype(int)
    codes = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        keys = (phash >> np.uint64(64 - hi)) & np.uint64((1 << (hi - lo)) - 1)
        band = _bucket_pairs(keys, config.max_bucket, n)
        i, j = band // max(n, 1), band % max(n, 1)
        codes.append(band[np.bitwise_count(phash[i] ^ phash[j]) <= config.phash_max_hamming])
    return np.unique(np.concatenate(codes))


def _view_candidates(views: _Views, config: NearDupConfig) -> np.ndarray:
    """Sorted codes ``i * n + j`` of the pairs where one frame's full view is alike any view of
    the other (a crop of a frame looks like one of its views): every such pair of a small batch,
    else those sharing a random-hyperplane bucket in some table."""
    n, n_views = views.raw.shape[:2]
    if n < 2 or (n > _EXACT_ROWS and not config.lsh_tables):
        return np.zeros(0, np.int64)
    if n <= _EXACT_ROWS:
        full = views.compared(np.arange(n))[:, 0]
        codes = []
        for s in range(0, n, 256):
            rows = np.arange(s, min(s + 256, n))
            best = (views.compared(rows) @ full.T).max(axis=1)  # (rows, n): row's views vs all
            a, b = np.nonzero(best >= config.crop_min_cosine)
            codes.append(_pair_codes(rows[a], b, n)[rows[a] != b])
        return np.unique(np.concatenate(codes))
    rng = np.random.default_rng(_LSH_SEED)
    planes = rng.standard_normal((views.raw.shape[2], config.lsh_tables * config.lsh_bits))
    planes = planes.astype(np.float32)
    weights = np.left_shift(np.int32(1), np.arange(config.lsh_bits, dtype=np.int32))
    entries = n * n_views
    item = np.repeat(np.arange(n), n_views)
    full = np.tile(np.arange(n_views) == 0, n)
    codes = []
    # _LSH_GROUP tables at a time: the bucket keys of every view in those tables (int32, 42 MB
    # for 6 tables of 100k frames' 17 views), not of all tables at once.
    for first in range(0, config.lsh_tables, _LSH_GROUP):
        tables = min(_LSH_GROUP, config.lsh_tables - first)
        columns = planes[:, first * config.lsh_bits:(first + tables) * config.lsh_bits]
        keys = np.empty((tables, entries), dtype=np.int32)
        # 1,024 frames' projections at a time: (frames * views, tables * bits) float32.
        for s in range(0, n, 1024):
            block = slice(s * n_views, min(s + 1024, n) * n_views)
            proj = (views.hashed(np.arange(s, min(s + 1024, n))).reshape(-1, views.raw.shape[2])
                    @ columns).reshape(-1, tables, config.lsh_bits)
            keys[:, block] = ((proj > 0) @ weights).T
            empty = np.flatnonzero(~proj.any(axis=(1, 2))) + block.start
            keys[:, empty] = -1 - empty  # flat frames hash nothing; the phash bands pair them
        group = []
        for table in range(tables):
            entry = _bucket_pairs(keys[table], config.max_bucket, entries)
            a, b = entry // entries, entry % entries
            keep = (item[a] != item[b]) & (full[a] | full[b])
            group.append(np.unique(_pair_codes(item[a[keep]], item[b[keep]], n)))
        del keys
        codes.append(np.unique(np.concatenate(group)))
    return np.unique(np.concatenate(codes))


def _best_view(views: _Views, i: np.ndarray, j: np.ndarray, chunk: int = 2048
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair, the best coarse cosine between one frame's full view and any view of the
    other, both ways round, and where registration starts each way round: the window of the
    view of ``i`` that ``j`` resembles most, and of the view of ``j`` that ``i`` resembles
    most, ``(P, 4)`` as ``(sx, tx, sy, ty)``."""
    cos = np.empty(len(i), dtype=np.float64)
    j_in_i = np.empty((len(i), 4), dtype=np.float64)
    i_in_j = np.empty((len(i), 4), dtype=np.float64)
    win = np.array(_VIEW_WINDOWS)
    start = np.stack([win[:, 1] - win[:, 0], win[:, 0], win[:, 3] - win[:, 2], win[:, 2]], 1)
    for s in range(0, len(i), chunk):
        vi, vj = views.compared(i[s:s + chunk]), views.compared(j[s:s + chunk])
        ab = np.einsum("pkd,pd->pk", vi, vj[:, 0])
        ba = np.einsum("pkd,pd->pk", vj, vi[:, 0])
        cos[s:s + chunk] = np.maximum(ab.max(axis=1), ba.max(axis=1))
        j_in_i[s:s + chunk] = start[ab.argmax(axis=1)]
        i_in_j[s:s + chunk] = start[ba.argmax(axis=1)]
    return cos, j_in_i, i_in_j


def _row_dots(x: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", x[a[s:s + chunk]], x[b[s:s + chunk]],
                                     dtype=np.float64)
    return out


def group_labels(keys: Sequence[str | None]) -> np.ndarray:
    """``int64`` label per frame for :func:`near_duplicate_pairs`'s ``groups``: one per distinct
    key, and a label of its own for each frame without one (None)."""
    index: dict[str, int] = {}
    out = np.empty(len(keys), dtype=np.int64)
    for k, key in enumerate(keys):
        out[k] = -1 - k if key is None else index.setdefault(key, len(index))
    return out


def near_duplicate_pairs(phash: np.ndarray, emb: np.ndarray,
                         config: NearDupConfig = NearDupConfig(),
                         groups: np.ndarray | None = None, workers: int = 0) -> NearDupPairs:
    """Near-duplicate pairs ``i < j`` by the rule of :class:`NearDupConfig`, sorted, with their
    evidence. Candidates share a phash band (pigeonhole, so every pair within
    ``phash_max_hamming`` is a candidate) or have alike coarse crop views: every pair's views
    are compared in a batch of up to 2048 frames (``_EXACT_ROWS``), only those sharing a
    random-hyperplane bucket above that; each candidate is then checked exactly.

    ``groups`` (``int64 (n,)``, e.g. :func:`group_labels` of the capture sessions) leaves out
    every pair within one label: a caller that keeps a session together anyway (the training
    set's leakage groups) needs only the pairs across sessions, and consecutive frames of a
    session are most of the candidates, each registered at a cost. Registration, most of the
    time, runs in ``workers`` threads (0: the CPUs available); the pairs do not depend on it.

    Raises:
        ValueError: ``phash`` is not ``uint64 (n,)``, ``emb`` not ``float32 (n,
            EMBEDDING_DIM)`` or ``groups`` not of shape ``(n,)``.
    """
    phash = np.asarray(phash)
    emb = np.asarray(emb)
    if phash.ndim != 1 or phash.dtype != np.uint64:
        raise ValueError(f"phash must be uint64 of shape (n,), got {phash.dtype} {phash.shape}")
    if emb.shape != (len(phash), EMBEDDING_DIM) or emb.dtype not in (np.float32, np.float16):
        raise ValueError(f"emb must be float32 or float16 of shape ({len(phash)}, "
                         f"{EMBEDDING_DIM}), got {emb.dtype} {emb.shape}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != phash.shape:
            raise ValueError(f"groups must be of shape ({len(phash)},), got {groups.shape}")
    n = len(phash)
    views = _Views(emb)
    release_free_memory()  # each phase's dropped arrays, before the next one allocates
    codes = np.unique(np.concatenate([_band_candidates(phash, config),
                                      _view_candidates(views, config)]))
    release_free_memory()
    i, j = codes // max(n, 1), codes % max(n, 1)
    del codes
    if groups is not None:
        across = groups[i] != groups[j]
        i, j = i[across], j[across]
    # Candidates in chunks, keeping only those where a rule can hold -- within the phash
    # radius, or alike under some crop view -- so the evidence of a million candidates is
    # never held at once.
    kept = []
    for s in range(0, max(len(i), 1), _CANDIDATE_CHUNK):  # once even with no candidate
        ci, cj = i[s:s + _CANDIDATE_CHUNK], j[s:s + _CANDIDATE_CHUNK]
        ham = np.bitwise_count(phash[ci] ^ phash[cj]).astype(np.int64)
        view_cos, j_in_i, i_in_j = _best_view(views, ci, cj)
        close = (ham <= config.phash_max_hamming) | (view_cos >= config.crop_min_cosine)
        kept.append((ci[close], cj[close], ham[close], view_cos[close], j_in_i[close],
                     i_in_j[close]))
    i, j, hamming, view_cos, j_in_i, i_in_j = (np.concatenate(c) for c in zip(*kept,
                                                                               strict=True))
    cosine = _row_dots(emb, i, j)
    same = (hamming <= config.phash_max_hamming) & (cosine >= config.embedding_min_cosine)
    aligned = np.where(same, cosine, -1.0)
    cropped = np.zeros(len(i), dtype=bool)
    todo = np.flatnonzero(~same & (view_cos >= config.crop_min_cosine))
    if len(todo):
        release_free_memory()
        ncc, block = register_pairs(emb, i[todo], j[todo], j_in_i[todo], i_in_j[todo],
                                    config.max_crop, workers)
        release_free_memory()  # the registration threads' arenas
        aligned[todo] = ncc
        cropped[todo] = (ncc >= config.aligned_min_cosine) & (block <= config.block_max_residual)
    found = same | cropped
    return NearDupPairs(i=i[found], j=j[found], hamming=hamming[found],
                        cosine=cosine[found].astype(np.float32),
                        aligned_cosine=aligned[found].astype(np.float32), cropped=cropped[found])


def clusters(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the graph on ``n`` nodes with edges ``(i, j)``; each node's label
    is the smallest index in its component, so labels do not depend on edge order.

    Raises:
        ValueError: an edge names a node outside ``[0, n)``, or ``i`` and ``j`` differ in length.
    """
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError(f"i and j must be 1-D of one length, got shapes {i.shape} and {j.shape}")
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise ValueError(f"edges must join nodes in [0, {n}), got indices from "
                         f"{min(i.min(), j.min())} to {max(i.max(), j.max())}")
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n, dtype=np.int64))
    return smallest[component]
