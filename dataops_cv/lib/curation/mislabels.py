"""Likely mislabeled boxes: confident learning on out-of-fold predictions of a small crop classifier.

A box is likely mislabeled when a model that never saw its image in training confidently names
another class. Three steps:

1. :func:`crop_boxes` cuts each box (with a little context) out of its decoded image, resized to
   ``CROP_SIZE`` squares, and describes its geometry (shape, size and place in the frame).
2. :func:`out_of_fold_probs` trains a small CNN per fold, folds split by image so that no box's
   scorer trained on its image (nor on the other boxes of it, which share its lighting and often
   its objects), and returns every box's class probabilities from the model that did not see it.
3. :func:`find_label_issues` applies confident learning (Northcutt, Jiang and Chuang, "Confident
   Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021): per-class confidence
   thresholds, the confident joint of given and likely true class, calibrated to the label counts,
   and pruning by noise rate, ranked by margin.

Boxes the crop cannot show are not judged (:func:`judgeable`): a box with a short side below
``MIN_JUDGED_SIDE_PX`` holds too few pixels to tell classes apart, and a box mostly covered by other
annotated boxes of its image shows mainly its occluder, so a confident "other class" is the
occluder's class, not evidence against the label. Both are known from the annotations alone.

Reproducible: every fold's seed comes from ``MislabelConfig.seed`` and the fold index, folds from a
hash of the group ids, and training runs in one thread, so the same inputs give bit-identical
probabilities in any process.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from dataops_cv.lib.core.images import to_rgb
from dataops_cv.lib.core.parallel import resolve_workers

CROP_SIZE = 32
# Bump when the architecture, the features or the training recipe change: stored probabilities
# and flags from another version are not comparable.
MODEL_VERSION = "mislabel-cnn-3"  # 3: at most max_steps a fold
GEOMETRY_FIELDS = ("log_aspect", "log_rel_area", "centre_x", "centre_y")
_CENTRE_X = GEOMETRY_FIELDS.index("centre_x")
# Measured on four synthetic days (2153 boxes, 5 % of labels flipped) with folds by capture
# sequence, so that the scoring model never saw the object: about half the false flags were
# boxes almost wholly inside other boxes (mostly objects fully hidden behind nearer ones), and
# skipping boxes over 90 % covered removed them at no cost in recall; a 10 px minimum side removed
# one or two more for a point of recall. With folds by image, as the pipeline runs, there were no
# false flags to remove.
MIN_JUDGED_SIDE_PX = 10.0
MAX_JUDGED_COVERED = 0.9
_INIT_LOCK = threading.Lock()


class NotEnoughData(ValueError):
    """Too few boxes or images to train a model per fold; nothing can be judged."""


def _clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """The box clipped to the frame, ordered, at least 1 px wide and high, and inside the frame."""
    # NaN says nothing about where the box is: take the frame's origin; infinities clip.
    coords = [0.0 if math.isnan(float(v)) else float(v) for v in box]
    x0, x1 = sorted((coords[0], coords[2]))
    y0, y1 = sorted((coords[1], coords[3]))
    out = []
    for lo, hi, size in ((x0, x1, width), (y0, y1, height)):
        lo, hi = min(max(lo, 0.0), float(size)), min(max(hi, 0.0), float(size))
        if hi - lo < 1.0:
            centre = min(max((lo + hi) / 2, 0.5), size - 0.5)
            lo, hi = centre - 0.5, centre + 0.5
        out.append((lo, hi))
    (x0, x1), (y0, y1) = out
    return x0, y0, x1, y1


def crop_boxes(data: bytes, boxes: Sequence[Sequence[float]], size: int = CROP_SIZE,
               context: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Crops and geometry of the boxes of one image, decoded once.

    Each box is clipped to the displayed (EXIF-oriented) frame, made at least 1 px on each side,
    widened by ``context`` of its width and height on every side (pixels beyond the frame are
    black) and resized to ``size`` x ``size``.

    Args:
        data: encoded image bytes.
        boxes: ``(x_min, y_min, x_max, y_max)`` in displayed pixels; reversed, non-finite or
            out-of-frame coordinates are repaired, never rejected.
        size: side of the square crops.
        context: share of the box's width and height added on each side.

    Returns:
        ``(crops, geometry)``: uint8 ``(n, 3, size, size)`` and float32 ``(n, 4)`` with columns
        ``GEOMETRY_FIELDS``: log(width / height), log(box area / frame area), box centre in
        fractions of the frame's width and height.

    Raises:
        PIL.UnidentifiedImageError, OSError: the bytes do not decode as an image.
    """
    crops = np.zeros((len(boxes), 3, size, size), dtype=np.uint8)
    geometry = np.zeros((len(boxes), len(GEOMETRY_FIELDS)), dtype=np.float32)
    if len(boxes) == 0:
        return crops, geometry
    with Image.open(io.BytesIO(data)) as img:
        rgb = to_rgb(img)
        rgb.load()
    width, height = rgb.size
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = _clip_box(box, width, height)
        w, h = x1 - x0, y1 - y0
        cx0, cy0 = x0 - context * w, y0 - context * h
        cx1, cy1 = x1 + context * w, y1 + context * h
        # Integer crop (zero-filled beyond the frame), then resample exactly the fractional region.
        ix0, iy0 = math.floor(cx0), math.floor(cy0)
        ix1, iy1 = max(math.ceil(cx1), ix0 + 1), max(math.ceil(cy1), iy0 + 1)
        patch = rgb.crop((ix0, iy0, ix1, iy1)).resize(
            (size, size), Image.BILINEAR, box=(cx0 - ix0, cy0 - iy0, cx1 - ix0, cy1 - iy0))
        crops[i] = np.asarray(patch, dtype=np.uint8).transpose(2, 0, 1)
        geometry[i] = (math.log(w / h), math.log(w * h / (width * height)),
                       (x0 + x1) / 2 / width, (y0 + y1) / 2 / height)
    return crops, geometry


