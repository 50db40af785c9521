"""The CPU kernels: one image at a time in NumPy, byte-identical to the torch kernels.

:mod:`dataops_cv.lib.augmentation.kernels` states the arithmetic (integer, or one IEEE-754 float32
operation per step) and runs it batched on any torch device. On a CPU, batching buys nothing and
costs memory traffic (every step clones an N×3×H×W int32 tensor), so :func:`apply_one` does the
same arithmetic per image, in place where it can and in the narrowest exact integer type:

- warp: the source is spread to one int64 per pixel (R, G and B in 16-bit fields), so each of the
  four bilinear neighbours is one gather and the horizontal blend of all three channels is two
  multiplies (a field stays below 255 * 256 < 2**16); the vertical blend runs per channel in int32;
- colour: the 256-entry table is applied to uint8 pixels; luma fits uint16 (at most 65,408);
- blur: the binomial kernel of size k as k - 1 passes of neighbour sums (exact, no multiplies),
  uint16 across (at most 255 * 64) and uint32 down;
- noise: the same draw from the variant's generator, in the same (channel, row, column) order.

tests/lib/augmentation/test_cpu.py holds these bytes equal to the torch kernels' on sampled and
edge-case parameters; this module does not import torch, so a reader that only renders on the
CPU loads none of it.
"""

from __future__ import annotations

import numpy as np

from dataops_cv.lib.augmentation.geometry import geometry_matrix, invert
from dataops_cv.lib.augmentation.params import FIXED_POINT, AugParams

_HALF = FIXED_POINT * FIXED_POINT // 2
STRIP_ROWS = 16  # output rows warped at a time: a strip's temporaries fit in a core's cache


def apply_one(image: np.ndarray, params: AugParams) -> np.ndarray:
    """The variant ``params`` describes, of one H×W×3 uint8 image (displayed pixels, sized as
    the parameters were sampled for). Returns a new H×W×3 uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected H×W×3 uint8, found {image.dtype} {image.shape}")
    if image.shape[:2] != (params.height, params.width):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but its parameters were "
                         f"sampled for {params.width}x{params.height}")
    x = _warp(image, params) if params.has_geometry else image.copy()
    if params.brightness != 1.0 or params.contrast != 1.0 or params.saturation != 1.0:
        x = _color(x, params)
    if params.blur_kernel > 1:
        x = _blur(x, params.blur_kernel)
    if params.noise_std != 0.0:
        x = _noise(x, params)
    for cx, cy, cw, ch in params.cutouts:
        x[cy:cy + ch, cx:cx + cw] = params.fill
    return np.ascontiguousarray(x)


def _coefficients(params: AugParams) -> list[np.float32]:
    # float64 -> float32 rounds to nearest, as torch's .to(torch.float32) does.
    return [np.float32(k) for k in invert(geometry_matrix(params))]


def _axis(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For float32 source coordinates (pixel edges), overwritten: the inside mask, the low
    neighbour's index in the one-pixel padded source (float32, exact) and the high neighbour's
    weight in 1/256 (float32, exact). Outside pixels are clamped first: they get the fill, and
    inside ones, clamped or not, read the edge pixel the padding repeats."""
    inside = (coord >= 0) & (coord <= size)
    np.clip(coord, 0, size, out=coord)
    coord -= np.float32(0.5)
    low = np.floor(coord)
    coord -= low
    coord *= np.float32(FIXED_POINT)
    np.rint(coord, out=coord)
    low += np.float32(1.0)
    return inside, low, coord


def _spread(image: np.ndarray) -> np.ndarray:
    """(H+2)×(W+2) int64, the image with its edge repeated once around, R, G and B in bits 0-15,
    16-31 and 32-47: one gather reads a pixel's three channels, one multiply weighs them."""
    h, w, _ = image.shape
    wide = np.empty((h + 2, w + 2, 4), np.uint16)
    wide[1:-1, 1:-1, :3] = image
    wide[0, 1:-1, :3] = image[0]
    wide[-1, 1:-1, :3] = image[-1]
    wide[:, 0, :3] = wide[:, 1, :3]
    wide[:, -1, :3] = wide[:, -2, :3]
    wide[..., 3] = 0
    return wide.view(np.int64)[..., 0]


def _blend_rows(top: np.ndarray, bottom: np.ndarray, wy: np.ndarray, out: np.ndarray) -> None:
    """``out = (top * (256 - wy) + bottom * wy + 2**15) >> 16`` per channel of the spread values
    (``out``: the H×W×3 uint8 rows they make). In float32, exactly: every operand and partial
    sum is an integer below 2**24 (at most 255 * 256 * 256 + 2**15)."""
    h, w = top.shape
    weight = np.repeat(wy.reshape(-1), 4)
    t = top.view(np.uint16).reshape(-1).astype(np.float32)
    b = bottom.view(np.uint16).reshape(-1).astype(np.float32)
    b -= t
    b *= weight
    t *= np.float32(FIXED_POINT)
    t += b
    t += np.float32(_HALF)
    t *= np.float32(1.0 / (FIXED_POINT * FIXED_POINT))
    out[...] = t.astype(np.uint8).reshape(h, w, 4)[..., :3]


