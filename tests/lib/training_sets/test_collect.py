"""Which earlier version a training set keeps its splits from, read on a real lakeFS."""

from __future__ import annotations

import json
import time

from dataops_cv.lib.core.tables import to_parquet_bytes
from dataops_cv.lib.lakefs.layout import trainset_key
from dataops_cv.lib.lakefs.run_branch import RefView
from dataops_cv.lib.training_sets import collect
from dataops_cv.lib.training_sets import writer as T

NAME = "sticky"


def _version(store, version: str, partition: str, splits: dict[str, str],
             variants: dict[str, str] | None = None, previous: str | None = None) -> None:
    rows = [{"sample_id": sid, "split": split, "augmented_from": None}
            for sid, split in splits.items()]
    rows += [{"sample_id": sid, "split": "train", "augmented_from": src}
             for sid, src in (variants or {}).items()]
    manifest = to_parquet_bytes([{c: r.get(c) for c in T.MANIFEST_SCHEMA.names} for r in rows],
                                T.MANIFEST_SCHEMA)
    store.put_object("main", trainset_key(NAME, version, T.MANIFEST_PATH), manifest)
    store.put_object("main", trainset_key(NAME, version, T.INPUTS_PATH),
                     _inputs(partition, previous))
    store.commit("main", f"training set {version}")


def _inputs(partition: str, previous: str | None, tables: str = "t1") -> bytes:
    return json.dumps({"partition": partition, "tables": tables, "previous": previous}).encode()


def test_the_previous_version_is_the_latest_unless_these_inputs_were_built(store):
    view = RefView(store, "main")
    assert collect.previous_version(view, NAME, "2026-11-23|rig-a") is None
    _version(store, "v20261122-aaaaaaaaaa", "2026-11-22|rig-a", {"s1": "train", "s2": "test"})
    _version(store, "v20261123-cccccccccc", "2026-11-23|rig-a", {"s1": "train", "s3": "val"},
             previous="v20261122-aaaaaaaaaa")
    time.sleep(1.1)  # lakeFS dates commits to the second
    _version(store, "v20261123-bbbbbbbbbb", "2026-11-23|rig-b", {"s1": "train", "s4": "val"},
             variants={"s9": "s1"}, previous="v20261123-cccccccccc")
    # rig-b's build is the later of the day's two (its version string sorts first).
    assert collect.previous_version(view, NAME, "2026-11-24|rig-a") == "v20261123-bbbbbbbbbb"
    # The same inputs as an existing version: the previous version it kept, so the same version.
    same = _inputs("2026-11-23|rig-a", None)
    assert collect.previous_version(view, NAME, "2026-11-23|rig-a", same) == \
        "v20261122-aaaaaaaaaa"
    # The day built again from changed inputs keeps the latest splits, its own day's included.
    changed = _inputs("2026-11-23|rig-a", None, tables="t2")
    assert collect.previous_version(view, NAME, "2026-11-23|rig-a", changed) == \
        "v20261123-bbbbbbbbbb"
    assert collect.previous_version(view, "other-name", "2026-11-24|rig-a") is None
    assert collect.prior_placement(view, NAME, "v20261123-bbbbbbbbbb") == (
        {"s1": "train", "s4": "val"}, [])
    assert collect.prior_placement(view, NAME, None) == ({}, [])


def test_window_pairs_take_a_curated_days_pairs_and_group_as_a_full_search(store):
    import hashlib

    import numpy as np

    from dataops_cv.lib.curation.feature_cache import Features
    from dataops_cv.lib.curation.features import FEATURE_VERSION, image_features
    from dataops_cv.lib.curation.near_duplicates import (
        NearDupConfig,
        group_labels,
        near_duplicate_pairs,
    )
    from dataops_cv.lib.curation.tables import NEAR_PAIRS_SCHEMA
    from dataops_cv.lib.lakefs.layout import side_key
    from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
    from dataops_cv.lib.synthetic.frames import generate_day

    found = collect.Collected()
    ph_parts, em_parts = [], []
    by_day: dict[str, list[int]] = {}
    first_day: list[bytes] = []
    for d, day in enumerate(("2026-11-22", "2026-11-23")):
        config = SceneConfig(seed=d, sessions_per_day=2, frames_per_session=6,
                             defects=DefectConfig.none())
        frames = list(generate_day(config, day))
        datas = [f.data for f in frames]
        sessions = [f.session_id for f in frames]
        # Copies in another session of the day, and (day 2) of a day-1 frame.
        datas += [datas[0] + b"\0", datas[7] + b"\0"]
        sessions += [sessions[-1], sessions[0]]
        if d == 1:
            datas.append(first_day[2] + b"\0")
            sessions.append(sessions[0])
        else:
            first_day.extend(datas)
        phash, emb = image_features(datas)
        ph_parts.append(phash)
        em_parts.append(emb)
        for data, session in zip(datas, sessions):
            sha = hashlib.sha256(data).hexdigest()
            by_day.setdefault(day, []).append(len(found.originals))
            found.originals.append(T.SampleIn(
                sample_id=sha[:16], content_sha256=sha, object_key=f"frames/{sha}", date=day,
                rel_path=sha, session_id=f"{day}/{session}", camera="cam", width=320,
                height=240, group_key="", boxes=(), label_source="labeled",
                label_revision="r", source="rig"))
            found.sessions.append(f"{day}/{session}")
    ph, em = np.concatenate(ph_parts), np.concatenate(em_parts)
    shas_all = [s.content_sha256 for s in found.originals]
    found.feature_parts.append(Features(shas_all, ph, em, [FEATURE_VERSION] * len(shas_all)))
    # Day 1 was curated under the default rule: its pairs are on the branch.
    day1 = by_day["2026-11-22"]
    pairs1 = near_duplicate_pairs(ph[day1], em[day1])
    shas = [found.originals[k].content_sha256 for k in day1]
    first = "2026-11-22|rig"
    store.put_object("main", side_key(collect.CURATED, first, "_near_pairs.parquet"),
                     to_parquet_bytes([{"a": shas[a], "b": shas[b], "hamming": int(h),
                                        "cosine": float(c)} for a, b, h, c in zip(
                         pairs1.i, pairs1.j, pairs1.hamming, pairs1.cosine)],
                         NEAR_PAIRS_SCHEMA))
    store.put_object("main", side_key(collect.CURATED, first, "_inputs.json"), json.dumps(
        {"near_duplicates": repr(NearDupConfig()), "features": FEATURE_VERSION}).encode())
    store.commit("main", "curated day 1")
    days = [first, "2026-11-23|rig"]
    i, j = collect.collected_pairs(RefView(store, "main"), days, found, workers=1)
    full = near_duplicate_pairs(ph, em, groups=group_labels(found.sessions))
    ids = [s.sample_id for s in found.originals]
    groups = collect.leakage_groups(ids, found.sessions, zip(i, j))
    assert groups == collect.leakage_groups(ids, found.sessions, zip(full.i, full.j))
    assert len(set(groups)) < len(set(found.sessions))  # the copies did join sessions
