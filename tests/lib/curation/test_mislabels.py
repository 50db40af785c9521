"""Likely mislabeled boxes: crops, out-of-fold training without leaks, confident learning, and
planted label flips found on synthetic capture days."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dataops_cv.lib.curation import mislabels as M
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day

CLASSES = ("car", "pedestrian", "cyclist", "traffic_sign")
REPO = Path(__file__).resolve().parents[3]


def _png(array: np.ndarray, orientation: int | None = None) -> bytes:
    img = Image.fromarray(array)
    buf = io.BytesIO()
    if orientation is None:
        img.save(buf, format="PNG")
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, format="PNG", exif=exif)
    return buf.getvalue()


def _red_square_on_blue() -> np.ndarray:
    """40x30 blue image with a red square at x 10..20, y 5..15."""
    a = np.zeros((30, 40, 3), np.uint8)
    a[..., 2] = 255
    a[5:15, 10:20] = (255, 0, 0)
    return a


# --------------------------------------------------------------------------- crop_boxes


def test_crop_shows_the_box_with_a_little_context_and_describes_its_geometry():
    crops, geo = M.crop_boxes(_png(_red_square_on_blue()), [(10, 5, 20, 15)], size=12,
                              context=0.25)
    assert crops.shape == (1, 3, 12, 12) and crops.dtype == np.uint8
    assert geo.shape == (1, len(M.GEOMETRY_FIELDS)) and geo.dtype == np.float32
    # 10 px box + 2.5 px each side -> 15 px over 12 output px: the centre is the red object and
    # the outer ring the blue context.
    assert tuple(crops[0, :, 6, 6]) == (255, 0, 0)
    assert tuple(crops[0, :, 0, 0]) == (0, 0, 255) and tuple(crops[0, :, 11, 11]) == (0, 0, 255)
    log_aspect, log_area, cx, cy = geo[0]
    assert log_aspect == pytest.approx(0.0)
    assert log_area == pytest.approx(np.log(100 / 1200))
    assert (cx, cy) == (pytest.approx(15 / 40), pytest.approx(10 / 30))


def test_context_beyond_the_frame_is_black_and_a_box_at_the_border_keeps_its_place():
    a = np.full((30, 40, 3), 200, np.uint8)
    crops, geo = M.crop_boxes(_png(a), [(0, 0, 10, 10)], size=12, context=0.25)
    assert tuple(crops[0, :, 0, 0]) == (0, 0, 0)  # above-left of the frame
    assert tuple(crops[0, :, 6, 6]) == (200, 200, 200)
    assert tuple(crops[0, :, 11, 11]) == (200, 200, 200)  # inside the frame, below-right
    assert geo[0, 2] == pytest.approx(5 / 40)


@pytest.mark.parametrize("box, clipped", [
    ((-10, -5, 8, 12), (0, 0, 8, 12)),  # partly outside
    ((30, 20, 60, 50), (30, 20, 40, 30)),  # partly outside on the far side
    ((12, 7, 13, 8), (12, 7, 13, 8)),  # 1 px
    ((12, 7, 12, 7), (11.5, 6.5, 12.5, 7.5)),  # zero area: grown to 1 px around its point
    ((20, 15, 10, 5), (10, 5, 20, 15)),  # corners given in reverse
    ((100, 100, 120, 120), (39, 29, 40, 30)),  # wholly outside: the nearest frame pixel
    ((float("nan"), 3, 5, float("inf")), (0, 3, 5, 30)),  # non-finite coordinates
])
def test_degenerate_boxes_are_repaired_never_rejected(box, clipped):
    crops, geo = M.crop_boxes(_png(_red_square_on_blue()), [box], size=8)
    assert crops.shape == (1, 3, 8, 8)
    x0, y0, x1, y1 = clipped
    w, h = x1 - x0, y1 - y0
    expected = (np.log(w / h), np.log(w * h / 1200), (x0 + x1) / 80, (y0 + y1) / 60)
    np.testing.assert_allclose(geo[0], expected, rtol=1e-5, atol=1e-6)
    assert np.isfinite(geo).all()


def test_one_pixel_box_is_that_pixel_upsampled():
    crops, _ = M.crop_boxes(_png(_red_square_on_blue()), [(12, 7, 13, 8)], size=8, context=0.0)
    assert (crops[0].reshape(3, -1).T == (255, 0, 0)).all()


def test_no_boxes_gives_empty_arrays():
    crops, geo = M.crop_boxes(_png(_red_square_on_blue()), [], size=8)
    assert crops.shape == (0, 3, 8, 8) and geo.shape == (0, len(M.GEOMETRY_FIELDS))


def test_boxes_live_in_the_displayed_frame_of_an_exif_rotated_image():
    stored = np.zeros((30, 40, 3), np.uint8)
    stored[0:5, 0:5] = (0, 255, 0)  # top-left as stored
    # Orientation 6: displayed = stored turned 90 degrees clockwise, 30 wide and 40 high; the
    # stored top-left corner shows at the displayed top-right.
    crops, geo = M.crop_boxes(_png(stored, orientation=6), [(25, 0, 30, 5)], size=4, context=0)
    assert (crops[0].reshape(3, -1).T == (0, 255, 0)).all()
    assert geo[0, 2] == pytest.approx(27.5 / 30) and geo[0, 3] == pytest.approx(2.5 / 40)


def test_covered_fraction_and_judgeable_from_the_boxes_alone():
    boxes = [(0, 0, 20, 20), (10, 0, 30, 20), (0, 0, 10, 10), (50, 50, 60, 60), (70, 70, 75, 90)]
    cov = M.covered_fraction(boxes)
    # Box 0: right half under box 1, top-left quarter under box 2: 3/4 of it is covered. Box 2
    # lies wholly inside box 0.
    np.testing.assert_allclose(cov, [0.75, 0.5, 1.0, 0.0, 0.0])
    assert M.judgeable(boxes, 100, 100, min_side=8, max_covered=0.9).tolist() == [
        True, True, False, True, False]  # box 2 is hidden, box 4 is 5 px wide
    # Clipped to a 55 px frame, box 3 is 5 px wide.
    assert not M.judgeable(boxes, 55, 55, min_side=8, max_covered=0.9)[3]


# ----------------------------------------------------------------------- confident learning


def _clean_probs(labels: np.ndarray, k: int, confidence: np.ndarray) -> np.ndarray:
    probs = np.full((len(labels), k), 0.0)
    probs[np.arange(len(labels)), labels] = confidence
    rest = (1 - confidence) / (k - 1)
    return probs + (probs == 0) * rest[:, None]


def test_a_clear_flip_is_found_and_a_right_but_unsure_box_is_not():
    labels = np.repeat([0, 1, 2], 10)
    probs = _clean_probs(labels, 3, np.full(30, 0.9))
    probs[3] = (0.02, 0.95, 0.03)  # labeled 0, plainly a 1
    probs[25] = (0.3, 0.3, 0.4)  # labeled 2 and most likely 2, but unsure
    issues = M.find_label_issues(labels, probs)
    assert np.flatnonzero(issues.is_issue).tolist() == [3]
    assert issues.suggested[3] == 1 and issues.suggested_prob[3] == pytest.approx(0.95)
    assert issues.self_confidence[3] == pytest.approx(0.02)
    assert issues.confident_joint[0, 1] == 1
    # t_j = mean probability of j over the boxes labeled j.
    np.testing.assert_allclose(issues.thresholds, [(9 * 0.9 + 0.02) / 10, 0.9,
                                                   (9 * 0.9 + 0.4) / 10], rtol=1e-6)


def test_thresholds_are_per_class():
    """A class the model is always unsure of has a low threshold: 0.55 for it is confident; a
    class it is always sure of has a high one: 0.6 for it is not."""
    labels = np.repeat([0, 1], 10)
    probs = np.zeros((20, 2))
    probs[:10, 0] = 0.98
    probs[10:, 1] = 0.55
    probs[np.arange(20), 1 - labels] = 1 - probs[np.arange(20), labels]
    probs[0] = (0.45, 0.55)  # labeled 0 (the sure class); 0.55 of the unsure class 1
    probs[10] = (0.6, 0.4)  # labeled 1 (the unsure class); 0.6 of the sure class 0
    issues = M.find_label_issues(labels, probs)
    assert issues.thresholds[0] > 0.9 and issues.thresholds[1] < 0.56
    assert issues.is_issue[0] and not issues.is_issue[10]
    assert issues.is_issue.sum() == 1
    # Box 0 sits off the diagonal; box 10 reaches no class's threshold and is not counted.
    assert issues.confident_joint.trace() == 18 and issues.confident_joint.sum() == 19


def test_pruning_never_empties_a_class_and_unjudged_boxes_are_not_flagged():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    probs = _clean_probs(labels, 2, np.full(8, 0.9))
    probs[:3] = (0.05, 0.95)  # every box labeled 0 looks like a 1
    issues = M.find_label_issues(labels, probs)
    assert issues.is_issue[:3].sum() == 2 and not issues.is_issue[3:].any()
    judged = np.ones(8, bool)
    judged[[0, 1]] = False
    issues = M.find_label_issues(labels, probs, judged)
    assert not issues.is_issue.any()
    # The one judged box labeled 0 sets t_0 alone and is kept as its class's last box.
    assert issues.thresholds[0] == pytest.approx(0.05)


def test_find_label_issues_names_the_bad_input():
    with pytest.raises(ValueError, match="box 1 has 3"):
        M.find_label_issues(np.array([0, 3]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"\(n, n_classes\) with n = 2"):
        M.find_label_issues(np.array([0, 1]), np.full((3, 2), 0.5))


# ----------------------------------------------------------------------- out-of-fold training


def _memorisable(groups: int = 30, per_group: int = 4, k: int = 4):
    """Every image's boxes share one colour and one random label: learnable only by memorising
    the image, so a model that never saw an image scores its label at chance or worse."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (groups, 3, 1, 1))
    crops = np.repeat(np.broadcast_to(colours, (groups, 3, 16, 16)), per_group, axis=0)
    crops = np.clip(crops + rng.integers(-3, 4, crops.shape), 0, 255).astype(np.uint8)
    geometry = np.repeat(rng.normal(size=(groups, 4)).astype(np.float32), per_group, axis=0)
    labels = np.repeat(rng.integers(0, k, groups), per_group)
    ids = [f"img{g:02d}" for g in np.repeat(np.arange(groups), per_group)]
    return crops, geometry, labels, ids


