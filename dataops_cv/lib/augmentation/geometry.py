"""The affine geometry of a variant and the boxes it moves, in float64 on the CPU.

Boxes are ``x_min, y_min, x_max, y_max`` in pixel-edge coordinates of the displayed image. A box's
four corners are mapped by the warp and the new box is their enclosing axis-aligned box (so a
rotated box encloses the rotated corners). It is kept when at least ``min_visibility`` of that
box's area lies inside the frame and both sides of the clipped box are at least ``min_size_px``;
kept boxes are clipped to the frame. Cutout does not move boxes (the object is occluded, not gone).
Boxes are transformed with plain arithmetic (no BLAS), the same on every machine; the pixel warp
(:mod:`dataops_cv.lib.augmentation.kernels`) inverts the same :func:`geometry_matrix`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dataops_cv.lib.augmentation.params import AugParams

Box = tuple[float, float, float, float]
Affine = tuple[float, float, float, float, float, float]  # x' = a x + b y + c; y' = d x + e y + f


def _compose(m: Affine, n: Affine) -> Affine:
    """m after n."""
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return (a * p + b * s, a * q + b * t, a * r + b * u + c,
            d * p + e * s, d * q + e * t, d * r + e * u + f)


def geometry_matrix(params: AugParams) -> Affine:
    """Forward map from source to output pixel-edge coordinates: flips, then the crop resized to
    the full frame, then rotation (counter-clockwise on screen) and scale about the centre, then
    translation."""
    w, h = float(params.width), float(params.height)
    m: Affine = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    if params.hflip:
        m = _compose((-1.0, 0.0, w, 0.0, 1.0, 0.0), m)
    if params.vflip:
        m = _compose((1.0, 0.0, 0.0, 0.0, -1.0, h), m)
    if params.crop is not None:
        x, y, cw, ch = params.crop
        sx, sy = w / cw, h / ch
        m = _compose((sx, 0.0, -x * sx, 0.0, sy, -y * sy), m)
    if params.rotate_deg != 0.0 or params.scale != 1.0 or params.translate != (0.0, 0.0):
        theta = math.radians(params.rotate_deg)
        # Rounded so a last-bit difference between two platforms' libm cannot reach a pixel.
        cos, sin = round(math.cos(theta), 12), round(math.sin(theta), 12)
        s = params.scale
        cx, cy = w / 2.0, h / 2.0
        tx, ty = params.translate
        # y points down, so a counter-clockwise turn on screen is x' = x cos + y sin.
        a, b, d, e = s * cos, s * sin, -s * sin, s * cos
        m = _compose((a, b, cx - a * cx - b * cy + tx, d, e, cy - d * cx - e * cy + ty), m)
    return m


def invert(m: Affine) -> Affine:
    """The inverse affine map (output to source coordinates).

    Raises:
        ValueError: when ``m`` is singular.
    """
    a, b, c, d, e, f = m
    det = a * e - b * d
    if det == 0.0:
        raise ValueError(f"augmentation matrix {m} is singular")
    return (e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det)


@dataclass(frozen=True)
class BoxResult:
    """The boxes of one variant after its warp and the visibility rule."""

    boxes: np.ndarray  # K×4 kept boxes, clipped to the frame
    kept: np.ndarray  # N bool: which input boxes survived
    visibility: np.ndarray  # N: share of each transformed box inside the frame


def transform_boxes(boxes: np.ndarray, params: AugParams, min_visibility: float,
                    min_size_px: float) -> BoxResult:
    """Move ``boxes`` (N×4 xyxy) with the pixels and apply the visibility rule (module docs)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    a, b, c, d, e, f = geometry_matrix(params)
    xs = boxes[:, [0, 2, 2, 0]]
    ys = boxes[:, [1, 1, 3, 3]]
    nx = xs * a + ys * b + c
    ny = xs * d + ys * e + f
    out = np.stack([nx.min(axis=1), ny.min(axis=1), nx.max(axis=1), ny.max(axis=1)], axis=1)
    w, h = float(params.width), float(params.height)
    clipped = np.stack([np.clip(out[:, 0], 0, w), np.clip(out[:, 1], 0, h),
                        np.clip(out[:, 2], 0, w), np.clip(out[:, 3], 0, h)], axis=1)
    area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        visibility = np.where(area > 0, inside / area, 0.0)
    kept = ((visibility >= min_visibility)
            & (clipped[:, 2] - clipped[:, 0] >= min_size_px)
            & (clipped[:, 3] - clipped[:, 1] >= min_size_px)
            & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]))
    return BoxResult(clipped[kept], kept, visibility)
