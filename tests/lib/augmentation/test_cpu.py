"""The NumPy CPU kernels give the torch kernels' bytes: on the shipped policy's samples, at odd
and tiny sizes, and at the edges of every transform."""

from __future__ import annotations

import numpy as np
import pytest

from dataops_cv.lib.augmentation.cpu import apply_one
from dataops_cv.lib.augmentation.kernels import apply_batch_torch
from dataops_cv.lib.augmentation.params import AugParams, sample_params


def _same(img: np.ndarray, p: AugParams) -> bool:
    out = apply_one(img, p)
    return out.flags.c_contiguous and np.array_equal(out, apply_batch_torch([img], [p], "cpu")[0])


@pytest.mark.parametrize("size", [(160, 120), (97, 61), (33, 200), (640, 360)])
def test_sampled_variants_match_the_torch_kernels(policy, size):
    w, h = size
    for i in range(24):
        img = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for v in range(2):
            p = sample_params(policy, f"s{i}", v, w, h)
            assert _same(img, p), p


EDGES = [
    {"rotate_deg": 8.0, "hflip": True, "vflip": True},
    {"rotate_deg": -0.0001},
    {"rotate_deg": 3.0, "translate": (5000.0, 0.0)},          # everything warped in from outside
    {"translate": (-3.5, 2.25), "scale": 0.5},
    {"crop": (0, 0, 1, 1)},                                    # one pixel blown up
    {"crop": (3, 2, 5, 4), "rotate_deg": 45.0, "scale": 2.0},
    {"brightness": 1.25, "contrast": 0.75, "saturation": 0.0},
    {"brightness": 0.0, "contrast": 2.0, "saturation": 2.0},
    {"blur_kernel": 3}, {"blur_kernel": 7},
    {"noise_std": 8.0, "noise_seed": 7, "cutouts": ((0, 0, 3, 3), (5, 1, 100, 100))},
    {"hflip": True, "brightness": 1.1, "blur_kernel": 5, "noise_std": 2.0, "noise_seed": 1,
     "fill": (0, 255, 7), "rotate_deg": 1.5},
]


@pytest.mark.parametrize("size", [(7, 5), (2, 1), (1, 1), (161, 121)])
@pytest.mark.parametrize("edge", range(len(EDGES)))
def test_edge_parameters_match_the_torch_kernels(size, edge):
    w, h = size
    img = np.random.default_rng(edge).integers(0, 256, (h, w, 3), dtype=np.uint8)
    kw = dict(EDGES[edge])
    if "crop" in kw:
        x, y, cw, ch = kw["crop"]
        kw["crop"] = (min(x, w - 1), min(y, h - 1), min(cw, w - min(x, w - 1)),
                      min(ch, h - min(y, h - 1)))
    assert _same(img, AugParams(width=w, height=h, **kw)), kw


def test_extreme_pixels_do_not_overflow_any_integer_type():
    for value in (0, 255):
        img = np.full((40, 50, 3), value, np.uint8)
        img[::2, ::3] = 255 - value
        for p in EDGES:
            assert _same(img, AugParams(width=50, height=40, **p)), p
