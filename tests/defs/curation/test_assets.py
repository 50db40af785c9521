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
    notes = {}
    for name in ("", "rig-b"):
        next_day = f"2026-03-03|{name or 'synthetic'}"
        resources = dict(published_day.resources)
        resources["capture_source"] = replace_source(resources["capture_source"], name=name)
        done = materialize(resources, stages, partition=next_day)
        notes[name or "synthetic"] = done.metadata("curated_samples")["quality_limits"]
        rows = done.run.day_rows("curated_samples", next_day)
        assert {r["source"] for r in rows} == {name or "synthetic"}
    assert f"{2 * FRAMES} frames of {DAY}..2026-03-03|synthetic" in notes["synthetic"]
    assert f"{FRAMES} reference frames" in notes["rig-b"]


def replace_source(resource, **changes):
    fields = {k: getattr(resource, k) for k in type(resource).model_fields}
    return type(resource)(**{**fields, **changes})


def test_a_near_copy_in_another_source_of_the_day_is_found(published_day, tmp_path):
    """A second source ships the published day's frames re-encoded as JPEG (other bytes, the
    same scenes): each copy of a useful frame is a near duplicate of that frame in the first
    source, named with its source, so the scene enters a training set once."""
    import io

    from PIL import Image

    from dataops_cv.lib.lakefs.run_branch import RefView

    main = RefView(published_day.store, "main")
    first = main.day_rows("curated_samples", DAY)
    useful = {r["sha256"]: r["sample_id"] for r in first if r["decision"] == "useful"}
    assert useful
    root = tmp_path / "rig-b"
    for r in main.day_rows("raw_frames", DAY):
        out = root / r["rel_path"]
        out.with_suffix(".jpg").parent.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(main.read(r["object_key"]))).convert("RGB").save(
            out.with_suffix(".jpg"), quality=92)
    resources = dict(published_day.resources)
    resources["capture_source"] = replace_source(resources["capture_source"], uri=str(root),
                                                 format="images")
    partition = f"{DAY.split('|')[0]}|rig-b"
    done = materialize(resources, ["raw_frames", "imported_annotations", "sensor_logs",
                                   "fused_samples", "curated_samples"], partition=partition)
    rows = done.run.day_rows("curated_samples", partition)
    by_path = {r["rel_path"]: r for r in first}
    copies = [r for r in rows if by_path[r["rel_path"].replace(".jpg", ".png")]["sha256"]
              in useful]
    assert copies
    for r in copies:
        original = by_path[r["rel_path"].replace(".jpg", ".png")]
        assert "near_duplicate" in split_list(r["reasons"]), (r["reasons"], r["detail"])
        assert r["duplicate_of"] == original["sample_id"]
        assert "of source synthetic" in r["detail"]