def _warp(image: np.ndarray, params: AugParams) -> np.ndarray:
    """One strip of output rows at a time, so the temporaries stay in cache."""
    h, w, _ = image.shape
    a, b, c, d, e, f = _coefficients(params)
    u = np.arange(w, dtype=np.float32) + np.float32(0.5)
    v = np.arange(h, dtype=np.float32) + np.float32(0.5)
    src = _spread(image)
    out = np.empty((h, w, 3), np.uint8)
    if params.rotate_deg == 0.0:
        # Source x depends on the column only and y on the row only; adding the (signed) zero
        # products keeps the general path's operation order, hence its bits.
        sx = ((u * a) + (v[:1] * b)) + c
        sy = ((u[:1] * d) + (v * e)) + f
        in_x, x0, wx = _axis(sx, w)
        in_y, y0, wy = _axis(sy, h)
        x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
        wxi = wx.astype(np.int64)
        # Across every source row once, then the two rows each output row reads.
        cols = src[:, x0] * (FIXED_POINT - wxi)
        cols += src[:, x0 + 1] * wxi
        for r0 in range(0, h, STRIP_ROWS):
            r1 = min(h, r0 + STRIP_ROWS)
            rows = y0[r0:r1]
            _blend_rows(cols[rows], cols[rows + 1],
                        np.broadcast_to(wy[r0:r1, None], (r1 - r0, w)), out[r0:r1])
        inside = in_y[:, None] & in_x[None, :]
        out[~inside] = params.fill
        return out
    flat = src.reshape(-1)
    ua, ud = u * a, u * d
    for r0 in range(0, h, STRIP_ROWS):
        r1 = min(h, r0 + STRIP_ROWS)
        sx = ua[None, :] + (v[r0:r1] * b)[:, None]
        sx += c
        sy = ud[None, :] + (v[r0:r1] * e)[:, None]
        sy += f
        in_x, x0, wx = _axis(sx, w)
        in_y, y0, wy = _axis(sy, h)
        # Flat index of the low neighbour in the padded source; float32 holds it exactly.
        y0 *= np.float32(w + 2)
        y0 += x0
        at = y0.astype(np.intp)
        wxi = wx.astype(np.int64)
        wxc = FIXED_POINT - wxi
        top = flat[at] * wxc
        top += flat[1:][at] * wxi
        bottom = flat[w + 2:][at] * wxc
        bottom += flat[w + 3:][at] * wxi
        strip = out[r0:r1]
        _blend_rows(top, bottom, wy, strip)
        strip[~(in_x & in_y)] = params.fill
    return out


def _color(x: np.ndarray, params: AugParams) -> np.ndarray:
    h = x.shape[0]
    # An integer sum, strip by strip: exact, as the torch path's.
    total = sum(int(_gray(x[r0:r0 + STRIP_ROWS]).sum(dtype=np.int64))
                for r0 in range(0, h, STRIP_ROWS))
    pixels = x.shape[0] * x.shape[1]
    mean = (total + pixels // 2) // pixels
    fb = round(params.brightness * FIXED_POINT)
    fc = round(params.contrast * FIXED_POINT)
    levels = np.arange(256, dtype=np.int64)
    bright = np.clip(_scale_fixed(levels, fb, 0), 0, 255)
    center = min(max(_scale_fixed(mean, fb, 0), 0), 255)
    lut = np.clip(_scale_fixed(bright, fc, center), 0, 255).astype(np.uint8)
    y = lut[x]
    if params.saturation == 1.0:
        return y
    fs = round(params.saturation * FIXED_POINT)
    out = np.empty_like(y)
    for r0 in range(0, h, STRIP_ROWS):
        rows = y[r0:r0 + STRIP_ROWS]
        g = _gray(rows).astype(np.int32)
        for channel in range(3):  # contiguous planes: no broadcast over a 3-wide axis
            z = rows[..., channel].astype(np.int32)
            z -= g
            z *= fs
            z += FIXED_POINT // 2
            z >>= 8
            z += g
            np.clip(z, 0, 255, out=z)
            out[r0:r0 + STRIP_ROWS, :, channel] = z
    return out


def _scale_fixed(x, factor: int, center):
    return (((x - center) * factor + FIXED_POINT // 2) >> 8) + center


def _gray(x: np.ndarray) -> np.ndarray:
    """BT.601 luma in 1/256 (77 + 150 + 29), exact in uint16 (at most 255 * 256 + 128)."""
    g = x[..., 0].astype(np.uint16) * np.uint16(77)
    g += x[..., 1].astype(np.uint16) * np.uint16(150)
    g += x[..., 2].astype(np.uint16) * np.uint16(29)
    g += np.uint16(128)
    g >>= 8
    return g


def _pair_sums(a: np.ndarray, axis: int, passes: int) -> np.ndarray:
    """``passes`` times: the sum of each pair of neighbours along ``axis`` (one shorter each
    time); k - 1 passes are the convolution with the binomial kernel of size k."""
    for _ in range(passes):
        n = a.shape[axis]
        a = _slice(a, axis, 0, n - 1) + _slice(a, axis, 1, n)
    return a


def _slice(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def _blur(x: np.ndarray, k: int) -> np.ndarray:
    r = k // 2
    # Replicate the border, then exact integer sums: across in uint16, down in uint32.
    across = np.pad(x, ((0, 0), (r, r), (0, 0)), mode="edge").astype(np.uint16)
    across = _pair_sums(across, 1, k - 1)
    down = np.pad(across, ((r, r), (0, 0), (0, 0)), mode="edge").astype(np.uint32)
    down = _pair_sums(down, 0, k - 1)
    total = (1 << (k - 1)) ** 2
    down += total // 2
    down //= total
    return down.astype(np.uint8)


def _noise(x: np.ndarray, params: AugParams) -> np.ndarray:
    h, w, _ = x.shape
    # The torch path's draw: (channel, row, column) from the variant's own generator.
    noise = np.random.default_rng(params.noise_seed).normal(0.0, params.noise_std, (3, h, w))
    np.rint(noise, out=noise)
    y = noise.astype(np.int32).transpose(1, 2, 0)
    y += x
    return np.clip(y, 0, 255).astype(np.uint8)
