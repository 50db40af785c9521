"""Geometry: boxes move with the pixels for every transform, and the visibility rule holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataops_cv.lib.augmentation.geometry import geometry_matrix, transform_boxes
from dataops_cv.lib.augmentation.kernels import apply_batch
from tests.lib.augmentation.conftest import H, W, params, scene, white_extent


def test_hflip_maps_box_to_mirror_image():
    moved = transform_boxes(np.array([[10.0, 20.0, 50.0, 60.0]]), params(hflip=True), 0.3, 1)
    assert moved.boxes.tolist() == [[W - 50.0, 20.0, W - 10.0, 60.0]]


def test_vflip_maps_box_to_mirror_image():
    moved = transform_boxes(np.array([[10.0, 20.0, 50.0, 60.0]]), params(vflip=True), 0.3, 1)
    assert moved.boxes.tolist() == [[10.0, H - 60.0, 50.0, H - 20.0]]


def test_hflip_agrees_with_torchvision():
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    boxes = np.array([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, W, 5.5]])
    theirs = F.horizontal_flip(tv_tensors.BoundingBoxes(torch.tensor(boxes), format="XYXY",
                                                        canvas_size=(H, W)))
    ours = transform_boxes(boxes, params(hflip=True), 0.3, 1).boxes
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-9)


@pytest.mark.parametrize("deg", [-30.0, -8.0, 5.0, 45.0, 90.0])
def test_rotated_box_is_the_tight_enclosure_of_the_rotated_corners(deg):
    box = np.array([[50.0, 40.0, 100.0, 80.0]])
    p = params(rotate_deg=deg)
    a, b, c, d, e, f = geometry_matrix(p)
    corners = [(50, 40), (100, 40), (100, 80), (50, 80)]
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    moved = transform_boxes(box, p, 0.0, 0)
    expected = [max(0, min(xs)), max(0, min(ys)), min(W, max(xs)), min(H, max(ys))]
    np.testing.assert_allclose(moved.boxes[0], expected, atol=1e-9)


def test_rotation_is_counter_clockwise_on_screen():
    a, b, c, d, e, f = geometry_matrix(params(rotate_deg=90.0))
    # A point right of the centre goes above it.
    x, y = W / 2 + 10, H / 2
    assert a * x + b * y + c == pytest.approx(W / 2)
    assert d * x + e * y + f == pytest.approx(H / 2 - 10)


def test_crop_scale_translate_formulas():
    box = np.array([[20.0, 30.0, 60.0, 70.0]])
    crop = transform_boxes(box, params(crop=(10, 10, 80, 60)), 0.0, 0).boxes[0]
    np.testing.assert_allclose(crop, [(20 - 10) * W / 80, (30 - 10) * H / 60,
                                      (60 - 10) * W / 80, (70 - 10) * H / 60])
    moved = transform_boxes(box, params(translate=(5.0, -4.0)), 0.0, 0).boxes[0]
    np.testing.assert_allclose(moved, [25, 26, 65, 66])
    centred = np.array([[60.0, 40.0, 100.0, 70.0]])
    scaled = transform_boxes(centred, params(scale=1.5), 0.0, 0).boxes[0]
    np.testing.assert_allclose(scaled, [W / 2 + 1.5 * (60 - W / 2), H / 2 + 1.5 * (40 - H / 2),
                                        W / 2 + 1.5 * (100 - W / 2), H / 2 + 1.5 * (70 - H / 2)])


@pytest.mark.parametrize("kw", [
    {"hflip": True},
    {"vflip": True},
    {"crop": (20, 10, 100, 90)},
    {"rotate_deg": 12.0},
    {"rotate_deg": -7.5, "scale": 1.1},
    {"scale": 0.8},
    {"translate": (9.5, -6.25)},
    {"hflip": True, "crop": (5, 5, 140, 100), "rotate_deg": 6.0, "scale": 1.05,
     "translate": (-3.0, 4.0)},
], ids=lambda kw: "+".join(kw))
def test_pixels_and_boxes_move_together(kw):
    """The white object's pixels after the warp lie where its transformed box says."""
    box = (40, 30, 90, 70)
    p = params(**kw)
    out = apply_batch([scene(box)], [p])[0]
    moved = transform_boxes(np.array([box], dtype=float), p, 0.0, 0)
    got = white_extent(out)
    tol = 1.5 if kw.get("rotate_deg") else 1.0
    if kw.get("rotate_deg"):
        # The enclosing box of a rotated rectangle is larger than its pixels' extent only at
        # the corners, by under a pixel: compare edges within the enclosure and tolerance.
        np.testing.assert_allclose(got, moved.boxes[0], atol=tol + 0.5)
    else:
        np.testing.assert_allclose(got, moved.boxes[0], atol=tol)


@pytest.mark.parametrize("shift,kept", [(-20.0, True), (-45.0, False), (-70.0, False)])
def test_visibility_rule_clips_or_drops(shift, kept):
    # A 40 px wide box moved left past the edge keeps 20/40, 0.5 then 0 of its width... and
    # the policy keeps it at visibility >= 0.35.
    box = np.array([[10.0, 30.0, 50.0, 70.0]])
    moved = transform_boxes(box, params(translate=(shift, 0.0)), 0.35, 2.0)
    assert bool(moved.kept[0]) is kept
    if kept:
        assert moved.boxes[0][0] == 0.0 and moved.boxes[0][2] == 50.0 + shift
        assert moved.visibility[0] == pytest.approx((50.0 + shift) / 40.0)


def test_thin_remainder_below_min_size_is_dropped():
    box = np.array([[10.0, 30.0, 11.5, 70.0]])  # 1.5 px wide: fully visible but too thin
    assert not transform_boxes(box, params(), 0.35, 2.0).kept[0]