def covered_fraction(boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """Share of each box's area under the union of the other boxes of its image.

    Which of two overlapping boxes is in front is unknown from boxes alone, so both count as
    covered: an upper bound on how much of each object is hidden.

    Returns:
        float64 ``(n,)`` in [0, 1]; 0 for a box of zero area.
    """
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, x1 = np.minimum(arr[:, 0], arr[:, 2]), np.maximum(arr[:, 0], arr[:, 2])
    y0, y1 = np.minimum(arr[:, 1], arr[:, 3]), np.maximum(arr[:, 1], arr[:, 3])
    out = np.zeros(len(arr))
    for i in range(len(arr)):
        area = (x1[i] - x0[i]) * (y1[i] - y0[i])
        others = np.flatnonzero((x0 < x1[i]) & (x1 > x0[i]) & (y0 < y1[i]) & (y1 > y0[i]))
        others = others[others != i]
        if area <= 0 or not len(others):
            continue
        # Exact union area inside box i, on the grid of all the boxes' edges.
        xs = np.unique(np.clip(np.concatenate([x0[others], x1[others], [x0[i], x1[i]]]),
                               x0[i], x1[i]))
        ys = np.unique(np.clip(np.concatenate([y0[others], y1[others], [y0[i], y1[i]]]),
                               y0[i], y1[i]))
        mx, my = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
        inside = np.zeros((len(my), len(mx)), dtype=bool)
        for j in others:
            inside |= ((my >= y0[j]) & (my < y1[j]))[:, None] & ((mx >= x0[j]) & (mx < x1[j]))
        out[i] = float((np.diff(ys)[:, None] * np.diff(xs)[None, :] * inside).sum()) / area
    return np.clip(out, 0.0, 1.0)


def judgeable(boxes: Sequence[Sequence[float]], width: int | None = None,
              height: int | None = None, min_side: float = MIN_JUDGED_SIDE_PX,
              max_covered: float = MAX_JUDGED_COVERED) -> np.ndarray:
    """Which boxes of one image a crop classifier can judge, from the annotations alone.

    A box is judged when its shorter side is at least ``min_side`` px (after clipping to the
    ``width`` x ``height`` frame when given) and at most ``max_covered`` of it lies under the
    image's other boxes (:func:`covered_fraction`). Pass the result, concatenated like the boxes,
    to :func:`find_label_issues` as ``judged``.

    Returns:
        bool ``(n,)``.
    """
    if width is not None and height is not None:
        clipped = np.array([_clip_box(b, width, height) for b in boxes],
                           dtype=np.float64).reshape(-1, 4)
    else:
        arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        clipped = np.concatenate([np.minimum(arr[:, :2], arr[:, 2:]),
                                  np.maximum(arr[:, :2], arr[:, 2:])], axis=1)
    sides = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    return (sides >= min_side) & (covered_fraction(clipped) <= max_covered)


@dataclass(frozen=True)
class MislabelConfig:
    """How the per-fold classifiers are trained.

    ``min_boxes``: with fewer boxes to learn from (scored and extra together),
    :func:`out_of_fold_probs` raises :class:`NotEnoughData` instead of training models that
    would judge by chance.

    ``min_steps``: each fold trains for at least this many optimiser steps, taking more epochs
    on small sets. Eight epochs of 300 boxes are ~40 steps: the model then agrees with only 58%
    of the labels and its doubts flag one box in ten; 160 steps reach 98% and flag only the
    planted flip (measured on a synthetic day of 80 frames).

    ``max_steps``: each fold trains for at most this many steps, so training stops growing
    with the data: past ~3,200 training boxes a fold (eight epochs of them are 400 steps of 64)
    it sees each box less than eight times but more distinct boxes, and only scoring, a forward
    pass, grows with the boxes. A 1,000-frame HD day (3,963 boxes) trains 396 steps a fold
    unchanged; 10,000 frames would take ten times that without the cap.
    """

    folds: int = 5
    epochs: int = 8
    batch: int = 64
    lr: float = 4e-3
    weight_decay: float = 1e-4
    seed: int = 0
    min_boxes: int = 100
    min_steps: int = 160
    max_steps: int = 400

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ValueError(f"MislabelConfig.folds must be >= 2, got {self.folds}")
        if self.max_steps < self.min_steps:
            raise ValueError(f"MislabelConfig.max_steps must be >= min_steps ({self.min_steps}), "
                             f"got {self.max_steps}")
        for name in ("epochs", "batch", "min_boxes"):
            if getattr(self, name) < 1:
                raise ValueError(f"MislabelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"MislabelConfig needs lr > 0 and weight_decay >= 0, got "
                             f"{self.lr} and {self.weight_decay}")


class CropClassifier(nn.Module):
    """Three strided conv blocks on the crop, pooled, joined with the box geometry."""

    def __init__(self, n_classes: int, n_geometry: int):
        super().__init__()
        chans = (3, 16, 32, 48)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:], strict=False):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(chans[-1] + n_geometry, 64), nn.ReLU(inplace=True),
                                  nn.Linear(64, n_classes))

    def forward(self, crops: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.features(crops), geometry], dim=1))


