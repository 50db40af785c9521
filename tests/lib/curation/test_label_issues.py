"""A day's mislabel check re-run: unchanged boxes keep their scores, late and relabeled boxes are
scored by the last run's fold models (each by one that never trained on its image), and past a
share of late boxes, or under other settings, the folds train again."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dataops_cv.lib.curation import label_issues as L
from dataops_cv.lib.curation import mislabels as M
from dataops_cv.lib.curation.decisions import CurationSample, LabelBox
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day

PARAMS = L.LabelIssueParams(min_boxes=50, min_agreement=0.0, min_frames=10, workers=1)


@pytest.fixture(scope="module")
def day():
    config = SceneConfig(seed=11, sessions_per_day=2, frames_per_session=24,
                         defects=DefectConfig.none())
    images, samples = {}, []
    for frame in generate_day(config, "2026-11-22"):
        key = f"frames/{frame.sha256}.png"
        images[key] = frame.data
        boxes = tuple(LabelBox(f"{frame.sha256[:8]}-{k}", b[0], None, *map(float, b[1:]))
                      for k, b in enumerate(frame.boxes))
        samples.append(CurationSample(
            frame.sha256[:16], frame.sha256, key, key, frame.session_id, "cam", frame.width,
            frame.height, None, None, None, boxes, "labeled", "rev"))
    return images, [s for s in samples if s.boxes]


def _run(images, samples, earlier=None, decoded=None):
    def read(key: str) -> bytes:
        if decoded is not None:
            decoded.append(key)
        return images[key]

    return L.find_day_label_issues(read, samples, {}, PARAMS, earlier)


def test_a_re_run_keeps_unchanged_scores_and_scores_only_late_or_changed_boxes(day, monkeypatch):
    images, samples = day
    first = _run(images, samples[:-2])
    assert first.models and len(first.scores) == sum(len(s.boxes) for s in samples[:-2])
    by_key = {r["box_key"]: r for r in first.scores}
    # Two late frames, and one box of a known frame relabeled.
    victim = samples[3]
    old = victim.boxes[0]
    present = sorted({b.class_name for s in samples[:-2] for b in s.boxes} - {old.class_name})
    relabeled = dataclasses.replace(old, class_name=present[0])
    samples = list(samples)
    samples[3] = dataclasses.replace(victim, boxes=(relabeled, *victim.boxes[1:]))
    trained: list[int] = []
    monkeypatch.setattr(M, "out_of_fold", lambda *a, **k: trained.append(1) or None)
    decoded: list[str] = []
    again = _run(images, samples, L.EarlierScores(first.models, first.scores), decoded)
    assert not trained and again.models == first.models
    assert sorted(set(decoded)) == sorted({samples[3].object_key, samples[-1].object_key,
                                           samples[-2].object_key})
    rows = {r["box_key"]: r for r in again.scores}
    for key, r in by_key.items():
        if key in rows:  # unchanged: the same scores, fold and flag
            assert rows[key] == r
    changed = [r for key, r in rows.items() if key not in by_key]
    assert {r["object_key"] for r in changed} == {samples[3].object_key,
                                                  samples[-1].object_key,
                                                  samples[-2].object_key}
    assert all(r["late"] for r in changed)
    # The relabeled box is scored by its frame's fold model only; late frames by every fold's.
    fold_of_frame = {r["object_key"]: r["fold"] for r in first.scores}
    for r in changed:
        expected = fold_of_frame.get(r["object_key"], -1)
        assert r["fold"] == expected
    assert sum(r["fold"] == -1 for r in changed) == sum(len(s.boxes) for s in samples[-2:])
    assert "by the last run's models" in again.note


def test_too_many_late_boxes_or_other_settings_train_the_folds_again(day):
    images, samples = day
    half = samples[: len(samples) // 2]
    first = _run(images, half)
    earlier = L.EarlierScores(first.models, first.scores)

    def retrained(found) -> bool:
        return "earlier boxes in training" in found.note and not any(
            r["late"] for r in found.scores)

    assert retrained(_run(images, samples, earlier))  # half the day is late
    other = L.find_day_label_issues(lambda k: images[k], half, {},
                                    dataclasses.replace(PARAMS, min_boxes=60), earlier)
    assert retrained(other)  # another model setting: the stored models do not apply
    assert retrained(_run(images, half, L.EarlierScores(b"junk", first.scores)))
    assert not retrained(_run(images, half, earlier))  # nothing changed: all kept


def test_stored_fold_models_score_as_they_did_inside_training(day):
    images, samples = day
    first = _run(images, samples)
    models, meta = M.load_models(first.models)
    crops = L._crops(images.__getitem__, {s.object_key: list(s.boxes) for s in samples})
    fold = np.array([r["fold"] for r in first.scores])
    probs = M.score_with(models, crops[0], crops[1], fold, len(meta["classes"]))
    stored = np.array([r["probs"] for r in first.scores], dtype=np.float32)
    assert np.allclose(probs, stored, atol=1e-5)
    unseen = M.score_with(models, crops[0][:3], crops[1][:3], np.full(3, -1),
                          len(meta["classes"]))
    assert np.allclose(unseen.sum(axis=1), 1.0, atol=1e-5)
