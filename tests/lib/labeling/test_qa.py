"""Inter-annotator agreement: IoU matching, box F1 and class agreement."""

import pytest

from dataops_cv.lib.labeling.qa import (
    agreement_summary,
    iou,
    match_boxes,
    pair_scores,
    task_agreements,
)


def row(who, cls, x0, y0, x1, y1, sha="a"):
    return {"image_sha256": sha, "annotator": who, "class_name": cls, "x_min": x0, "y_min": y0,
            "x_max": x1, "y_max": y1}


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_matching_is_one_to_one_best_first():
    a = [("car", 0, 0, 10, 10), ("car", 1, 1, 11, 11)]
    b = [("car", 1, 1, 11, 11)]
    assert match_boxes(a, b) == [(1, 0)]


def test_pair_scores():
    a = [("car", 0, 0, 10, 10), ("bus", 50, 50, 60, 60)]
    assert pair_scores(a, a) == (1.0, 1.0)
    assert pair_scores(a, [("car", 0, 0, 10, 10)]) == (pytest.approx(2 / 3), 1.0)
    assert pair_scores(a, [("truck", 0, 0, 10, 10), ("bus", 50, 50, 60, 60)]) == (1.0, 0.5)
    assert pair_scores([], []) == (1.0, 1.0)
    assert pair_scores(a, []) == (0.0, 0.0)


def test_only_images_with_two_or_more_annotators_are_scored():
    rows = [row("ann", "car", 0, 0, 10, 10), row("bob", "car", 1, 0, 10, 10),
            row("ann", "car", 0, 0, 10, 10, sha="b"),
            row("ann", "car", 0, 0, 10, 10, sha="c"), row("bob", "bus", 0, 0, 10, 10, sha="c")]
    agreements = task_agreements(rows)
    assert [(a.image_sha256, a.agreement, a.disagreement) for a in agreements] == [
        ("a", 1.0, False), ("c", 0.0, True)]
    summary = agreement_summary(agreements)
    assert summary["multi_annotated_images"] == 2 and summary["disagreements"] == 1
    assert summary["mean_agreement"] == 0.5
