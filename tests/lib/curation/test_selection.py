"""Curation diversity selection: one pick per blob first, deterministic, rare classes kept."""

import numpy as np
import pytest

from dataops_cv.lib.curation.selection import select_diverse


def test_select_diverse_takes_one_point_per_blob_first():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 100, (5, 8))
    sizes = [200, 50, 20, 5, 1]
    emb = np.concatenate([c + rng.normal(0, 1, (s, 8)) for c, s in zip(centres, sizes)])
    blob = np.repeat(np.arange(5), sizes)
    picks = select_diverse(emb, 5)
    assert sorted(blob[picks].tolist()) == [0, 1, 2, 3, 4]
    assert picks == select_diverse(emb, 5)
    assert select_diverse(emb, 10_000) == select_diverse(emb, len(emb))
    assert sorted(select_diverse(emb, 10_000)) == list(range(len(emb)))


def test_class_balance_keeps_a_rare_class():
    rng = np.random.default_rng(2)
    emb = rng.normal(0, 1, (300, 4))
    classes = [["car"] for _ in range(300)]
    for k in (10, 11, 12):  # three pedestrians among 300 cars, in the middle of the crowd
        classes[k] = ["pedestrian", "car"]
        emb[k] = rng.normal(0, 0.01, 4)
    balanced = select_diverse(emb, 6, classes)
    plain = select_diverse(emb, 6, classes, class_balance=False)
    assert {10, 11, 12} & set(balanced[:2])
    assert sum(k in (10, 11, 12) for k in balanced) >= 2
    assert not {10, 11, 12} & set(plain)
    with pytest.raises(ValueError, match="one entry per row"):
        select_diverse(emb, 3, classes[:5])
