"""augmented_samples on the published day: a re-run reuses every variant, a larger K computes
only the new ones, and a day that was never fused fails loudly."""

from __future__ import annotations

import pytest

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
    assert all(done.run.exists(r["object_key"]) for r in rows)
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
