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
             variants: dict[str, str] | None = None) -> None:
    rows = [{"sample_id": sid, "split": split, "augmented_from": None}
            for sid, split in splits.items()]
    rows += [{"sample_id": sid, "split": "train", "augmented_from": src}
             for sid, src in (variants or {}).items()]
    manifest = to_parquet_bytes([{c: r.get(c) for c in T.MANIFEST_SCHEMA.names} for r in rows],
                                T.MANIFEST_SCHEMA)
    store.put_object("main", trainset_key(NAME, version, T.MANIFEST_PATH), manifest)
    store.put_object("main", trainset_key(NAME, version, T.INPUTS_PATH),
                     json.dumps({"partition": partition}).encode())
    store.commit("main", f"training set {version}")


def test_the_previous_version_is_the_latest_days_last_built_for_another_partition(store):
    view = RefView(store, "main")
    assert collect.previous_version(view, NAME, "2026-11-23|rig-a") is None
    _version(store, "v20261122-aaaaaaaaaa", "2026-11-22|rig-a", {"s1": "train", "s2": "test"})
    _version(store, "v20261123-cccccccccc", "2026-11-23|rig-a", {"s1": "train", "s3": "val"})
    time.sleep(1.1)  # lakeFS dates commits to the second
    _version(store, "v20261123-bbbbbbbbbb", "2026-11-23|rig-b", {"s1": "train", "s4": "val"},
             variants={"s9": "s1"})
    # rig-b's build is the later of the day's two (its version string sorts first).
    assert collect.previous_version(view, NAME, "2026-11-24|rig-a") == "v20261123-bbbbbbbbbb"
    # A day's own versions are passed over: re-running it finds the same previous version.
    assert collect.previous_version(view, NAME, "2026-11-23|rig-b") == "v20261123-cccccccccc"
    assert collect.previous_version(view, NAME, "2026-11-23|rig-a") == "v20261123-bbbbbbbbbb"
    assert collect.previous_version(view, "other-name", "2026-11-24|rig-a") is None
    assert collect.prior_placement(view, NAME, "v20261123-bbbbbbbbbb") == (
        {"s1": "train", "s4": "val"}, [])
    assert collect.prior_placement(view, NAME, None) == ({}, [])