@dataclass(frozen=True)
class FoldModel:
    """One fold's trained classifier and the geometry standardisation it was trained with."""

    state: dict[str, torch.Tensor]
    mean: np.ndarray  # float32 (k,)
    std: np.ndarray  # float32 (k,)


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold probabilities, the record of which rows trained which fold's model, and the
    models (to score boxes of images none of them trained on, see :func:`score_with`)."""

    probs: np.ndarray  # float32 (n, n_classes)
    fold: np.ndarray  # int (n,): the fold whose model scored each box
    trained_on: tuple[np.ndarray, ...]  # per fold: indices of the scored rows its model trained on
    models: tuple[FoldModel, ...] = ()


def fold_assignment(groups: Sequence[str], folds: int, seed: int = 0) -> np.ndarray:
    """Fold of each row: whole groups per fold, balanced by row count, independent of row order.

    Groups go in the order of a seeded hash of their id, each to the fold with the fewest rows so
    far (ties to the lowest fold).
    """
    counts: dict[str, int] = {}
    for g in groups:
        counts[str(g)] = counts.get(str(g), 0) + 1
    order = sorted(counts, key=lambda g: hashlib.sha256(f"{seed}\x1f{g}".encode()).digest())
    sizes = [0] * folds
    of_group: dict[str, int] = {}
    for g in order:
        k = min(range(folds), key=lambda f: (sizes[f], f))
        of_group[g] = k
        sizes[k] += counts[g]
    return np.array([of_group[str(g)] for g in groups], dtype=np.int64)


def _as_inputs(crops: np.ndarray, geometry: np.ndarray, labels: np.ndarray, n_classes: int,
               what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    crops, geometry, labels = np.asarray(crops), np.asarray(geometry), np.asarray(labels)
    n = len(labels)
    if crops.ndim != 4 or crops.shape[1] != 3 or crops.shape[2] != crops.shape[3] \
            or crops.dtype != np.uint8:
        raise ValueError(f"{what}: crops must be uint8 (n, 3, size, size), got {crops.dtype} "
                         f"{crops.shape}")
    if len(crops) != n or geometry.ndim != 2 or len(geometry) != n:
        raise ValueError(f"{what}: crops, geometry and labels need one row per box, got "
                         f"{crops.shape}, {geometry.shape} and {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= n_classes))[0])
        raise ValueError(f"{what}: labels must be in [0, {n_classes}), box {bad} has "
                         f"{labels[bad]}")
    return crops, geometry.astype(np.float32), labels.astype(np.int64)


def _fold_seed(seed: int, fold: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{MODEL_VERSION}\x1f{seed}\x1f{fold}".encode())
                          .digest()[:8], "big") >> 1


def _to_float(crops: torch.Tensor) -> torch.Tensor:
    return crops.float().div_(255.0).sub_(0.5)


def _flip(crops: torch.Tensor, geometry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    geometry = geometry.clone()
    geometry[:, _CENTRE_X] = -geometry[:, _CENTRE_X]  # centre_x is standardised around 0.5
    return crops.flip(-1), geometry


class _AdamW:
    """AdamW (Loshchilov and Hutter, 2019) in a few in-place tensor ops.

    Not ``torch.optim.AdamW``: constructing any ``torch.optim`` optimizer imports
    ``torch._dynamo``, which costs seconds in every new process (10 s on our 2-core machine
    without cached bytecode) for arithmetic this small.
    """

    def __init__(self, params: Sequence[nn.Parameter], weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.weight_decay, self.betas, self.eps = weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        bias1, bias2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            p.mul_(1 - lr * self.weight_decay)
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, (v / bias2).sqrt_().add_(self.eps), value=-lr / bias1)


def _one_cycle(step: int, total: int, peak: float, warmup: float = 0.2) -> float:
    """Learning rate at ``step``: linear warm-up from peak / 25, then cosine down to near 0."""
    rise = max(int(total * warmup), 1)
    if step < rise:
        return peak / 25 + (peak - peak / 25) * step / rise
    progress = (step - rise) / max(total - rise, 1)
    return peak / 1e4 + (peak - peak / 1e4) * (1 + math.cos(math.pi * progress)) / 2


def _standardised(geometry: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    g = torch.from_numpy((geometry - mean) / std)
    # Standardise centre_x around the frame's middle so a mirror image negates it.
    g[:, _CENTRE_X] = torch.from_numpy((geometry[:, _CENTRE_X] - 0.5) / std[_CENTRE_X])
    return g


def _score(model: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        # Average over the crop and its mirror image: training saw both, so neither is favoured.
        x = _to_float(x)
        return (torch.softmax(model(x, g), 1) + torch.softmax(model(*_flip(x, g)), 1)) / 2


def _train_and_score(train_x: torch.Tensor, train_g: torch.Tensor, train_y: torch.Tensor,
                     test_x: torch.Tensor, test_g: torch.Tensor, n_classes: int,
                     config: MislabelConfig, seed: int) -> tuple[torch.Tensor, nn.Module]:
    generator = torch.Generator().manual_seed(seed)
    with _INIT_LOCK:  # the initial weights come from torch's process-wide generator
        torch.manual_seed(seed)
        model = CropClassifier(n_classes, train_g.shape[1])
    opt = _AdamW(list(model.parameters()), config.weight_decay)
    n = len(train_y)
    batch = min(config.batch, n)
    per_epoch = max(n // batch, 1)
    epochs = max(config.epochs, math.ceil(config.min_steps / per_epoch))
    total = min(per_epoch * epochs, config.max_steps)
    epochs = math.ceil(total / per_epoch)
    step = 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5
        for b in range(min(per_epoch, total - step)):
            idx = order[b * batch:(b + 1) * batch]
            x, g = _to_float(train_x[idx]), train_g[idx]
            f = flips[idx]
            if f.any():
                x[f], g[f] = _flip(x[f], g[f])
            loss = F.cross_entropy(model(x, g), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step(_one_cycle(step, total, config.lr))
            step += 1
    return _score(model, test_x, test_g), model


@dataclass(frozen=True)
class _FoldData:
    """What every fold's training reads: the scored boxes first, then the extra ones."""

    x: np.ndarray  # uint8 (N, 3, s, s)
    geometry: np.ndarray  # float32 (N, k)
    y: np.ndarray  # int64 (N,)
    fold: np.ndarray  # fold of each scored box
    n: int  # scored boxes
    n_classes: int
    config: MislabelConfig


