"""The pixel mask of each object class: value k where the object shows its k-th colour, 0 outside.

A box is the extent of its object's mask, so these shapes are what makes the boxes exact.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw

from dataops_cv.lib.synthetic.street import Track


def _box_xy(w: int, h: int, x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """A rectangle clamped to a w×h canvas with x0 <= x1 and y0 <= y1, as PIL requires (on a
    canvas of a few pixels the fractions that place a shape's parts can cross)."""
    x0, x1 = min(max(x0, 0), w - 1), min(max(x1, 0), w - 1)
    y0, y1 = min(max(y0, 0), h - 1), min(max(y1, 0), h - 1)
    return [x0, y0, max(x0, x1), max(y0, y1)]


class _Canvas:
    """An object's w×h mask being drawn; rectangles and ellipses are clamped to it."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.image = Image.new("L", (w, h), 0)
        self.draw = ImageDraw.Draw(self.image)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: int) -> None:
        self.draw.rectangle(_box_xy(self.w, self.h, x0, y0, x1, y1), fill=fill)

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, **kw: object) -> None:
        self.draw.ellipse(_box_xy(self.w, self.h, x0, y0, x1, y1), **kw)


def _car(c: _Canvas, variant: int) -> None:
    w, h, d = c.w, c.h, c.draw
    if variant == 0:
        d.polygon([(0.18 * w, 0.40 * h), (0.30 * w, 0.04 * h), (0.72 * w, 0.04 * h),
                   (0.86 * w, 0.40 * h)], fill=1)
        d.polygon([(0.26 * w, 0.38 * h), (0.34 * w, 0.12 * h), (0.68 * w, 0.12 * h),
                   (0.78 * w, 0.38 * h)], fill=2)
    else:
        c.rect(0.04 * w, 0.04 * h, 0.96 * w, 0.42 * h, fill=1)
        c.rect(0.10 * w, 0.10 * h, 0.90 * w, 0.36 * h, fill=2)
    c.rect(0, 0.38 * h, w - 1, 0.82 * h, fill=1)
    r = 0.18 * h
    for cx in (0.24 * w, 0.76 * w):
        c.ellipse(cx - r, 0.80 * h - r, cx + r, 0.80 * h + r, fill=3)


def _pedestrian(c: _Canvas, variant: int) -> None:
    w, h = c.w, c.h
    c.rect(0.18 * w, 0.17 * h, 0.82 * w, 0.55 * h, fill=1)
    c.rect(0, 0.20 * h, 0.16 * w, 0.50 * h, fill=1)
    c.rect(0.84 * w, 0.20 * h, w - 1, 0.50 * h, fill=1)
    c.ellipse(0.28 * w, 0, 0.72 * w, 0.18 * h, fill=2)
    c.rect(0.22 * w, 0.55 * h, 0.47 * w, h - 1, fill=3)
    c.rect(0.53 * w, 0.55 * h, 0.78 * w, h - 1, fill=3)


def _cyclist(c: _Canvas, variant: int) -> None:
    w, h, d = c.w, c.h, c.draw
    dia = min(0.42 * w, 0.42 * h)
    tyre = max(1, round(dia * 0.12))
    left = (dia / 2, h - 1 - dia / 2)
    right = (w - 1 - dia / 2, h - 1 - dia / 2)
    d.line([left, (0.45 * w, 0.52 * h), right], fill=1, width=max(1, round(0.04 * h)))
    for cx, cy in (left, right):
        c.ellipse(cx - dia / 2, cy - dia / 2, cx + dia / 2, cy + dia / 2, outline=3, width=tyre)
    d.polygon([(0.35 * w, 0.52 * h), (0.45 * w, 0.15 * h), (0.62 * w, 0.18 * h),
               (0.55 * w, 0.52 * h)], fill=4)
    c.ellipse(0.45 * w, 0, 0.65 * w, 0.17 * h, fill=2)


def _traffic_sign(c: _Canvas, variant: int) -> None:
    """A face on a pole: octagon, disc, triangle or diamond with its symbol."""
    w, h, d = c.w, c.h, c.draw
    c.rect(0.42 * w, 0.5 * w, 0.58 * w, h - 1, fill=1)
    s = w - 1
    if variant in (0, 1):
        if variant == 0:
            k = 0.29 * s
            d.polygon([(k, 0), (s - k, 0), (s, k), (s, s - k), (s - k, s), (k, s), (0, s - k),
                       (0, k)], fill=2)
        else:
            c.ellipse(0, 0, s, s, fill=2)
        c.rect(0.2 * s, 0.42 * s, 0.8 * s, 0.58 * s, fill=3)
    elif variant == 2:
        d.polygon([(0, 0.1 * s), (s, 0.1 * s), (0.5 * s, s)], fill=2)
        d.polygon([(0.25 * s, 0.25 * s), (0.75 * s, 0.25 * s), (0.5 * s, 0.75 * s)], fill=3)
    else:
        d.polygon([(0.5 * s, 0), (s, 0.5 * s), (0.5 * s, s), (0, 0.5 * s)], fill=2)
        c.rect(0.4 * s, 0.4 * s, 0.6 * s, 0.6 * s, fill=3)


def _tiny(c: _Canvas, variant: int) -> None:
    """A planted tiny box: a solid block of a few pixels."""
    c.rect(0, 0, c.w - 1, c.h - 1, fill=1)


_DRAW = {"tiny": _tiny, "car": _car, "pedestrian": _pedestrian, "cyclist": _cyclist}


@functools.lru_cache(maxsize=4096)
def object_mask(track: Track) -> tuple[np.ndarray, np.ndarray]:
    """The object's canvas with 0 = empty and k = drawn in ``colours[k - 1]``, and its colours.

    The mask is read-only: it is cached and shared by every frame of the track.
    """
    canvas = _Canvas(track.width, track.height)
    _DRAW.get(track.cls, _traffic_sign)(canvas, track.variant)
    mask = np.asarray(canvas.image, dtype=np.uint8).copy()
    mask.setflags(write=False)
    palette = np.array(track.colours, dtype=np.uint8)
    return mask, palette
