"""Pixel kernels: exact flips and fills, neutral values change nothing, and the same parameters
give the same bytes whatever the batch, the device or the thread count."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from dataops_cv.lib.augmentation.geometry import transform_boxes
from dataops_cv.lib.augmentation.kernels import _warp, apply_batch
from dataops_cv.lib.augmentation.params import sample_params
from dataops_cv.lib.augmentation.stream import encode_png
from tests.lib.augmentation.conftest import POLICY_FILE, H, W, params


def test_identity_and_exact_flip():
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    same, flipped, both = apply_batch([img] * 3, [params(), params(hflip=True),
                                                  params(hflip=True, vflip=True)])
    assert np.array_equal(same, img)
    assert np.array_equal(flipped, img[:, ::-1])
    assert np.array_equal(both, img[::-1, ::-1])


def test_translation_fills_from_outside():
    img = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = apply_batch([img], [params(translate=(10.0, 0.0), fill=(1, 2, 3))])[0]
    assert np.array_equal(out[:, 10:], img[:, :-10])
    assert (out[:, :10] == [1, 2, 3]).all()


def test_axis_aligned_fast_path_is_bit_identical_to_the_general_warp():
    img = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    ps = [params(hflip=True, crop=(7, 3, 111, 97), scale=1.13, translate=(3.3, -7.2)),
          params(vflip=True, scale=0.87), params(crop=(0, 0, 81, 120))]
    x = torch.from_numpy(np.stack([img] * 3)).permute(0, 3, 1, 2).to(torch.int32)
    cpu = torch.device("cpu")
    assert torch.equal(_warp(x, ps, cpu, separable=True), _warp(x, ps, cpu, separable=False))


def test_photometric_neutral_values_change_nothing_and_blur_keeps_flat_areas():
    img = np.full((H, W, 3), 77, np.uint8)
    out = apply_batch([img] * 2, [params(brightness=1.0, contrast=1.0, saturation=1.0),
                                  params(blur_kernel=7)])
    assert np.array_equal(out[0], img) and np.array_equal(out[1], img)


def test_colour_changes_pixels_in_the_documented_direction():
    img = np.random.default_rng(4).integers(40, 200, (H, W, 3), dtype=np.uint8)
    bright, dark, gray = apply_batch([img] * 3, [params(brightness=1.25),
                                                 params(brightness=0.75),
                                                 params(saturation=0.0)])
    assert bright.mean() > img.mean() > dark.mean()
    assert np.abs(gray.astype(int)[..., 0] - gray[..., 1]).max() <= 1  # grey: channels agree


def test_cutout_fills_its_rectangles_and_leaves_boxes_alone():
    img = np.zeros((H, W, 3), np.uint8)
    p = params(cutouts=((5, 6, 10, 12),), fill=(9, 8, 7))
    out = apply_batch([img], [p])[0]
    assert (out[6:18, 5:15] == [9, 8, 7]).all() and out[18:, 15:].max() == 0
    assert transform_boxes(np.array([[1.0, 2.0, 30.0, 40.0]]), p, 0.3, 1).boxes.tolist() == \
        [[1.0, 2.0, 30.0, 40.0]]


def test_batching_does_not_change_a_variant(policy):
    imgs = [np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
            for i in range(5)]
    ps = [sample_params(policy, f"s{i}", 0, W, H) for i in range(5)]
    together = apply_batch(imgs, ps)
    alone = [apply_batch([img], [p])[0] for img, p in zip(imgs, ps)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_gives_the_cpu_bytes(policy):
    imgs = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8)
            for i in range(8)]
    ps = [sample_params(policy, f"s{i}", 0, 320, 240) for i in range(8)]
    cpu = apply_batch(imgs, ps, "cpu")
    gpu = apply_batch(imgs, ps, "cuda")
    assert all(np.array_equal(a, b) for a, b in zip(cpu, gpu))


def test_another_process_with_another_thread_count_gives_the_same_bytes(policy):
    """Byte identity across runs: a fresh interpreter on one thread reproduces this one's PNGs."""
    code = (
        "import hashlib, numpy as np, torch\n"
        "torch.set_num_threads(1)\n"
        "from dataops_cv.lib.augmentation.kernels import apply_batch\n"
        "from dataops_cv.lib.augmentation.params import sample_params\n"
        "from dataops_cv.lib.augmentation.policy import load_policy\n"
        "from dataops_cv.lib.augmentation.stream import encode_png\n"
        f"pol = load_policy({str(POLICY_FILE)!r})\n"
        "img = np.random.default_rng(11).integers(0, 256, (120, 160, 3), dtype=np.uint8)\n"
        "ps = [sample_params(pol, f's{i}', v, 160, 120) for i in range(4) for v in range(2)]\n"
        "for out in apply_batch([img] * len(ps), ps):\n"
        "    print(hashlib.sha256(encode_png(out)).hexdigest())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    img = np.random.default_rng(11).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ps = [sample_params(policy, f"s{i}", v, 160, 120) for i in range(4) for v in range(2)]
    here = [hashlib.sha256(encode_png(o)).hexdigest() for o in apply_batch([img] * 8, ps)]
    assert proc.stdout.split() == here
