"""Augmentation: boxes move with the pixels for every transform, the visibility rule holds, and the
same (sample, policy) gives the same bytes whatever the batch or device."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dataops_cv.lib.augmentation import augment as A
from dataops_cv.lib.validation.contracts import load_contracts

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


def params(**kw: object) -> A.AugParams:
    return A.AugParams(width=W, height=H, **kw)


@pytest.fixture(scope="module")
def policy() -> A.AugmentationPolicy:
    return A.load_policy(POLICY_FILE)


# --------------------------------------------------------------------------------------- geometry


def test_hflip_maps_box_to_mirror_image():
    moved = A.transform_boxes(np.array([[10.0, 20.0, 50.0, 60.0]]), params(hflip=True), 0.3, 1)
    assert moved.boxes.tolist() == [[W - 50.0, 20.0, W - 10.0, 60.0]]


def test_vflip_maps_box_to_mirror_image():
    moved = A.transform_boxes(np.array([[10.0, 20.0, 50.0, 60.0]]), params(vflip=True), 0.3, 1)
    assert moved.boxes.tolist() == [[10.0, H - 60.0, 50.0, H - 20.0]]


def test_hflip_agrees_with_torchvision():
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as F

    boxes = np.array([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, W, 5.5]])
    theirs = F.horizontal_flip(tv_tensors.BoundingBoxes(torch.tensor(boxes), format="XYXY",
                                                        canvas_size=(H, W)))
    ours = A.transform_boxes(boxes, params(hflip=True), 0.3, 1).boxes
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-9)


@pytest.mark.parametrize("deg", [-30.0, -8.0, 5.0, 45.0, 90.0])
def test_rotated_box_is_the_tight_enclosure_of_the_rotated_corners(deg):
    box = np.array([[50.0, 40.0, 100.0, 80.0]])
    p = params(rotate_deg=deg)
    a, b, c, d, e, f = A.geometry_matrix(p)
    corners = [(50, 40), (100, 40), (100, 80), (50, 80)]
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    moved = A.transform_boxes(box, p, 0.0, 0)
    expected = [max(0, min(xs)), max(0, min(ys)), min(W, max(xs)), min(H, max(ys))]
    np.testing.assert_allclose(moved.boxes[0], expected, atol=1e-9)


def test_rotation_is_counter_clockwise_on_screen():
    a, b, c, d, e, f = A.geometry_matrix(params(rotate_deg=90.0))
    # A point right of the centre goes above it.
    x, y = W / 2 + 10, H / 2
    assert a * x + b * y + c == pytest.approx(W / 2)
    assert d * x + e * y + f == pytest.approx(H / 2 - 10)


def test_crop_scale_translate_formulas():
    box = np.array([[20.0, 30.0, 60.0, 70.0]])
    crop = A.transform_boxes(box, params(crop=(10, 10, 80, 60)), 0.0, 0).boxes[0]
    np.testing.assert_allclose(crop, [(20 - 10) * W / 80, (30 - 10) * H / 60,
                                      (60 - 10) * W / 80, (70 - 10) * H / 60])
    moved = A.transform_boxes(box, params(translate=(5.0, -4.0)), 0.0, 0).boxes[0]
    np.testing.assert_allclose(moved, [25, 26, 65, 66])
    centred = np.array([[60.0, 40.0, 100.0, 70.0]])
    scaled = A.transform_boxes(centred, params(scale=1.5), 0.0, 0).boxes[0]
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
    out = A.apply_batch([scene(box)], [p])[0]
    moved = A.transform_boxes(np.array([box], dtype=float), p, 0.0, 0)
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
    moved = A.transform_boxes(box, params(translate=(shift, 0.0)), 0.35, 2.0)
    assert bool(moved.kept[0]) is kept
    if kept:
        assert moved.boxes[0][0] == 0.0 and moved.boxes[0][2] == 50.0 + shift
        assert moved.visibility[0] == pytest.approx((50.0 + shift) / 40.0)


def test_thin_remainder_below_min_size_is_dropped():
    box = np.array([[10.0, 30.0, 11.5, 70.0]])  # 1.5 px wide: fully visible but too thin
    assert not A.transform_boxes(box, params(), 0.35, 2.0).kept[0]


# ----------------------------------------------------------------------------------------- pixels


def test_identity_and_exact_flip():
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    same, flipped, both = A.apply_batch([img] * 3, [params(), params(hflip=True),
                                                    params(hflip=True, vflip=True)])
    assert np.array_equal(same, img)
    assert np.array_equal(flipped, img[:, ::-1])
    assert np.array_equal(both, img[::-1, ::-1])


def test_translation_fills_from_outside():
    img = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = A.apply_batch([img], [params(translate=(10.0, 0.0), fill=(1, 2, 3))])[0]
    assert np.array_equal(out[:, 10:], img[:, :-10])
    assert (out[:, :10] == [1, 2, 3]).all()


def test_axis_aligned_fast_path_is_bit_identical_to_the_general_warp():
    img = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    ps = [params(hflip=True, crop=(7, 3, 111, 97), scale=1.13, translate=(3.3, -7.2)),
          params(vflip=True, scale=0.87), params(crop=(0, 0, 81, 120))]
    x = torch.from_numpy(np.stack([img] * 3)).permute(0, 3, 1, 2).to(torch.int32)
    cpu = torch.device("cpu")
    assert torch.equal(A._warp(x, ps, cpu, separable=True), A._warp(x, ps, cpu, separable=False))


def test_photometric_neutral_values_change_nothing_and_blur_keeps_flat_areas():
    img = np.full((H, W, 3), 77, np.uint8)
    out = A.apply_batch([img] * 2, [params(brightness=1.0, contrast=1.0, saturation=1.0),
                                    params(blur_kernel=7)])
    assert np.array_equal(out[0], img) and np.array_equal(out[1], img)


def test_colour_changes_pixels_in_the_documented_direction():
    img = np.random.default_rng(4).integers(40, 200, (H, W, 3), dtype=np.uint8)
    bright, dark, gray = A.apply_batch([img] * 3, [params(brightness=1.25),
                                                   params(brightness=0.75),
                                                   params(saturation=0.0)])
    assert bright.mean() > img.mean() > dark.mean()
    assert np.abs(gray.astype(int)[..., 0] - gray[..., 1]).max() <= 1  # grey: channels agree


def test_cutout_fills_its_rectangles_and_leaves_boxes_alone():
    img = np.zeros((H, W, 3), np.uint8)
    p = params(cutouts=((5, 6, 10, 12),), fill=(9, 8, 7))
    out = A.apply_batch([img], [p])[0]
    assert (out[6:18, 5:15] == [9, 8, 7]).all() and out[18:, 15:].max() == 0
    assert A.transform_boxes(np.array([[1.0, 2.0, 30.0, 40.0]]), p, 0.3, 1).boxes.tolist() == \
        [[1.0, 2.0, 30.0, 40.0]]


# --------------------------------------------------------------------------- reproducibility


def _png_of(sample_id: str, pol: A.AugmentationPolicy, img: np.ndarray, variant: int) -> str:
    p = A.sample_params(pol, sample_id, variant, img.shape[1], img.shape[0])
    return hashlib.sha256(A.encode_png(A.apply_batch([img], [p])[0])).hexdigest()


def test_same_sample_and_policy_give_the_same_bytes_and_another_seed_does_not(policy):
    img = scene()
    first = [_png_of(f"sha{i}", policy, img, v) for i in range(6) for v in range(2)]
    again = [_png_of(f"sha{i}", policy, img, v) for i in range(6) for v in range(2)]
    assert first == again
    reseeded = A.AugmentationPolicy(**{**policy.__dict__, "seed": policy.seed + 1})
    assert reseeded.version != policy.version
    other = [_png_of(f"sha{i}", reseeded, img, v) for i in range(6) for v in range(2)]
    assert sum(a != b for a, b in zip(first, other)) >= 10


def test_batching_does_not_change_a_variant(policy):
    imgs = [np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
            for i in range(5)]
    ps = [A.sample_params(policy, f"s{i}", 0, W, H) for i in range(5)]
    together = A.apply_batch(imgs, ps)
    alone = [A.apply_batch([img], [p])[0] for img, p in zip(imgs, ps)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))


def test_params_round_trip_through_json(policy):
    p = A.sample_params(policy, "abc", 1, 640, 480)
    assert A.AugParams.from_json(p.to_json()) == p


def test_params_stay_inside_the_policy(policy):
    for i in range(200):
        p = A.sample_params(policy, f"s{i}", i % 3, 320, 240)
        lo, hi = policy.range("rotate", "degrees")
        assert p.rotate_deg == 0.0 or lo <= p.rotate_deg <= hi
        lo, hi = policy.range("color", "brightness")
        assert p.brightness == 1.0 or lo <= p.brightness <= hi
        assert p.blur_kernel in (1, 3, 5, 7)
        if p.crop:
            x, y, cw, ch = p.crop
            assert 0 <= x and x + cw <= 320 and 0 <= y and y + ch <= 240


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_gives_the_cpu_bytes(policy):
    imgs = [np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8)
            for i in range(8)]
    ps = [A.sample_params(policy, f"s{i}", 0, 320, 240) for i in range(8)]
    cpu = A.apply_batch(imgs, ps, "cpu")
    gpu = A.apply_batch(imgs, ps, "cuda")
    assert all(np.array_equal(a, b) for a, b in zip(cpu, gpu))


def test_stream_reuses_nothing_it_is_told_to_skip_and_reports_dropped_boxes(policy):
    img = scene()
    data = A.encode_png(img)
    box = A.SourceBox("ann1", "car", 1, (40.0, 30.0, 90.0, 70.0))
    edge = A.SourceBox("ann2", "car", 1, (0.0, 0.0, 3.0, 3.0))
    sample = A.SourceSample("abc", lambda: data, (box, edge), "imported")
    out = list(A.augment_stream([sample], policy, variants=3, batch_size=2))
    assert [v.variant for v in out] == [0, 1, 2]
    assert len({v.input_key for v in out}) == 3
    for v in out:
        assert len(v.boxes) + v.boxes_dropped == 2
        assert all(b["source_annotation_id"] in ("ann1", "ann2") for b in v.boxes)
    skip = frozenset({out[0].input_key, out[2].input_key})
    assert [v.variant for v in A.augment_stream([sample], policy, variants=3, skip=skip)] == [1]


# ------------------------------------------------------------------------------- policy file


@pytest.mark.parametrize("edit,key", [
    (lambda d: d["transforms"].update(warp={"p": 0.1}), "transforms.warp"),
    (lambda d: d["transforms"]["rotate"].update(p=1.5), "transforms.rotate.p"),
    (lambda d: d["transforms"]["rotate"].update(degrees=[5, -5]), "transforms.rotate.degrees"),
    (lambda d: d["transforms"]["blur"].update(kernel=[2, 6]), "transforms.blur.kernel"),
    (lambda d: d["boxes"].update(min_visibility=0), "boxes.min_visibility"),
    (lambda d: d.update(fill=[1, 2]), "fill"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_policy_errors_name_the_key(edit, key):
    doc = yaml.safe_load(POLICY_FILE.read_text())
    doc = copy.deepcopy(doc)
    edit(doc)
    with pytest.raises(A.PolicyError, match=key.replace(".", r"\.")):
        A.policy_from_dict(doc, "policy.yaml")


def test_the_contract_holds_the_policy_ranges(policy):
    """augmented_samples.yaml must allow exactly what the policy can produce."""
    contract = load_contracts(CONTRACTS)["augmented_samples"]
    cols = {c.name: c for c in contract.columns}
    assert (cols["rotate_deg"].min, cols["rotate_deg"].max) == policy.range("rotate", "degrees")
    assert (cols["scale"].min, cols["scale"].max) == policy.range("scale", "factor")
    for key in ("brightness", "contrast", "saturation"):
        lo, hi = policy.range("color", key)
        assert (cols[key].min, cols[key].max) == (lo, hi)
    assert (cols["noise_std"].min, cols["noise_std"].max) == (0.0, policy.range("noise", "std")[1])
    assert cols["blur_kernel"].max == policy.range("blur", "kernel")[1]
    assert cols["min_box_visibility"].min == policy.min_visibility


def test_another_process_with_another_thread_count_gives_the_same_bytes(policy):
    """Byte identity across runs: a fresh interpreter on one thread reproduces this one's PNGs."""
    import subprocess
    import sys

    code = (
        "import hashlib, numpy as np, torch\n"
        "torch.set_num_threads(1)\n"
        "from dataops_cv.lib.augmentation import augment as A\n"
        f"pol = A.load_policy({str(POLICY_FILE)!r})\n"
        "img = np.random.default_rng(11).integers(0, 256, (120, 160, 3), dtype=np.uint8)\n"
        "ps = [A.sample_params(pol, f's{i}', v, 160, 120) for i in range(4) for v in range(2)]\n"
        "for out in A.apply_batch([img] * len(ps), ps):\n"
        "    print(hashlib.sha256(A.encode_png(out)).hexdigest())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    img = np.random.default_rng(11).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ps = [A.sample_params(policy, f"s{i}", v, 160, 120) for i in range(4) for v in range(2)]
    here = [hashlib.sha256(A.encode_png(o)).hexdigest() for o in A.apply_batch([img] * 8, ps)]
    assert proc.stdout.split() == here