MEMO_CONFIG = M.MislabelConfig(folds=3, epochs=15, batch=32, min_boxes=10)


def test_no_box_is_scored_by_a_model_that_trained_on_its_image():
    crops, geometry, labels, ids = _memorisable()
    result = M.out_of_fold(crops, geometry, labels, ids, 4, MEMO_CONFIG)
    groups = np.array(ids)
    assert sorted(set(result.fold.tolist())) == list(range(MEMO_CONFIG.folds))
    for k, trained in enumerate(result.trained_on):
        scored = set(groups[result.fold == k])
        assert scored and not scored & set(groups[trained])
        # ...and it trained on every other image.
        assert set(groups[trained]) == set(groups) - scored
    self_conf = result.probs[np.arange(len(labels)), labels].mean()
    # The same data also given as extra training data leaks every image into every fold: the
    # models then recall the labels, which shows that this check can see a leak.
    leaked = M.out_of_fold_probs(crops, geometry, labels, ids, 4, MEMO_CONFIG,
                                 extra_train=(crops, geometry, labels))
    leaked_conf = leaked[np.arange(len(labels)), labels].mean()
    print(f"\nmean probability of the label: out of fold {self_conf:.3f}, leaked {leaked_conf:.3f}")
    assert self_conf < 0.35 < 0.6 < leaked_conf
    assert leaked.shape == result.probs.shape  # extra rows are trained on, never scored
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, rtol=1e-5)