def _fold_probs(data: _FoldData, k: int) -> tuple[np.ndarray, np.ndarray, FoldModel]:
    """Probabilities of fold ``k``'s boxes from a model trained on every other box, and the
    scored rows it trained on. Touches no process-wide torch state but the seeded model
    initialisation, which holds ``_INIT_LOCK``: folds may train in concurrent threads."""
    n = data.n
    test = np.flatnonzero(data.fold == k)
    train = np.concatenate([np.flatnonzero(data.fold != k), np.arange(n, len(data.y))])
    mean = data.geometry[train].mean(axis=0)
    std = data.geometry[train].std(axis=0) + 1e-6
    g = _standardised(data.geometry, mean, std)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    train_t, test_t = torch.from_numpy(train), torch.from_numpy(test)
    p, model = _train_and_score(x[train_t], g[train_t], y[train_t], x[test_t], g[test_t],
                                data.n_classes, data.config, _fold_seed(data.config.seed, k))
    return p.numpy(), train[train < n], FoldModel(model.state_dict(), mean, std)


def _in_thread(data: _FoldData, k: int) -> tuple[np.ndarray, np.ndarray, FoldModel]:
    torch.set_num_threads(1)  # OpenMP's thread count is per thread: this one's too
    return _fold_probs(data, k)


