"""Data contracts end to end: real GX, real Dagster runs, real lakeFS.

Blocking failures keep main and leave their evidence on the run branch; warnings and drift publish
with WARN and their numbers."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from dataops_cv.lib.core.partitions import folder
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.runner import run_pipeline
from tests.integration.fault_job import ADDED_COLUMN, RETYPED_COLUMN, retyped_annotations_job
from tests.integration.test_acquisition import png

pytestmark = pytest.mark.usefixtures("in_process_runs")

FRAMES_AND_LABELS = ["raw_frames", "imported_annotations"]


def _synthetic(**config) -> dict:
    # 24 sessions x 2 cameras x 1 frame: 48 frames a day (above the contracts' min_rows for
    # drift), each with its own exposure draw, so an unshifted day looks like its reference.
    base = {"sessions": 24, "frames": 1}
    return {"resources": {"capture_source": {"config": {
        **{f"synthetic_{k}": v for k, v in {**base, **config}.items()}}}}}


def _check(report, name: str) -> dict:
    (found,) = [c for c in report.checks if c["name"] == name]
    return found


def _evaluation(instance: dg.DagsterInstance, run_id: str, name: str):
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    (found,) = [r.event_log_entry.dagster_event.event_specific_data for r in records
                if r.event_log_entry.dagster_event.event_specific_data.check_name == name]
    return found


def test_drift_passes_unshifted_days_and_warns_on_shifted_brightness_and_class_mix(
        store, dagster_instance):
    def run(day: str, **config):
        report = run_pipeline(day, select=FRAMES_AND_LABELS, run_config=_synthetic(**config),
                              instance=dagster_instance)
        assert report.status == "SUCCESS", report.error
        return report

    first = run("2026-04-01")
    assert _check(first, "raw_frames_drift")["passed"]  # nothing to compare with yet
    run("2026-04-02")
    steady = run("2026-04-03")
    assert _check(steady, "raw_frames_drift")["passed"]
    assert _check(steady, "imported_annotations_drift")["passed"]
    evaluation = _evaluation(dagster_instance, steady.run_id, "raw_frames_drift")
    assert evaluation.metadata["columns_compared"].value == 5
    assert evaluation.metadata["reference_partitions"].value == ["2026-04-01|synthetic", "2026-04-02|synthetic"]

    dark = run("2026-04-04", brightness=[0.12, 0.16])
    drift = _check(dark, "raw_frames_drift")
    assert not drift["passed"] and drift["severity"] == "warn"
    assert dark.publish_status == "merged" and store.head("main") == dark.main_after
    evaluation = _evaluation(dagster_instance, dark.run_id, "raw_frames_drift")
    assert "brightness" in evaluation.description
    assert evaluation.metadata["psi_brightness"].value > 0.2
    evidence = json.loads(store.get_object(
        "main", f"validation/raw_frames/{folder('2026-04-04|synthetic')}/drift.json"))
    brightness = next(c for c in evidence["columns"] if c["column"] == "brightness")
    assert brightness["drifted"] and brightness["effect"] >= 0.4
    # Exposure is also a warn-level contract rule: reported with its number, still published.
    exposure = _check(dark, "raw_frames_contract_warnings")
    assert not exposure["passed"] and exposure["severity"] == "warn"
    failures = _evaluation(dagster_instance, dark.run_id,
                           "raw_frames_contract_warnings").metadata["failures"].value
    assert [f["name"] for f in failures] == ["exposure"]
    assert float(failures[0]["observed"]) < 30 and "brightness" in failures[0]["expected"]
    assert _check(dark, "imported_annotations_drift")["passed"]  # labels did not change

    mix = run("2026-04-05", class_weights={"car": 0.05, "pedestrian": 0.8, "cyclist": 0.1,
                                           "traffic_sign": 0.05})
    assert not _check(mix, "imported_annotations_drift")["passed"]
    assert mix.publish_status == "merged"
    evaluation = _evaluation(dagster_instance, mix.run_id, "imported_annotations_drift")
    assert evaluation.description.startswith("class_name:")
    # The materialization metadata the UI plots across partitions.
    mat = dagster_instance.get_latest_materialization_event(
        dg.AssetKey("imported_annotations")).asset_materialization
    assert mat.partition == "2026-04-05|synthetic"
    assert mat.metadata["quality_class_share_pedestrian"].value > 0.5
    frames_mat = dagster_instance.get_latest_materialization_event(
        dg.AssetKey("raw_frames")).asset_materialization
    assert 0 < frames_mat.metadata["quality_brightness_mean"].value < 255
    assert frames_mat.metadata["quality_laplacian_var_p50"].value > 0


def test_box_quarantine_rate_above_the_limit_blocks_and_names_the_boxes(store, dagster_instance,
                                                                        tmp_path):
    """4 of 12 boxes leave their image: 33% > the contract's 1%, so the day is not published."""
    drop = tmp_path / "drop"
    (drop / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(4):
        (drop / "images" / f"{i}.png").write_bytes(png(i))
        images.append({"id": i + 1, "file_name": f"images/{i}.png", "width": 96, "height": 80})
        for j in range(3):
            far = i == 0 or (i == 1 and j == 0)  # 4 boxes far outside their 96x80 image
            annotations.append({"id": 10 * i + j, "image_id": i + 1, "category_id": 1,
                                "bbox": [300, 300, 10, 10] if far else [5 + j, 5, 20, 20],
                                "area": 100, "iscrowd": 0})
    (drop / "annotations.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "car"}]}))
    main_before = store.head("main")
    report = run_pipeline("2026-04-10", select=FRAMES_AND_LABELS, instance=dagster_instance,
                          run_config={"resources": {"capture_source": {"config": {
                              "uri": str(drop), "format": "coco"}}}})
    assert report.status == "FAILURE" and report.publish_status == "not_published"
    assert not _check(report, "imported_annotations_contract")["passed"]
    assert _check(report, "raw_frames_contract")["passed"]
    assert store.head("main") == main_before
    evidence = json.loads(store.get_object(
        report.run_branch, f"validation/imported_annotations/{folder(report.partition)}/contract.json"))
    assert evidence["success"] is False
    (rate,) = [r for r in evidence["results"] if not r["passed"]]
    assert rate["name"] == "quarantine_rate" and rate["unexpected_count"] == 4
    assert "4 of 12 records quarantined" in rate["observed"]
    assert len(rate["records"]) == 4  # the rejected boxes, named with their reasons
    assert {r["reason"] for r in rate["records"]} == {"box_out_of_bounds"}
    assert all("annotations.json#" in r["source_uri"] for r in rate["records"])
    quarantine = store.get_object(
        report.run_branch, f"quarantine/imported_annotations/{folder(report.partition)}/_quarantine.parquet")
    assert quarantine  # the rejected boxes, with reasons, stay on the failed branch


def test_annotation_schema_change_blocks_downstream_and_names_the_change(store,
                                                                         dagster_instance):
    main_before = store.head("main")
    report = run_pipeline("2026-04-11", instance=dagster_instance,
                          job=dg.reconstructable(retyped_annotations_job),
                          run_config=_synthetic())
    assert report.status == "FAILURE"
    assert not _check(report, "imported_annotations_contract")["passed"]
    assert store.head("main") == main_before
    evidence = json.loads(store.get_object(
        report.run_branch, f"validation/imported_annotations/{folder(report.partition)}/contract.json"))
    (schema,) = [r for r in evidence["results"] if r["name"] == "schema"]
    assert not schema["passed"]
    assert ADDED_COLUMN in schema["observed"] and RETYPED_COLUMN in schema["observed"]
    # Blocking: the asset downstream of the failed check never ran.
    assert not list(store.list_objects(report.run_branch, "tables/downstream/"))
    run = dagster_instance.get_run_by_id(report.run_id)
    planned = dagster_instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    assert {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in planned} == {
        "raw_frames", "imported_annotations"}
    assert store.stat_object(report.run_branch,
                             table_key("imported_annotations", "2026-04-11|synthetic")) is not None
