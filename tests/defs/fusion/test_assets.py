"""fused_samples on the published day: unchanged inputs recompute nothing, a new config does."""

from __future__ import annotations

from dataops_cv.lib.lakefs.layout import side_key, table_key
from tests.defs.conftest import DAY, FRAMES_PER_CAMERA, materialize


def test_unchanged_inputs_are_not_fused_again(published_day):
    done = materialize(published_day.resources, "fused_samples")
    meta = done.metadata("fused_samples")
    assert meta["unchanged"] is True and "count_fusion_frames" not in meta
    path = table_key("fused_samples", DAY)
    assert done.run.stat(path).checksum == published_day.store.stat_object(
        published_day.main, path).checksum
    assert done.check("fused_samples_contract").passed


def test_a_new_tolerance_fuses_the_day_again_with_its_reports(published_day):
    done = materialize(published_day.resources, "fused_samples", run_config={
        "ops": {"fused_samples": {"config": {"imu_tolerance_ms": 4.0}}}})
    meta = done.metadata("fused_samples")
    assert meta["unchanged"] is False
    assert meta["count_fusion_frames"] == 2 * FRAMES_PER_CAMERA
    fused = done.run.day_rows("fused_samples", DAY)
    assert len(fused) == 2 * FRAMES_PER_CAMERA
    assert all(r["imu_dt_us"] is None or abs(r["imu_dt_us"]) <= 4000 for r in fused)
    clocks = done.run.rows(side_key("fused_samples", DAY, "_clocks.parquet"))
    assert {c["sensor"] for c in clocks} >= {"imu", "gps"}
    inputs = done.run.read_json(side_key("fused_samples", DAY, "_inputs.json"))
    assert inputs[table_key("raw_frames", DAY)] is not None
    assert done.check("fused_samples_contract").passed