def out_of_fold(crops: np.ndarray, geometry: np.ndarray, labels: np.ndarray,
                groups: Sequence[str], n_classes: int, config: MislabelConfig = MislabelConfig(),
                extra_train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                workers: int = 1) -> OutOfFold:
    """:func:`out_of_fold_probs` with its fold assignment and training record. ``workers``
    threads train whole folds (<= 0: every CPU); the result does not depend on it.

    Raises:
        ValueError: inputs of mismatched lengths or labels outside ``[0, n_classes)``.
        NotEnoughData: fewer than ``config.min_boxes`` boxes to learn from, or boxes of one
            image and no extra boxes.
    """
    crops, geometry, labels = _as_inputs(crops, geometry, labels, n_classes, "scored boxes")
    if len(groups) != len(labels):
        raise ValueError(f"groups must name one group per box, got {len(groups)} for "
                         f"{len(labels)} boxes")
    if extra_train is None:
        extra = (np.zeros((0, *crops.shape[1:]), np.uint8),
                 np.zeros((0, geometry.shape[1]), np.float32), np.zeros(0, np.int64))
    else:
        extra = _as_inputs(*extra_train, n_classes, "extra_train")
        if extra[0].shape[1:] != crops.shape[1:] or extra[1].shape[1] != geometry.shape[1]:
            raise ValueError(f"extra_train crops {extra[0].shape[1:]} and geometry width "
                             f"{extra[1].shape[1]} must match the scored boxes' "
                             f"{crops.shape[1:]} and {geometry.shape[1]}")
    n_groups = len(set(map(str, groups)))
    n_extra = len(extra[2])
    if len(labels) + n_extra < config.min_boxes:
        raise NotEnoughData(f"need at least {config.min_boxes} boxes to learn from, got "
                            f"{len(labels)} scored and {n_extra} extra")
    if n_groups < 2 and not n_extra:
        raise NotEnoughData(f"scoring boxes out of fold needs boxes of at least 2 images or "
                            f"extra training boxes, got {n_groups} image and no extra boxes")
    # One image with extra boxes: a single fold whose model trains on the extra boxes alone.
    folds = min(config.folds, n_groups)
    fold = fold_assignment(groups, folds, config.seed)
    # Crops stay uint8 until batched: a quarter of the memory of float copies.
    data = _FoldData(np.ascontiguousarray(np.concatenate([crops, extra[0]])),
                     np.concatenate([geometry, extra[1]]),
                     np.concatenate([labels, extra[2]]), fold, len(labels), n_classes, config)
    probs = np.zeros((len(labels), n_classes), dtype=np.float32)
    trained_on = []
    models = []
    workers = min(resolve_workers(workers), folds)
    threads = torch.get_num_threads()
    # One torch thread per fold: reductions in a fixed order, so bit-identical results. Folds
    # are independent (own seed, own generator), so ``workers`` threads train whole folds at
    # once: torch's kernels release the GIL, and a thread needs no second torch import (3.5 s
    # in a spawned process here, more than a fold of a 1,000-box day takes).
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), ThreadPoolExecutor(
                workers, thread_name_prefix="mislabel-fold") as pool:
            for k, (p, trained, model) in enumerate(pool.map(lambda k: _in_thread(data, k),
                                                             range(folds))):
                probs[fold == k] = p
                trained_on.append(trained)
                models.append(model)
    finally:
        torch.set_num_threads(threads)
    return OutOfFold(probs, fold, tuple(trained_on), tuple(models))


