"""The pre-label detector: reproducible training, sane outputs, and the review count."""

import torch

from dataops_cv.lib.labeling.autolabel import (
    INPUT_H,
    INPUT_W,
    frames_to_review,
    predict,
    seed_from,
    train,
    training_boxes,
)

CLASSES = ("car", "bus")


def _scenes(n=6):
    """Bright squares (car) and wide bars (bus) on a dark background, in model-input pixels."""
    g = torch.Generator().manual_seed(0)
    images, boxes = torch.zeros(n, 3, INPUT_H, INPUT_W), []
    for i in range(n):
        x, y = int(torch.randint(10, 100, (1,), generator=g)), int(torch.randint(10, 70, (1,),
                                                                               generator=g))
        images[i, :, y:y + 24, x:x + 24] = 1.0
        images[i, 0, 90:110, 20:80] = 1.0
        boxes.append([(0, x, y, x + 24, y + 24), (1, 20, 90, 80, 110)])
    return images, boxes


def test_training_is_reproducible_and_seed_dependent():
    images, boxes = _scenes()
    a = train(images, boxes, CLASSES, seed=1, steps=20)
    b = train(images, boxes, CLASSES, seed=1, steps=20)
    c = train(images, boxes, CLASSES, seed=2, steps=20)
    assert a.version == b.version and a.weights == b.weights
    assert a.version != c.version


def test_predictions_are_in_image_pixels_with_scores_and_uncertainty():
    images, boxes = _scenes()
    model = train(images, boxes, CLASSES, seed=1, steps=150)
    (dets, uncertainty), = predict(model, images[:1], [(INPUT_W * 2, INPUT_H * 2)])
    assert 0.0 <= uncertainty <= 1.0
    for d in dets:
        assert d.class_name in CLASSES and 0.0 <= d.score <= d.class_prob <= 1.0
        assert 0 <= d.x_min < d.x_max <= INPUT_W * 2 and 0 <= d.y_min < d.y_max <= INPUT_H * 2


def test_training_boxes_take_one_annotator_per_image_scaled_to_the_input():
    rows = [{"image_sha256": "s", "annotator": "b", "class_name": "car", "x_min": 0,
             "y_min": 0, "x_max": 320, "y_max": 240},
            {"image_sha256": "s", "annotator": "a", "class_name": "bus", "x_min": 32,
             "y_min": 24, "x_max": 64, "y_max": 48}]
    assert training_boxes(rows, {"s": (320, 240)}, CLASSES) == {"s": [(1, 16.0, 12.0, 32.0, 24.0)]}
    assert seed_from(["x", "y"]) == seed_from(["y", "x"])


def test_frames_to_review_accepts_the_most_certain_while_precise_enough():
    results = [(0.1, True), (0.2, True), (0.3, False), (0.4, True), (0.9, False)]
    assert frames_to_review(results, 1.0) == 3  # only the two most certain can be trusted
    assert frames_to_review(results, 0.75) == 1  # 3 of the 4 most certain are right
    assert frames_to_review([(0.5, False)], 0.9) == 1
