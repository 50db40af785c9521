"""Parameters: sampled inside the policy, round-tripped through their row, and seeded so that the
same (sample, policy) gives the same bytes and another seed does not."""

from __future__ import annotations

import hashlib

import numpy as np

from dataops_cv.lib.augmentation.kernels import apply_batch
from dataops_cv.lib.augmentation.params import AugParams, sample_params
from dataops_cv.lib.augmentation.policy import AugmentationPolicy
from dataops_cv.lib.augmentation.stream import encode_png
from tests.lib.augmentation.conftest import scene


def _png_of(sample_id: str, pol: AugmentationPolicy, img: np.ndarray, variant: int) -> str:
    p = sample_params(pol, sample_id, variant, img.shape[1], img.shape[0])
    return hashlib.sha256(encode_png(apply_batch([img], [p])[0])).hexdigest()


def test_same_sample_and_policy_give_the_same_bytes_and_another_seed_does_not(policy):
    img = scene()
    first = [_png_of(f"sha{i}", policy, img, v) for i in range(6) for v in range(2)]
    again = [_png_of(f"sha{i}", policy, img, v) for i in range(6) for v in range(2)]
    assert first == again
    reseeded = AugmentationPolicy(**{**policy.__dict__, "seed": policy.seed + 1})
    assert reseeded.version != policy.version
    other = [_png_of(f"sha{i}", reseeded, img, v) for i in range(6) for v in range(2)]
    assert sum(a != b for a, b in zip(first, other)) >= 10


def test_params_round_trip_through_json(policy):
    p = sample_params(policy, "abc", 1, 640, 480)
    assert AugParams.from_json(p.to_json()) == p


def test_params_stay_inside_the_policy(policy):
    for i in range(200):
        p = sample_params(policy, f"s{i}", i % 3, 320, 240)
        lo, hi = policy.range("rotate", "degrees")
        assert p.rotate_deg == 0.0 or lo <= p.rotate_deg <= hi
        lo, hi = policy.range("color", "brightness")
        assert p.brightness == 1.0 or lo <= p.brightness <= hi
        assert p.blur_kernel in (1, 3, 5, 7)
        if p.crop:
            x, y, cw, ch = p.crop
            assert 0 <= x and x + cw <= 320 and 0 <= y and y + ch <= 240
