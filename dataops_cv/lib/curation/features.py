"""Image features for curation: a DCT perceptual hash and a thumbnail embedding per image.

Exact duplicates are known from SHA-256; these features are what the near-duplicate search
(:mod:`dataops_cv.lib.curation.near_duplicates`) and the diversity selection
(:mod:`dataops_cv.lib.curation.selection`) compare.

Features (``image_features``)
-----------------------------
Each image is decoded once (EXIF orientation and mode rules of :mod:`dataops_cv.lib.core.images`),
turned to luma, blurred by a Gaussian of half a thumbnail cell (in displayed pixels, whatever
scale the decoder used) and resampled to an 80x60 thumbnail.

* ``phash``: DCT perceptual hash, 64 bits: the blurred luma resampled to 32x32, its 2-D DCT, and
  one bit per low frequency (the 8x8 lowest, the DC term swapped for frequency (0, 8)) set when
  the coefficient is above their median. ``phash_to_hex`` / ``phash_from_hex`` give the
  16-hex-digit form stored in tables.
* ``emb``: the zero-mean thumbnail's 48x64 lowest DCT coefficients (``EMBEDDING_DIM`` = 3072),
  L2-normalised and held in half precision (6 KB a frame: 100k frames' embeddings are 0.6 GB,
  not 1.2 GB; its relative error of 5e-4 moves a cosine by less than 1e-4, far below any
  threshold compared). The DCT is orthonormal, so a dot product is the normalised cross-correlation
  of two band-limited thumbnails, and the thumbnail can be rebuilt from the embedding, which the
  crop rule needs. No weights, no training, no threads: PIL and NumPy only, bit-identical across
  runs and processes (checked with a different BLAS thread count); ``FEATURE_VERSION`` hashes
  every parameter and the Pillow and NumPy versions. A flat image (blank, lens cap) gets phash 0
  and the DC basis vector, identical to every other flat image and orthogonal to the rest.

Why a thumbnail and not a random-feature CNN or global descriptors: measured on the generator,
anything that summarises layout globally puts a 3 % crop (content scaled by 3-6 %, displaced by
up to 10 px at the edges) further from its source than the next video frame (objects moved by
1-13 px): 64x48 thumbnails gave cosine 0.87-0.99 for crops and 0.87-0.9999 for consecutive
frames; global pooling makes it worse. The two differ in *where* the change is: a crop changes
everything a little and smoothly, a new frame changes a few places a lot. Telling them apart
takes registering one thumbnail onto the other and looking block by block, and resolution: with
an earlier version of the registration, 3-4 % of moving consecutive frames passed for crops at
64x48 against 0.3 % at 80x60. Keeping the 48x64 lowest of the 80x60 DCT coefficients lost
nothing measurable and costs what a 64x48 thumbnail would.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Sequence

import numpy as np
import PIL
from PIL import Image, ImageFilter, UnidentifiedImageError

from dataops_cv.lib.core.images import to_rgb

THUMB_W, THUMB_H = 80, 60
KEEP_W, KEEP_H = 64, 48  # lowest DCT frequencies of the thumbnail kept in the embedding
EMBEDDING_DIM = KEEP_W * KEEP_H
BLUR_CELLS = 0.5  # Gaussian sigma of the anti-alias blur, in thumbnail cells
PHASH_SIDE = 32
FLAT_STD = 0.5  # grey levels: below this a thumbnail carries no layout to compare
_DECODE_SCALE = 4  # decode and reduce to no less than this many pixels per thumbnail cell
_REVISION = 2  # bump whenever the feature code changes what it computes (2: float16 embedding)

FEATURE_VERSION = "cvfeat-" + hashlib.sha256(json.dumps({
    "revision": _REVISION, "thumb": [THUMB_W, THUMB_H], "keep": [KEEP_W, KEEP_H],
    "blur_cells": BLUR_CELLS,
    "phash_side": PHASH_SIDE, "flat_std": FLAT_STD, "decode_scale": _DECODE_SCALE,
    "pillow": PIL.__version__, "numpy": np.__version__,
}, sort_keys=True).encode()).hexdigest()[:12]

# The 64 DCT coefficients of the phash: the 8x8 lowest frequencies, with the DC term (the mean,
# always above the median) swapped for the next horizontal frequency.
_PHASH_COEFFS = [(u, v) for u in range(8) for v in range(8) if (u, v) != (0, 0)] + [(0, 8)]


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal ``(n, n)`` DCT-II matrix; rows are the basis vectors."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = dct_matrix(PHASH_SIDE)
_DCT_H = dct_matrix(THUMB_H)[:KEEP_H]  # (KEEP_H, THUMB_H): rows are basis vectors
_DCT_W = dct_matrix(THUMB_W)[:KEEP_W]


class ImageFeatureError(ValueError):
    """An image whose bytes could not be turned into features; names the image and why."""

    def __init__(self, index: int, total: int, sha256: str, reason: str):
        self.index, self.sha256, self.reason = index, sha256, reason
        super().__init__(f"image {index} of {total} (sha256 {sha256[:12]}): {reason}")


def _decode_luma(data: bytes) -> tuple[Image.Image, float, float]:
    """Displayed 8-bit luma of the image, decoded or reduced to no less than
    ``_DECODE_SCALE`` pixels per thumbnail cell, and how many displayed pixels one of its
    pixels spans along x and y."""
    if not data:
        raise ValueError("0 bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
        full = img.size
        # JPEG decodes straight to a smaller scale; the target keeps 4 pixels per cell.
        img.draft(None, (_DECODE_SCALE * THUMB_W, _DECODE_SCALE * THUMB_H))
        drafted = img.size
        img.load()
    step = (full[0] / drafted[0], full[1] / drafted[1])
    luma = to_rgb(img).convert("L")
    w, h = luma.size
    if (w, h) != drafted:  # the EXIF orientation turned it a quarter
        step = step[::-1]
    factor = min(w // (_DECODE_SCALE * THUMB_W), h // (_DECODE_SCALE * THUMB_H))
    reduced = luma.reduce(factor) if factor >= 2 else luma
    return reduced, step[0] * w / reduced.size[0], step[1] * h / reduced.size[1]


def _luma_features(luma: Image.Image, step_x: float, step_y: float) -> tuple[int, np.ndarray]:
    w, h = luma.size
    # The anti-alias blur is BLUR_CELLS of a cell in displayed pixels, whatever reduction the
    # decode made (a box of k pixels already blurs by (k^2 - 1) / 12): a copy decoded at
    # another scale is blurred the same.
    sigma = []
    for size, cells, step in ((w, THUMB_W, step_x), (h, THUMB_H, step_y)):
        wanted = (BLUR_CELLS * size / cells) ** 2
        sigma.append(float(np.sqrt(max(wanted - (step * step - 1) / 12 / (step * step), 0.0))))
    blurred = luma.filter(ImageFilter.GaussianBlur(tuple(sigma)))
    thumb = np.asarray(blurred.resize((THUMB_W, THUMB_H), Image.Resampling.BILINEAR),
                       dtype=np.float64)
    small = np.asarray(blurred.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.BILINEAR),
                       dtype=np.float64)
    return _phash_of(small), _embedding_of(thumb)


def _phash_of(small: np.ndarray) -> int:
    if small.std() < FLAT_STD:
        return 0
    coeffs = _DCT @ small @ _DCT.T
    low = np.array([coeffs[u, v] for u, v in _PHASH_COEFFS])
    bits = low > np.median(low)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _embedding_of(thumb: np.ndarray) -> np.ndarray:
    centred = thumb - thumb.mean()
    out = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    if np.sqrt(np.mean(centred * centred)) < FLAT_STD:
        # Every flat image (blank, lens cap) gets the DC basis vector: orthogonal to all others
        # (they have zero mean), identical to each other.
        out[0] = 1.0
        return out
    coeffs = (_DCT_H @ centred @ _DCT_W.T).ravel()
    out[:] = coeffs / np.sqrt(np.sum(coeffs * coeffs))
    return out


def thumbnails(emb: np.ndarray) -> np.ndarray:
    """The band-limited ``(P, THUMB_H, THUMB_W)`` thumbnails that ``(P, EMBEDDING_DIM)``
    embeddings stand for (up to the gain and offset the embedding normalises away)."""
    coeffs = emb.astype(np.float64).reshape(-1, KEEP_H, KEEP_W)
    return _DCT_H.T @ coeffs @ _DCT_W


def image_features(datas: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual hash and embedding of each encoded image (any mode and size PIL reads, EXIF
    orientation applied as in :mod:`dataops_cv.lib.core.images`).

    Returns:
        ``(phash, emb)``: ``uint64 (n,)`` and ``float16 (n, EMBEDDING_DIM)``, rows L2-normalised
        (before the rounding to half precision).

    Raises:
        ImageFeatureError: an image does not decode; names its position and SHA-256.
    """
    n = len(datas)
    phash = np.zeros(n, dtype=np.uint64)
    emb = np.zeros((n, EMBEDDING_DIM), dtype=np.float16)
    for k, data in enumerate(datas):
        try:
            luma, step_x, step_y = _decode_luma(data)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            reason = "not a readable image format" if isinstance(exc, UnidentifiedImageError) \
                else f"cannot decode: {type(exc).__name__}: {exc}"
            raise ImageFeatureError(k, n, hashlib.sha256(data).hexdigest(), reason) from exc
        phash[k], emb[k] = _luma_features(luma, step_x, step_y)
    return phash, emb


def phash_to_hex(value: int | np.integer) -> str:
    """The 16-hex-digit string stored in tables for a 64-bit perceptual hash."""
    value = int(value)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"a phash is an unsigned 64-bit integer, got {value}")
    return f"{value:016x}"


def phash_from_hex(text: str) -> np.uint64:
    """Inverse of :func:`phash_to_hex`.

    Raises:
        ValueError: ``text`` is not exactly 16 hexadecimal digits.
    """
    if len(text) != 16 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"a phash is 16 hexadecimal digits, got {text!r}")
    return np.uint64(int(text, 16))
