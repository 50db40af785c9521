"""Torch pixel kernels: warp, colour, blur, noise and cutout, byte-identical on any device.

Why our own kernels, and not torchvision.transforms.v2 or kornia: both were considered. They draw
their random parameters from torch's global generator (whose stream differs between CPU and
CUDA), and their kernels interpolate and blend in float with reductions whose summation order
depends on the device and the thread count, so a GPU and a CPU (or two CPUs with different core
counts) give different low bits — then different PNG bytes and different content addresses. Here
every pixel operation is either an integer operation or a single IEEE-754 float32 operation per
tensor op (no fused multiply-add, no reduction in float), which gives the same result on any
device:

- geometry (flips, crop, rotation, scale, translation) is one affine warp per image: the inverse
  matrix is computed in Python floats, source coordinates by separate elementwise float32 ops,
  and bilinear weights quantised to 1/256 and blended in int32;
- colour: brightness and contrast (about the mean grey level times the brightness factor) as
  one 256-entry integer table per image; saturation blends with integer luma; factors are
  fixed point (1/256) and the mean is an integer sum;
- blur is a separable binomial kernel (1-2-1, 1-4-6-4-1, ...) in integer arithmetic;
- noise is drawn on the CPU from the sample's own NumPy generator, then added as integers;
- cutout fills integer rectangles.

On CUDA, images of a batch that share a size go through the device as one tensor. On the CPU,
:func:`apply_batch` runs :mod:`dataops_cv.lib.augmentation.cpu` instead: the same arithmetic one
image at a time in NumPy (the same bytes, tested), about twice as fast as these kernels on CPU
tensors, and without torch. The torch kernels here stay the reference the CUDA bytes are held to.
Only this module imports torch (:mod:`dataops_cv.lib.augmentation.stream` through it), so the
policy, parameters, geometry and tables load without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from dataops_cv.lib.augmentation import cpu
from dataops_cv.lib.augmentation.geometry import geometry_matrix, invert
from dataops_cv.lib.augmentation.params import FIXED_POINT, AugParams

MAX_BATCH_PIXELS = 64 * 1024 * 1024  # bounds one warp's coordinate and weight grids


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def apply_batch(images: Sequence[np.ndarray], params: Sequence[AugParams],
                device: str = "cpu") -> list[np.ndarray]:
    """Apply each variant's parameters to its H×W×3 uint8 image: on ``cpu`` one at a time in
    NumPy, on another torch device same-size images as one batch. Returns H×W×3 uint8 arrays,
    byte-identical on any device."""
    if len(images) != len(params):
        raise ValueError(f"{len(images)} images but {len(params)} parameter sets")
    for i, (img, p) in enumerate(zip(images, params)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {i}: expected H×W×3 uint8, found {img.dtype} {img.shape}")
        if img.shape[:2] != (p.height, p.width):
            raise ValueError(f"image {i} is {img.shape[1]}x{img.shape[0]} but its parameters "
                             f"were sampled for {p.width}x{p.height}")
    if device == "cpu":
        return [cpu.apply_one(img, p) for img, p in zip(images, params)]
    return apply_batch_torch(images, params, device)


def apply_batch_torch(images: Sequence[np.ndarray], params: Sequence[AugParams],
                      device: str = "cpu") -> list[np.ndarray]:
    """:func:`apply_batch` through the torch kernels on ``device`` (any, the CPU included), for
    images it has checked."""
    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape[:2], []).append(i)
    for (h, w), idx in groups.items():
        per = max(1, MAX_BATCH_PIXELS // (h * w))
        for start in range(0, len(idx), per):
            chunk = idx[start:start + per]
            result = _apply_same_size([images[i] for i in chunk], [params[i] for i in chunk],
                                      device)
            for i, arr in zip(chunk, result):
                out[i] = arr
    return [o for o in out if o is not None]


def _apply_same_size(images: list[np.ndarray], params: list[AugParams], device: str
                     ) -> list[np.ndarray]:
    dev = torch.device(device)
    x = torch.from_numpy(np.stack(images)).to(dev).permute(0, 3, 1, 2).to(torch.int32)
    x = _warp(x, params, dev)
    x = _color(x, params)
    x = _blur(x, params)
    x = _noise(x, params, dev)
    x = _cutout(x, params)
    return list(x.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy())


def _fill(params: list[AugParams], dev: torch.device) -> torch.Tensor:
    return torch.tensor([p.fill for p in params], dtype=torch.int32, device=dev)[:, :, None, None]


def _warp(x: torch.Tensor, params: list[AugParams], dev: torch.device,
          separable: bool = True) -> torch.Tensor:
    """Bilinear warp of every image with geometry by the inverse of its matrix; ``separable``
    sends rotation-free ones to :func:`_warp_axis_aligned` (the same bytes, faster)."""
    fast = [i for i, p in enumerate(params)
            if separable and p.has_geometry and p.rotate_deg == 0.0]
    todo = [i for i, p in enumerate(params) if p.has_geometry and i not in fast]
    if fast:
        x = _warp_axis_aligned(x, params, fast, dev)
    if not todo:
        return x
    n, (_, _, h, w) = len(todo), x.shape
    inv = torch.tensor([invert(geometry_matrix(params[i])) for i in todo], dtype=torch.float64)
    coef = [inv[:, k, None, None].to(torch.float32).to(dev) for k in range(6)]
    u = (torch.arange(w, dtype=torch.float32, device=dev) + 0.5)[None, None, :]
    v = (torch.arange(h, dtype=torch.float32, device=dev) + 0.5)[None, :, None]
    # One IEEE operation per step (no fused multiply-add, no reduction), so every device
    # computes the same coordinates bit for bit; float32 keeps 1e-4 px at 4k widths.
    sx = (u * coef[0]) + (v * coef[1])
    sx = sx + coef[2]
    sy = (u * coef[3]) + (v * coef[4])
    sy = sy + coef[5]
    inside = ((sx >= 0) & (sx <= w) & (sy >= 0) & (sy <= h))[:, None]
    px, py = sx - 0.5, sy - 0.5
    x0f, y0f = torch.floor(px), torch.floor(py)
    wx = torch.round((px - x0f) * FIXED_POINT).to(torch.int32)[:, None]
    wy = torch.round((py - y0f) * FIXED_POINT).to(torch.int32)[:, None]
    x0i, y0i = x0f.to(torch.int32), y0f.to(torch.int32)
    x0, x1 = x0i.clamp(0, w - 1), (x0i + 1).clamp(0, w - 1)
    y0, y1 = y0i.clamp(0, h - 1), (y0i + 1).clamp(0, h - 1)
    src = x[todo]
    # RGB packed in one int32: one gather per neighbour instead of three.
    packed = (src[:, 0] | (src[:, 1] << 8) | (src[:, 2] << 16)).reshape(-1)
    base = (torch.arange(n, device=dev, dtype=torch.int32) * (h * w))[:, None, None]
    row0, row1 = base + y0 * w, base + y1 * w

    def at(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        q = torch.take(packed, (row + col).to(torch.int64))
        return torch.stack([q & 255, (q >> 8) & 255, q >> 16], dim=1)

    top = at(row0, x0) * (FIXED_POINT - wx) + at(row0, x1) * wx
    bottom = at(row1, x0) * (FIXED_POINT - wx) + at(row1, x1) * wx
    warped = (top * (FIXED_POINT - wy) + bottom * wy + FIXED_POINT * FIXED_POINT // 2) >> 16
    warped = torch.where(inside, warped, _fill([params[i] for i in todo], dev))
    x = x.clone()
    x[todo] = warped
    return x


def _warp_axis_aligned(x: torch.Tensor, params: list[AugParams], todo: list[int],
                       dev: torch.device) -> torch.Tensor:
    """The warp of :func:`_warp` for matrices without rotation, where source x depends on the
    output column only and source y on the output row: the same arithmetic on 1-D coordinates,
    so the same bytes, at a fraction of the cost (row and column gathers instead of per-pixel)."""
    _, _, h, w = x.shape
    u = torch.arange(w, dtype=torch.float32, device=dev) + 0.5
    v = torch.arange(h, dtype=torch.float32, device=dev) + 0.5
    x = x.clone()
    for i in todo:
        a, b, c, d, e, f = (torch.tensor(k, dtype=torch.float64).to(torch.float32).to(dev)
                            for k in invert(geometry_matrix(params[i])))
        # b and d are zero here; adding their (signed) zero products keeps the general path's
        # operation order, hence its bits.
        sx = ((u * a) + (v[:1] * b)) + c
        sy = ((u[:1] * d) + (v * e)) + f
        inside = (((sx >= 0) & (sx <= w))[None, :] & ((sy >= 0) & (sy <= h))[:, None])
        px, py = sx - 0.5, sy - 0.5
        x0f, y0f = torch.floor(px), torch.floor(py)
        wx = torch.round((px - x0f) * FIXED_POINT).to(torch.int32)[None, None, :]
        wy = torch.round((py - y0f) * FIXED_POINT).to(torch.int32)[None, :, None]
        x0i, y0i = x0f.to(torch.int64), y0f.to(torch.int64)
        x0, x1 = x0i.clamp(0, w - 1), (x0i + 1).clamp(0, w - 1)
        y0, y1 = y0i.clamp(0, h - 1), (y0i + 1).clamp(0, h - 1)
        src = x[i]
        cols = src.index_select(2, x0) * (FIXED_POINT - wx) + src.index_select(2, x1) * wx
        out = (cols.index_select(1, y0) * (FIXED_POINT - wy) + cols.index_select(1, y1) * wy
               + FIXED_POINT * FIXED_POINT // 2) >> 16
        fill = torch.tensor(params[i].fill, dtype=torch.int32, device=dev)[:, None, None]
        x[i] = torch.where(inside[None], out, fill)
    return x


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    # BT.601 luma weights in 1/256 (77 + 150 + 29 = 256).
    return (r * 77 + g * 150 + b * 29 + 128) >> 8


def _scale_fixed(x: torch.Tensor, factor: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    # An arithmetic shift floors negative values too: round half up, the same on every device.
    return (((x - center) * factor + FIXED_POINT // 2) >> 8) + center


def _color(x: torch.Tensor, params: list[AugParams]) -> torch.Tensor:
    todo = [i for i, p in enumerate(params)
            if p.brightness != 1.0 or p.contrast != 1.0 or p.saturation != 1.0]
    if not todo:
        return x
    dev = x.device
    n = len(todo)
    y = x[todo]
    # Brightness then contrast about the mean grey level (the original image's, times the
    # brightness factor) map each channel value alone: one 256-entry table per image.
    gray = _gray(y)
    pixels = gray.shape[1] * gray.shape[2]
    # An integer sum is exact in any order, so the mean is the same on every device.
    mean = torch.div(gray.to(torch.int64).sum(dim=(1, 2)) + pixels // 2, pixels,
                     rounding_mode="floor").to(torch.int32)
    fb = torch.tensor([round(params[i].brightness * FIXED_POINT) for i in todo],
                      dtype=torch.int32, device=dev)
    fc = torch.tensor([round(params[i].contrast * FIXED_POINT) for i in todo],
                      dtype=torch.int32, device=dev)
    zero = torch.zeros((), dtype=torch.int32, device=dev)
    levels = torch.arange(256, dtype=torch.int32, device=dev)[None, :]
    bright = _scale_fixed(levels, fb[:, None], zero).clamp(0, 255)
    center = _scale_fixed(mean, fb, zero).clamp(0, 255)[:, None]
    lut = _scale_fixed(bright, fc[:, None], center).clamp(0, 255)  # n x 256
    offset = (torch.arange(n, dtype=torch.int32, device=dev) * 256)[:, None, None, None]
    y = torch.take(lut.reshape(-1), (y + offset).to(torch.int64))
    sat = [j for j, i in enumerate(todo) if params[i].saturation != 1.0]
    if sat:
        z = y[sat]
        fs = torch.tensor([round(params[todo[j]].saturation * FIXED_POINT) for j in sat],
                          dtype=torch.int32, device=dev)[:, None, None, None]
        y[sat] = _scale_fixed(z, fs, _gray(z)[:, None]).clamp(0, 255)
    x = x.clone()
    x[todo] = y
    return x


def _binomial(k: int) -> list[int]:
    return [math.comb(k - 1, i) for i in range(k)]


def _blur(x: torch.Tensor, params: list[AugParams]) -> torch.Tensor:
    sizes = sorted({p.blur_kernel for p in params if p.blur_kernel > 1})
    if not sizes:
        return x
    x = x.clone()
    for k in sizes:
        idx = [i for i, p in enumerate(params) if p.blur_kernel == k]
        y = x[idx]
        weights = _binomial(k)
        r = k // 2
        h, w = y.shape[2], y.shape[3]
        # Replicate the border, then sum shifted copies with integer weights: exact everywhere.
        padded = torch.cat([y[..., :1].expand(-1, -1, -1, r), y, y[..., -1:].expand(-1, -1, -1, r)],
                           dim=3)
        acc = sum(weights[i] * padded[..., i:i + w] for i in range(k))
        padded = torch.cat([acc[:, :, :1].expand(-1, -1, r, -1), acc,
                            acc[:, :, -1:].expand(-1, -1, r, -1)], dim=2)
        acc = sum(weights[i] * padded[:, :, i:i + h] for i in range(k))
        total = sum(weights) ** 2
        x[idx] = torch.div(acc + total // 2, total, rounding_mode="floor")
    return x


def _noise(x: torch.Tensor, params: list[AugParams], dev: torch.device) -> torch.Tensor:
    if all(p.noise_std == 0.0 for p in params):
        return x
    x = x.clone()
    _, _, h, w = x.shape
    for i, p in enumerate(params):
        if p.noise_std == 0.0:
            continue
        # Drawn on the CPU from the variant's own generator: CUDA and CPU torch generators
        # give different streams.
        noise = np.rint(np.random.default_rng(p.noise_seed).normal(0.0, p.noise_std, (3, h, w)))
        x[i] = x[i] + torch.from_numpy(noise.astype(np.int32)).to(dev)
    return x.clamp(0, 255)


def _cutout(x: torch.Tensor, params: list[AugParams]) -> torch.Tensor:
    if not any(p.cutouts for p in params):
        return x
    x = x.clone()
    for i, p in enumerate(params):
        for cx, cy, cw, ch in p.cutouts:
            for channel in range(3):
                x[i, channel, cy:cy + ch, cx:cx + cw] = p.fill[channel]
    return x
