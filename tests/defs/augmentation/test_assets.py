"""augmented_samples on the published day: a re-run reuses every variant, a larger K computes
only the new ones, renders are stored as ``render`` asks and equal their recipes rendered in
another process, and a day that was never fused fails loudly."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from dataops_cv.lib.core.previews import PREVIEW_FRAMES
from dataops_cv.lib.lakefs.layout import side_key, table_key
from tests.defs.conftest import DAY, FRAMES_PER_CAMERA, materialize

FRAMES = 2 * FRAMES_PER_CAMERA


def test_a_rerun_reuses_every_variant_and_writes_the_same_bytes(published_day):
    done = materialize(published_day.resources, "augmented_samples")
    meta = done.metadata("augmented_samples")
    assert meta["count_augment_computed"] == 0
    assert meta["count_augment_reused"] == meta["count_augment_variants"] == 2 * FRAMES
    store = published_day.store
    for path in (table_key("augmented_samples", DAY),
                 side_key("augmented_samples", DAY, "_annotations.parquet")):
        assert done.run.stat(path).checksum == store.stat_object(published_day.main,
                                                                 path).checksum


def test_a_third_variant_computes_only_the_new_ones(published_day):
    done = materialize(published_day.resources, "augmented_samples", run_config={
        "ops": {"augmented_samples": {"config": {"variants_per_sample": 3}}}})
    meta = done.metadata("augmented_samples")
    assert meta["count_augment_computed"] == FRAMES and meta["count_augment_reused"] == 2 * FRAMES
    rows = done.run.day_rows("augmented_samples", DAY)
    assert sorted({r["variant"] for r in rows}) == [0, 1, 2]
    # The default (render: preview) stores the previewed renders; the rest are recipes.
    stored = [r for r in rows if r["rendered"]]
    assert len(stored) >= min(PREVIEW_FRAMES, len(rows)) and len(stored) < len(rows)
    assert all(done.run.exists(r["object_key"]) for r in stored)
    assert all(r["sha256"] is None and r["object_key"] is None and r["params"]
               for r in rows if not r["rendered"])
    boxes = done.run.rows(side_key("augmented_samples", DAY, "_annotations.parquet"))
    assert {b["input_key"] for b in boxes} <= {r["input_key"] for r in rows}
    assert done.check("augmented_samples_contract").passed


def test_augmenting_a_day_that_was_never_fused_fails_loudly(published_day):
    done = materialize(published_day.resources, "augmented_samples", partition="2026-03-05|synthetic",
                       raise_on_error=False)
    assert not done.result.success
    (failure,) = done.result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "no fused_samples table" in message and "materialize fused_samples" in message
    with pytest.raises(Exception):
        done.metadata("augmented_samples")


# Renders a variant from its recipe alone, in a process of its own with another thread count.
_RENDER = """
import hashlib, json, sys
import torch
torch.set_num_threads(1)
from dataops_cv.lib.augmentation.params import AugParams
from dataops_cv.lib.augmentation.stream import render_png
for job in json.loads(sys.stdin.read()):
    data = open(job["source"], "rb").read()
    print(hashlib.sha256(render_png(data, AugParams.from_json(job["params"]))).hexdigest())
"""


def test_render_all_stores_every_variant_byte_identical_to_its_recipe(published_day, tmp_path):
    done = materialize(published_day.resources, "augmented_samples", run_config={
        "ops": {"augmented_samples": {"config": {"render": "all"}}}})
    meta = done.metadata("augmented_samples")
    rows = done.run.day_rows("augmented_samples", DAY)
    assert all(r["rendered"] for r in rows) and meta["count_augment_stored"] == len(rows)
    # Only the recipes of the default run needed pixels; the previewed renders were kept.
    assert 0 < meta["count_augment_rendered"] < len(rows)
    assert meta["count_augment_rendered"] == meta["count_augment_computed"]
    jobs = []
    for r in rows:
        stored = done.run.read(r["object_key"])
        assert hashlib.sha256(stored).hexdigest() == r["sha256"]
        source = tmp_path / r["source_sha256"]
        source.write_bytes(done.run.read(r["source_object_key"]))
        jobs.append({"source": str(source), "params": r["params"]})
    out = subprocess.run([sys.executable, "-c", _RENDER], input=json.dumps(jobs),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [r["sha256"] for r in rows]
    assert done.check("augmented_samples_contract").passed

    # Back to recipes only: every row is reused as it is (a stored render is never dropped).
    again = materialize(published_day.resources, "augmented_samples", run_config={
        "ops": {"augmented_samples": {"config": {"render": "none"}}}})
    assert again.metadata("augmented_samples")["count_augment_computed"] == 0
