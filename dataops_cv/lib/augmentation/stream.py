"""Streaming augmentation: source samples in, augmented variants (recipes, boxes, PNG) out.

:func:`augment_stream` samples every variant's parameters
(:mod:`dataops_cv.lib.augmentation.params`) and moves the boxes
(:mod:`dataops_cv.lib.augmentation.geometry`) — the variant's *recipe*, cheap — and renders pixels
only for the variants the caller asks for: it decodes their sources once per batch, applies the
kernels on the device (:mod:`dataops_cv.lib.augmentation.kernels`, hence torch) and encodes PNG.
:func:`render_pixels` / :func:`render_png` rebuild any variant from its recipe and its source's
bytes, byte-identical to what the stream rendered, so readers render on the fly.

A variant's :func:`input_key` names everything it depends on, so a caller skips the variants it
already holds. The PNG encoder (Pillow over the host's zlib) is the one outside dependency of the
bytes, as for the synthetic rig.
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
    size: tuple[int, int] | None = None  # (width, height) of the displayed frame, when known:
    # a variant that is not rendered then needs no decode at all


@dataclass(frozen=True)
class AugmentedVariant:
    """One computed variant: its parameters, the boxes that survived and, when it was rendered,
    its PNG bytes (``png`` and ``sha256`` are None for a recipe only)."""

    source: SourceSample
    variant: int
    input_key: str
    params: AugParams
    png: bytes | None
    sha256: str | None
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


def render_pixels(source: bytes, params: AugParams, device: str = "cpu") -> np.ndarray:
    """The H×W×3 uint8 pixels of the variant ``params`` describes, from its source's encoded
    bytes: the pixels :func:`augment_stream` renders for it, on any device and in any process.

    Raises:
        ValueError: the source's size is not the one the parameters were sampled for.
    """
    return apply_batch([decode_rgb(source)], [params], device)[0]


def render_png(source: bytes, params: AugParams, device: str = "cpu") -> bytes:
    """The variant's PNG bytes, byte-identical to the materialized ``augmented/<sha256>.png``."""
    return encode_png(render_pixels(source, params, device))


def augment_stream(samples: Iterable[SourceSample], policy: AugmentationPolicy, *,
                   variants: int | None = None, skip: frozenset[str] = frozenset(),
                   batch_size: int = 16, device: str = "cpu",
                   render: Callable[[str], bool] | bool = True) -> Iterator[AugmentedVariant]:
    """Yield every variant of every sample whose input key is not in ``skip``, in bounded batches
    of about ``batch_size`` variants (a sample's source image is decoded once per batch).

    ``render`` says which variants get pixels: True (all), False (recipes only) or a predicate
    on the input key. A recipe of a sample whose ``size`` is known needs no decode.

    Raises:
        ValueError: when ``batch_size`` is below 1.
    """
    k = policy.variants_per_sample if variants is None else variants
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    wants = render if callable(render) else (lambda _key, r=bool(render): r)
    pending: list[tuple[SourceSample, int, str, bool]] = []
    for sample in samples:
        for variant in range(k):
            key = input_key(policy, sample, variant)
            if key in skip:
                continue
            pending.append((sample, variant, key, bool(wants(key))))
            if len(pending) >= batch_size:
                yield from _augment_batch(pending, policy, device)
                pending = []
    if pending:
        yield from _augment_batch(pending, policy, device)


def _augment_batch(pending: list[tuple[SourceSample, int, str, bool]],
                   policy: AugmentationPolicy, device: str) -> Iterator[AugmentedVariant]:
    """The variants of one batch of (sample, variant number, input key, render?), in order."""
    decoded: dict[str, np.ndarray] = {}
    plist: list[AugParams] = []
    images, rendered = [], []
    for i, (sample, variant, _, draw) in enumerate(pending):
        pixels = None
        if draw or sample.size is None:
            if sample.sha256 not in decoded:
                decoded[sample.sha256] = decode_rgb(sample.load())
            pixels = decoded[sample.sha256]
            width, height = pixels.shape[1], pixels.shape[0]
        else:
            width, height = sample.size
        plist.append(sample_params(policy, sample.sha256, variant, width, height))
        if draw:
            images.append(pixels)
            rendered.append(i)
    outputs = dict(zip(rendered, apply_batch(images, [plist[i] for i in rendered], device)))
    for i, ((sample, variant, key, _), params) in enumerate(zip(pending, plist)):
        png = encode_png(outputs[i]) if i in outputs else None
        src = np.array([b.box for b in sample.boxes], dtype=np.float64).reshape(-1, 4)
        moved = transform_boxes(src, params, policy.min_visibility, policy.min_size_px)
        yield AugmentedVariant(sample, variant, key, params, png,
                               hashlib.sha256(png).hexdigest() if png is not None else None,
                               _kept_boxes(sample, moved), int((~moved.kept).sum()))


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
