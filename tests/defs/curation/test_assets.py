"""curated_samples on the published day: one decision per frame with its reasons, features
cached by content hash, and a budget that leaves the rest out with a reason."""

from __future__ import annotations

from dataops_cv.lib.curation.decisions import split_list
from dataops_cv.lib.lakefs.layout import side_key
from tests.defs.conftest import DAY, FRAMES_PER_CAMERA, materialize

FRAMES = 2 * FRAMES_PER_CAMERA


def test_unchanged_inputs_are_not_curated_again(published_day):
    done = materialize(published_day.resources, "curated_samples")
    assert done.metadata("curated_samples")["unchanged"] is True
    assert done.check("curated_samples_reasons").passed


def test_a_budget_keeps_the_most_diverse_frames_and_gives_the_rest_a_reason(published_day):
    budget = 3
    done = materialize(published_day.resources, "curated_samples", run_config={
        "ops": {"curated_samples": {"config": {"budget": budget}}}})
    meta = done.metadata("curated_samples")
    assert meta["unchanged"] is False and meta["count_curation_samples"] == FRAMES
    rows = done.run.day_rows("curated_samples", DAY)
    useful = [r for r in rows if r["decision"] == "useful"]
    assert 0 < len(useful) <= budget
    assert all(split_list(r["reasons"]) for r in rows if r["decision"] != "useful")
    assert any("not_selected" in split_list(r["reasons"]) for r in rows)
    # Features were cached on the first curation: this run computed none.
    features = done.run.rows(side_key("curated_samples", DAY, "_features.parquet"))
    assert {f["sha256"] for f in features} == {r["sha256"] for r in rows}
    assert done.run.rows(side_key("curated_samples", DAY, "_boxes.parquet"))
    assert meta["mislabel_check"].startswith("not checked")  # a 12-frame day has < 200 boxes
    assert done.check("curated_samples_reasons").passed
    assert done.check("curated_samples_contract").passed


def test_quality_limits_come_from_the_days_own_source(published_day):
    """The next day's frames are judged with the published day's as history only when both
    come from the same source: another rig's or dataset's frames are not what this one looks
    like. Every frame row carries its source."""
    stages = ["raw_frames", "imported_annotations", "sensor_logs", "fused_samples",
              "curated_samples"]
    next_day = "2026-03-03"
    notes = {}
    for name in ("", "rig-b"):
        resources = dict(published_day.resources)
        resources["capture_source"] = replace_source(resources["capture_source"], name=name)
        done = materialize(resources, stages, partition=next_day)
        notes[name or "synthetic"] = done.metadata("curated_samples")["quality_limits"]
        rows = done.run.day_rows("curated_samples", next_day)
        assert {r["source"] for r in rows} == {name or "synthetic"}
    assert f"{2 * FRAMES} frames of {DAY}..{next_day}" in notes["synthetic"]
    assert f"{FRAMES} reference frames" in notes["rig-b"]


def replace_source(resource, **changes):
    fields = {k: getattr(resource, k) for k in type(resource).model_fields}
    return type(resource)(**{**fields, **changes})
