"""The training-set audit: sessions in one split, no near-duplicate pair across splits (found
again from the curated features), recipes in train, every shard present."""

from __future__ import annotations

import hashlib

import pytest

from dataops_cv.lib.curation.feature_cache import Features
from dataops_cv.lib.curation.features import FEATURE_VERSION, image_features
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day
from dataops_cv.lib.training_sets.leakage import audit_training_set


@pytest.fixture(scope="module")
def frames():
    """Two sessions of one camera, and a byte-for-byte copy of session A's first frame."""
    config = SceneConfig(seed=3, sessions_per_day=2, frames_per_session=4, cameras=("cam",),
                         defects=DefectConfig.none())
    found = list(generate_day(config, "2026-11-22"))
    datas = [f.data for f in found] + [found[0].data + b"\0"]
    sessions = [f.session_id for f in found] + ["copy-session"]
    phash, emb = image_features(datas)
    shas = [hashlib.sha256(d).hexdigest() for d in datas]
    features = Features(shas, phash, emb, [FEATURE_VERSION] * len(shas))
    return shas, sessions, features


def _rows(shas, sessions, splits):
    return [{"sample_id": f"s{k}", "content_sha256": sha, "session_id": session,
             "split": split, "group_key": session, "augmented_from": None, "aug_params": None,
             "shard": "shards/a.parquet"} for k, (sha, session, split)
            in enumerate(zip(shas, sessions, splits))]


def test_a_clean_set_passes_and_each_kind_of_leak_is_named(frames):
    shas, sessions, features = frames
    a, b = sessions[0], sessions[4]
    clean = ["train" if s in (a, "copy-session") else "test" for s in sessions]
    report = audit_training_set(_rows(shas, sessions, clean), features, "root", lambda k: True)
    assert report.problems == []
    # The copy of session A's frame in another session and split: only the search finds it.
    leak = ["train" if s == a else "test" for s in sessions]
    report = audit_training_set(_rows(shas, sessions, leak), features, "root", lambda k: True)
    assert report.straddling_near_duplicates >= 1 and report.straddling_groups == 0
    # One session in two splits, though the manifest's groups were made to hide it.
    split = list(clean)
    split[sessions.index(b)] = "val"
    rows = _rows(shas, sessions, split)
    for r in rows:
        r["group_key"] = r["sample_id"]
    report = audit_training_set(rows, features, "root", lambda k: True)
    assert any("capture session(s) in several splits" in p for p in report.problems)
    report = audit_training_set(_rows(shas, sessions, clean), features, "root", lambda k: False)
    assert report.missing_shards == 1


def test_pairs_found_elsewhere_are_audited_like_searched_ones(frames):
    """The check passes curation's own day pairs in; a straddling one is reported the same."""
    shas, sessions, features = frames
    a = sessions[0]
    clean = ["train" if s in (a, "copy-session") else "test" for s in sessions]
    rows = _rows(shas, sessions, clean)
    seen: list[int] = []

    def find_pairs(known):
        seen.append(len(known))
        return [0], [len(known) - 2]  # session A's first frame and a test frame

    report = audit_training_set(rows, features, "root", lambda k: True, find_pairs)
    assert seen == [len(rows)] and report.straddling_near_duplicates == 1
    assert audit_training_set(rows, features, "root", lambda k: True,
                              lambda known: ([], [])).problems == []