def score_with(models: Sequence[FoldModel], crops: np.ndarray, geometry: np.ndarray,
               fold: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities of boxes from the stored fold ``models`` of an earlier
    :func:`out_of_fold`: a box whose image was in fold ``k`` (``fold`` = k) is scored by that
    fold's model, which never trained on it, as it was then; a box of an image no model saw
    (``fold`` = -1) by the mean of every fold's model. One torch thread, so the same bits as
    the scoring inside :func:`out_of_fold`."""
    crops = np.asarray(crops)
    geometry = np.asarray(geometry, dtype=np.float32)
    fold = np.asarray(fold, dtype=np.int64)
    if not (len(crops) == len(geometry) == len(fold)):
        raise ValueError(f"crops, geometry and fold need one row per box, got {crops.shape}, "
                         f"{geometry.shape} and {fold.shape}")
    if len(fold) and (fold.min() < -1 or fold.max() >= len(models)):
        raise ValueError(f"fold must be -1 or a fold in [0, {len(models)}), got "
                         f"{fold.min()}..{fold.max()}")
    probs = np.zeros((len(fold), n_classes), dtype=np.float32)
    if not len(fold):
        return probs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.from_numpy(np.ascontiguousarray(crops))
        unseen = fold == -1
        for k, stored in enumerate(models):
            mine = (fold == k) | unseen
            if not mine.any():
                continue
            model = CropClassifier(n_classes, geometry.shape[1])
            model.load_state_dict(stored.state)
            rows = torch.from_numpy(np.flatnonzero(mine))
            p = _score(model, x[rows], _standardised(geometry[mine], stored.mean, stored.std))
            own = fold[mine] == k
            probs[np.flatnonzero(mine)[own]] = p.numpy()[own]
            probs[np.flatnonzero(mine)[~own]] += p.numpy()[~own] / len(models)
    finally:
        torch.set_num_threads(threads)
    return probs


def save_models(models: Sequence[FoldModel], meta: dict[str, object]) -> bytes:
    """Fold models and what they were trained on (``meta``: JSON-able) as bytes."""
    buf = io.BytesIO()
    torch.save({"model_version": MODEL_VERSION, "meta": meta,
                "folds": [{"state": m.state, "mean": torch.from_numpy(m.mean),
                           "std": torch.from_numpy(m.std)} for m in models]}, buf)
    return buf.getvalue()


def load_models(data: bytes) -> tuple[tuple[FoldModel, ...], dict[str, object]] | None:
    """What :func:`save_models` wrote; None for another MODEL_VERSION or unreadable bytes."""
    try:
        doc = torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable blob means: train again
        return None
    if not isinstance(doc, dict) or doc.get("model_version") != MODEL_VERSION:
        return None
    return (tuple(FoldModel(f["state"], f["mean"].numpy(), f["std"].numpy())
                  for f in doc["folds"]), doc["meta"])


def out_of_fold_probs(crops: np.ndarray, geometry: np.ndarray, labels: np.ndarray,
                      groups: Sequence[str], n_classes: int,
                      config: MislabelConfig = MislabelConfig(),
                      extra_train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                      workers: int = 1) -> np.ndarray:
    """Each box's class probabilities from the model of the fold that did not train on its image.

    Folds split by ``groups`` (the image id), so the boxes of one image never train the model
    that scores them. ``extra_train`` (e.g. earlier days' boxes, as ``(crops, geometry,
    labels)``) joins every fold's training data and is never scored. Deterministic: seeded, one
    torch thread while it runs (the caller's thread count is restored), the caller's torch RNG
    untouched.

    Args:
        crops: uint8 ``(n, 3, s, s)`` from :func:`crop_boxes`.
        geometry: float32 ``(n, k)`` from :func:`crop_boxes`.
        labels: int ``(n,)`` given class indices in ``[0, n_classes)``.
        groups: image id of each box.

    Returns:
        float32 ``(n, n_classes)``, rows summing to 1.

    Raises:
        ValueError: inputs of mismatched lengths or labels outside ``[0, n_classes)``.
        NotEnoughData: fewer than ``config.min_boxes`` boxes to learn from, or boxes of one
            image and no extra boxes.
    """
    return out_of_fold(crops, geometry, labels, groups, n_classes, config, extra_train,
                       workers).probs


@dataclass(frozen=True)
class LabelIssues:
    """Per box: whether its label is likely wrong, and what the model thinks instead."""

    is_issue: np.ndarray  # bool (n,)
    self_confidence: np.ndarray  # float (n,): predicted probability of the given label
    suggested: np.ndarray  # int (n,): the most probable class
    suggested_prob: np.ndarray  # float (n,)
    thresholds: np.ndarray  # float (n_classes,): per-class confidence thresholds used
    confident_joint: np.ndarray  # int (n_classes, n_classes): given label x confident class


def find_label_issues(labels: np.ndarray, probs: np.ndarray,
                      judged: np.ndarray | None = None, max_given_prob: float = 0.01,
                      min_suggested_prob: float = 0.5) -> LabelIssues:
    """Likely label errors by confident learning (Northcutt et al., 2021), our implementation.

    1. Threshold ``t_j`` = mean predicted probability of class j over boxes labeled j.
    2. A box's confident class is the most probable class j with ``p_j >= t_j`` (none if no class
       reaches its threshold); the confident joint counts (given label, confident class).
    3. Each row of the joint is calibrated to the number of boxes with that label; the off-diagonal
       entry (i, j) estimates how many boxes labeled i are really j.
    4. Prune by noise rate: among boxes labeled i, that many with the largest margin
       ``p_j - p_i`` are candidates (never all of a class), and a box is an issue when it is a
       candidate and its confident class differs from its label.
    5. Clear disagreements are issues too: the given label's probability is below
       ``max_given_prob`` while another class has at least ``min_suggested_prob``. Step 2 misses
       them when the model is near-certain on average: measured on a synthetic day, the class
       threshold was 0.98 and a planted car labelled traffic_sign got 0.95 car and 4e-7
       traffic_sign, so it never entered the joint.

    Args:
        labels: int ``(n,)`` given classes.
        probs: ``(n, n_classes)`` out-of-fold probabilities.
        judged: optional bool ``(n,)``; boxes outside it (see :func:`judgeable`) neither shape
            the thresholds and the joint nor are flagged.

    Raises:
        ValueError: shapes disagree, or a label is outside ``[0, n_classes)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n = len(labels)
    if probs.ndim != 2 or len(probs) != n:
        raise ValueError(f"probs must be (n, n_classes) with n = {n} labels, got {probs.shape}")
    k = probs.shape[1]
    if n and (labels.min() < 0 or labels.max() >= k):
        bad = int(np.flatnonzero((labels < 0) | (labels >= k))[0])
        raise ValueError(f"labels must be in [0, {k}), box {bad} has {labels[bad]}")
    judged = np.ones(n, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    if judged.shape != (n,):
        raise ValueError(f"judged must be ({n},) like labels, got {judged.shape}")
    rows = np.arange(n)
    self_confidence = probs[rows, labels] if n else np.zeros(0)
    suggested = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    suggested_prob = probs[rows, suggested] if n else np.zeros(0)

    # A class nobody labeled has no threshold to learn; no box is confidently of it.
    thresholds = np.full(k, np.inf)
    for j in range(k):
        mine = judged & (labels == j)
        if mine.any():
            thresholds[j] = probs[mine, j].mean()
    above = probs >= thresholds[None, :]
    confident = np.where(above.any(axis=1), np.where(above, probs, -1.0).argmax(axis=1), -1)
    confident[~judged] = -1
    joint = np.zeros((k, k), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)

    label_counts = np.bincount(labels[judged], minlength=k)
    row_sums = joint.sum(axis=1)
    calibrated = np.divide(joint * label_counts[:, None], row_sums[:, None],
                           out=np.zeros((k, k)), where=row_sums[:, None] > 0)
    candidate = np.zeros(n, dtype=bool)
    for i in range(k):
        mine = np.flatnonzero(judged & (labels == i))
        budget = max(len(mine) - 1, 0)  # keep at least one box of every class
        for j in range(k):
            take = min(int(round(calibrated[i, j])), budget) if j != i else 0
            if take <= 0:
                continue
            margin = probs[mine, j] - probs[mine, i]
            # Stable sort: equal margins resolve by row order, the same on every platform.
            best = mine[np.argsort(-margin, kind="stable")[:take]]
            candidate[best] = True
            budget -= take
    clear = judged & (self_confidence < max_given_prob) & (suggested_prob >= min_suggested_prob) \
        & (suggested != labels) if n else np.zeros(0, dtype=bool)
    is_issue = (candidate & counted & (confident != labels)) | clear
    return LabelIssues(is_issue, self_confidence.astype(np.float32), suggested.astype(np.int64),
                       suggested_prob.astype(np.float32), thresholds.astype(np.float32), joint)
