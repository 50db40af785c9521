"""Streaming augmentation: source samples in, augmented variants (PNG bytes and boxes) out.

:func:`augment_stream` decodes each source once per batch, samples every variant's parameters
(:mod:`dataops_cv.lib.augmentation.params`), applies them on the device in bounded batches
(:mod:`dataops_cv.lib.augmentation.kernels`, hence torch), moves the boxes
(:mod:`dataops_cv.lib.augmentation.geometry`) and encodes PNG. A variant's :func:`input_key` names
everything it depends on, so a caller skips the variants it already holds. The PNG encoder
(Pillow over the host's zlib) is the one outside dependency of the bytes, as for the synthetic rig.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from dataops_cv.lib.augmentation.geometry import Box, BoxResult, transform_boxes
from dataops_cv.lib.augmentation.kernels import apply_batch
from dataops_cv.lib.augmentation.params import AugParams, sample_params
from dataops_cv.lib.augmentation.policy import AugmentationPolicy
from dataops_cv.lib.core.images import to_rgb

PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class SourceBox:
    """One box of a source sample, in displayed pixels, with the annotation it came from."""

    annotation_id: str
    class_name: str
    class_id: int | None
    box: Box


@dataclass(frozen=True)
class SourceSample:
    """One sample to augment: its content hash, a loader for its bytes (called once, only when a
    variant must be computed) and its boxes in displayed pixels."""

    sha256: str
    load: Callable[[], bytes]
    boxes: tuple[SourceBox, ...] = ()
    label_source: str = "none"


@dataclass(frozen=True)
class AugmentedVariant:
    """One computed variant: its parameters, PNG bytes and the boxes that survived."""

    source: SourceSample
    variant: int
    input_key: str
    params: AugParams
    png: bytes
    sha256: str
    boxes: list[dict] = field(default_factory=list)  # kept boxes, with their source ids
    boxes_dropped: int = 0


def boxes_digest(boxes: Iterable[SourceBox]) -> str:
    """Hash of a sample's boxes: a changed label gives a new input key."""
    canon = sorted((b.annotation_id, b.class_name, b.class_id, *(round(v, 6) for v in b.box))
                   for b in boxes)
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()[:16]


def input_key(policy: AugmentationPolicy, sample: SourceSample, variant: int) -> str:
    """What a variant depends on: the policy, the source bytes, its boxes and the variant number.
    Equal keys give byte-identical outputs, so a row with a known key is reused, not recomputed."""
    text = f"{policy.version}:{sample.sha256}:{boxes_digest(sample.boxes)}:{variant}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decode_rgb(data: bytes) -> np.ndarray:
    """Displayed (EXIF-oriented) 8-bit RGB pixels, the frame boxes refer to."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(to_rgb(img), dtype=np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of H×W×3 uint8 RGB pixels, at the fixed compression level of every variant."""
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def augment_stream(samples: Iterable[SourceSample], policy: AugmentationPolicy, *,
                   variants: int | None = None, skip: frozenset[str] = frozenset(),
                   batch_size: int = 16, device: str = "cpu") -> Iterator[AugmentedVariant]:
    """Yield every variant of every sample whose input key is not in ``skip``, in bounded batches
    of about ``batch_size`` variants (a sample's source image is decoded once per batch).

    Raises:
        ValueError: when ``batch_size`` is below 1.
    """
    k = policy.variants_per_sample if variants is None else variants
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[tuple[SourceSample, int, str]] = []
    for sample in samples:
        for variant in range(k):
            key = input_key(policy, sample, variant)
            if key in skip:
                continue
            pending.append((sample, variant, key))
            if len(pending) >= batch_size:
                yield from _augment_batch(pending, policy, device)
                pending = []
    if pending:
        yield from _augment_batch(pending, policy, device)


def _augment_batch(pending: list[tuple[SourceSample, int, str]], policy: AugmentationPolicy,
                   device: str) -> Iterator[AugmentedVariant]:
    """The variants of one batch of (sample, variant number, input key), in that order."""
    decoded: dict[str, np.ndarray] = {}
    images, plist = [], []
    for sample, variant, _ in pending:
        if sample.sha256 not in decoded:
            decoded[sample.sha256] = decode_rgb(sample.load())
        pixels = decoded[sample.sha256]
        images.append(pixels)
        plist.append(sample_params(policy, sample.sha256, variant, pixels.shape[1],
                                   pixels.shape[0]))
    outputs = apply_batch(images, plist, device)
    for (sample, variant, key), params, pixels in zip(pending, plist, outputs):
        png = encode_png(pixels)
        src = np.array([b.box for b in sample.boxes], dtype=np.float64).reshape(-1, 4)
        moved = transform_boxes(src, params, policy.min_visibility, policy.min_size_px)
        yield AugmentedVariant(sample, variant, key, params, png,
                               hashlib.sha256(png).hexdigest(), _kept_boxes(sample, moved),
                               int((~moved.kept).sum()))


def _kept_boxes(sample: SourceSample, moved: BoxResult) -> list[dict]:
    """The boxes of ``sample`` that survived, moved, with their source annotation and visibility."""
    kept_boxes = []
    j = 0
    for i, b in enumerate(sample.boxes):
        if not moved.kept[i]:
            continue
        x1, y1, x2, y2 = (float(v) for v in moved.boxes[j])
        j += 1
        kept_boxes.append({"source_annotation_id": b.annotation_id,
                           "class_name": b.class_name, "class_id": b.class_id,
                           "x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2,
                           "visibility": float(moved.visibility[i])})
    return kept_boxes
