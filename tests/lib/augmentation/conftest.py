"""Shared frames, parameters and the shipped policy for the augmentation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataops_cv.lib.augmentation.params import AugParams
from dataops_cv.lib.augmentation.policy import AugmentationPolicy, load_policy

CONTRACTS = Path(__file__).resolve().parents[3] / "data_contracts"
POLICY_FILE = CONTRACTS / "augmentation_policy.yaml"
W, H = 160, 120


def scene(box: tuple[int, int, int, int] = (40, 30, 90, 70)) -> np.ndarray:
    """Black frame with one white rectangle (pixel-edge box ``box``) and a grey ramp behind."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 2] = np.linspace(0, 60, W, dtype=np.uint8)[None, :]
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img


def white_extent(img: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(img[..., 0] > 200)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def params(**kw: object) -> AugParams:
    return AugParams(width=W, height=H, **kw)


@pytest.fixture(scope="module")
def policy() -> AugmentationPolicy:
    return load_policy(POLICY_FILE)