def test_folds_hold_whole_images_are_balanced_and_ignore_row_order():
    groups = [f"img{i % 23}" for i in range(200)]
    fold = M.fold_assignment(groups, 5)
    of = {}
    for g, f in zip(groups, fold, strict=True):
        assert of.setdefault(g, f) == f
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 9  # within one image's boxes
    order = np.random.default_rng(1).permutation(200)
    shuffled = M.fold_assignment([groups[i] for i in order], 5)
    assert (shuffled == fold[order]).all()
    assert (M.fold_assignment(groups, 5, seed=1) != fold).any()


def _digest(probs: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(probs, dtype=np.float32).tobytes()).hexdigest()


def memorisable_digest() -> str:
    """Digest of the probabilities of :func:`_memorisable` (called in a fresh interpreter)."""
    crops, geometry, labels, ids = _memorisable(groups=12)
    cfg = M.MislabelConfig(folds=3, epochs=2, batch=16, min_boxes=10)
    return _digest(M.out_of_fold_probs(crops, geometry, labels, ids, 4, cfg))


def test_probabilities_are_bit_identical_across_runs_and_processes():
    torch.set_num_threads(2)
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    first = memorisable_digest()
    assert torch.get_num_threads() == 2  # the caller's thread count is back
    assert torch.equal(torch.rand(3), expected_draw)  # and its random stream untouched
    assert memorisable_digest() == first
    code = ("import torch; torch.set_num_threads(2)\n"
            "from tests.lib.curation.test_mislabels import memorisable_digest\n"
            "print(memorisable_digest())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    assert proc.stdout.split()[-1] == first
    crops, geometry, labels, ids = _memorisable(groups=12)
    other_seed = M.MislabelConfig(folds=3, epochs=2, batch=16, min_boxes=10, seed=1)
    assert _digest(M.out_of_fold_probs(crops, geometry, labels, ids, 4, other_seed)) != first


def test_folds_trained_in_worker_processes_give_the_same_bits_and_record():
    crops, geometry, labels, ids = _memorisable(groups=12)
    extra = tuple(a[:40] for a in (crops, geometry, labels))
    config = M.MislabelConfig(folds=3, epochs=2, batch=16, min_boxes=10)
    serial = M.out_of_fold(crops, geometry, labels, ids, 4, config, extra, workers=1)
    parallel = M.out_of_fold(crops, geometry, labels, ids, 4, config, extra, workers=2)
    assert serial.probs.tobytes() == parallel.probs.tobytes()
    assert np.array_equal(serial.fold, parallel.fold)
    assert all(np.array_equal(a, b) for a, b in zip(serial.trained_on, parallel.trained_on,
                                                      strict=True))


def test_one_image_is_scored_by_a_model_of_the_extra_boxes_alone():
    crops, geometry, labels, ids = _memorisable(groups=12)
    one = slice(0, 4)  # the boxes of img00
    cfg = M.MislabelConfig(folds=3, epochs=2, batch=16, min_boxes=1)
    with pytest.raises(M.NotEnoughData, match="got 1 image and no extra boxes"):
        M.out_of_fold_probs(crops[one], geometry[one], labels[one], ids[one], 4, cfg)
    rest = slice(4, None)
    result = M.out_of_fold(crops[one], geometry[one], labels[one], ids[one], 4, cfg,
                           extra_train=(crops[rest], geometry[rest], labels[rest]))
    assert result.probs.shape == (4, 4) and result.trained_on[0].size == 0


def test_too_little_data_or_bad_inputs_are_refused_with_the_reason():
    crops, geometry, labels, ids = _memorisable(groups=3, per_group=5)
    with pytest.raises(M.NotEnoughData, match="at least 100 boxes to learn from, got 15 scored "
                                              "and 0 extra"):
        M.out_of_fold_probs(crops, geometry, labels, ids, 4)
    with pytest.raises(M.NotEnoughData, match="got 15 scored and 15 extra"):
        M.out_of_fold_probs(crops, geometry, labels, ids, 4, M.MislabelConfig(min_boxes=31),
                            extra_train=(crops, geometry, labels))
    with pytest.raises(ValueError, match="box 0 has 4"):
        M.out_of_fold_probs(crops, geometry, np.full(15, 4), ids, 4)
    with pytest.raises(ValueError, match="uint8"):
        M.out_of_fold_probs(crops.astype(np.float32), geometry, labels, ids, 4)
    with pytest.raises(ValueError, match="one group per box"):
        M.out_of_fold_probs(crops, geometry, labels, ids[:-1], 4)


# -------------------------------------------------------------------- planted label flips


@pytest.fixture(scope="module")
def capture_days():
    """~2100 annotated boxes from four clean synthetic days (different seeds, so other streets,
    objects and lighting), cropped once for the whole module."""
    crops, geometry, labels, groups, occluded, judged = [], [], [], [], [], []
    for seed in range(4):
        config = SceneConfig(seed=seed, defects=DefectConfig.none())
        for frame in generate_day(config, f"2024-05-0{seed + 1}"):
            boxes = [b[1:] for b in frame.boxes]
            c, g = M.crop_boxes(frame.data, boxes)
            crops.append(c)
            geometry.append(g)
            labels += [CLASSES.index(b[0]) for b in frame.boxes]
            groups += [frame.sha256] * len(boxes)
            occluded += [o.occluded for o in frame.objects]
            judged.append(M.judgeable(boxes, frame.width, frame.height))
    return (np.concatenate(crops), np.concatenate(geometry), np.array(labels), groups,
            np.array(occluded), np.concatenate(judged))


def test_planted_label_flips_are_found(capture_days):
    crops, geometry, truth, groups, occluded, judged = capture_days
    assert 1500 <= len(truth) <= 2500
    rng = np.random.default_rng(2024)
    flipped = rng.random(len(truth)) < 0.05
    given = truth.copy()
    given[flipped] = (truth[flipped] + rng.integers(1, len(CLASSES), flipped.sum())) % len(CLASSES)
    probs = M.out_of_fold_probs(crops, geometry, given, groups, len(CLASSES))
    print(f"\n{len(truth)} boxes, {flipped.sum()} flipped, {(~judged).sum()} not judged; "
          f"out-of-fold accuracy on the true classes {(probs.argmax(1) == truth).mean():.3f}")
    results = {}
    for name, mask in (("every box", None), ("judged boxes", judged)):
        issues = M.find_label_issues(given, probs, mask)
        hits = (issues.is_issue & flipped).sum()
        precision = hits / max(issues.is_issue.sum(), 1)
        recall = hits / flipped.sum()
        false = issues.is_issue & ~flipped
        results[name] = precision, recall
        print(f"{name}: flagged {issues.is_issue.sum()}, precision {precision:.3f}, recall "
              f"{recall:.3f}; false flags' occlusion {np.round(occluded[false], 2).tolist()}")
    precision, recall = results["judged boxes"]
    assert precision >= 0.6 and recall >= 0.6
    assert min(results["every box"]) >= 0.6


def test_a_clear_disagreement_is_an_issue_even_when_the_class_threshold_is_higher():
    """A near-certain model sets thresholds near 1: a 0.95 vote for another class never enters
    the confident joint, yet a label with probability 4e-7 is wrong."""
    labels = np.array([0] * 20 + [1] * 20)
    probs = np.array([[0.99, 0.01]] * 20 + [[0.01, 0.99]] * 19 + [[0.95, 4e-7]], dtype=np.float64)
    found = M.find_label_issues(labels, probs)
    assert found.is_issue.tolist() == [False] * 39 + [True]
    assert not M.find_label_issues(labels, probs, max_given_prob=1e-9).is_issue[-1]


def test_crops_decoded_in_threads_equal_the_serial_crops_in_key_order():
    from dataops_cv.lib.curation.decisions import LabelBox
    from dataops_cv.lib.curation.label_issues import _crops

    rng = np.random.default_rng(7)
    images, boxes = {}, {}
    for i in range(37):  # more than one chunk of 8 per worker, and an uneven last chunk
        key = f"frames/{36 - i:02d}.png"  # listed out of order: crops follow sorted keys
        images[key] = _png(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        boxes[key] = [LabelBox(f"{key}#{j}", "car" if j % 2 else "person", None,
                               float(j), float(j), 20.0 + j, 30.0 + j) for j in range(i % 3)]
    serial = _crops(images.__getitem__, boxes, workers=1)
    threaded = _crops(images.__getitem__, boxes, workers=3)
    assert serial[2:5] == threaded[2:5]
    assert serial[3] == sorted(serial[3])
    for a, b in zip((serial[0], serial[1], serial[5]), (threaded[0], threaded[1], threaded[5])):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert _crops(images.__getitem__, {}, workers=3) is None


def test_training_stops_at_max_steps_however_many_boxes_there_are(monkeypatch):
    steps: list[int] = []
    real = M._one_cycle

    def counted(step, total, peak):
        steps.append(total)
        return real(step, total, peak)

    monkeypatch.setattr(M, "_one_cycle", counted)
    crops, geometry, labels, ids = _memorisable(groups=60, per_group=8)
    config = M.MislabelConfig(folds=2, epochs=8, batch=16, min_boxes=10, min_steps=20,
                              max_steps=50)
    M.out_of_fold(crops, geometry, labels, ids, 4, config)
    # 240 training boxes a fold: 15 steps an epoch, 120 for eight epochs, capped at 50 a fold.
    assert len(steps) == 2 * 50 and set(steps) == {50}
    steps.clear()
    small = dataclasses.replace(config, max_steps=400)
    M.out_of_fold(crops, geometry, labels, ids, 4, small)
    assert len(steps) == 2 * 120
    with pytest.raises(ValueError, match="max_steps must be >= min_steps"):
        M.MislabelConfig(min_steps=200, max_steps=100)
