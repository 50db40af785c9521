"""Fusion and augmentation inside real pipeline runs (real lakeFS, real Dagster): what lands on
main, what a re-run recomputes, and that a variant outside the policy's contract never lands."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from dataops_cv.lib.augmentation.geometry import transform_boxes
from dataops_cv.lib.augmentation.params import AugParams
from dataops_cv.lib.core.partitions import folder
from dataops_cv.lib.core.previews import PREVIEW_FRAMES
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.runner import run_pipeline

pytestmark = pytest.mark.usefixtures("in_process_runs")

DAY = "2026-03-02"
PARTITION = f"{DAY}|synthetic"  # capture day | source
POLICY = Path(__file__).resolve().parents[2] / "data_contracts" / "augmentation_policy.yaml"
# The pipeline without labeled_annotations (no labels branch here): fewer steps per run.
PIPELINE = ["raw_frames", "imported_annotations", "sensor_logs", "fused_samples",
            "augmented_samples"]


def _table(store, ref: str, path: str) -> list[dict]:
    return from_parquet_bytes(store.get_object(ref, path)).to_pylist()


def _policy(tmp_path: Path, **changes) -> str:
    doc = yaml.safe_load(POLICY.read_text())
    for key, value in changes.items():
        if key == "rotate":
            doc["transforms"]["rotate"] = value
        else:
            doc[key] = value
    path = tmp_path / f"policy-{len(list(tmp_path.glob('policy-*')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _aug_config(policy_path: str) -> dict:
    return {"ops": {"augmented_samples": {"config": {"policy_path": policy_path}}}}


def test_fused_and_augmented_samples_land_on_main_and_rerun_only_what_changed(
        store, dagster_instance, tmp_path):
    report = run_pipeline(PARTITION, instance=dagster_instance)
    assert report.status == "SUCCESS" and report.publish_status == "merged", report.error
    checks = {c["name"]: c["passed"] for c in report.checks}
    assert checks["fused_samples_contract"] and checks["augmented_samples_contract"]

    frames = _table(store, "main", table_key("raw_frames", PARTITION))
    fused = _table(store, "main", table_key("fused_samples", PARTITION))
    assert sorted(r["rel_path"] for r in fused) == sorted(r["rel_path"] for r in frames)
    for r in fused:
        assert r["session_id"] and r["camera"] in ("cam_front", "cam_left")
        if r["gps_device"] is not None:
            assert abs(r["gps_dt_us"]) <= 60_000 and r["geo_cell"]
        if r["imu_device"] is not None:
            assert abs(r["imu_dt_us"]) <= 10_000
        if r["lidar_device"] is not None:
            assert abs(r["lidar_dt_us"]) <= 30_000 and r["lidar_object_key"].startswith("sensors/")
    assert sum(r["imu_device"] is not None for r in fused) >= len(fused) - 2
    unmatched = _table(store, "main", f"tables/fused_samples/{folder(PARTITION)}/_unmatched.parquet")
    missing = {r["sha256"] for r in fused if r["unmatched"]}
    assert missing <= {u["id"] for u in unmatched if u["kind"] == "frame"}
    clocks = _table(store, "main", f"tables/fused_samples/{folder(PARTITION)}/_clocks.parquet")
    assert {c["device_id"] for c in clocks} >= {"cam_front", "cam_left", "imu0", "gps0",
                                                "lidar_top"}

    variants = _table(store, "main", table_key("augmented_samples", PARTITION))
    boxes = _table(store, "main", f"tables/augmented_samples/{folder(PARTITION)}/_annotations.parquet")
    distinct = {r["sha256"] for r in frames}
    assert len(variants) == 2 * len(distinct)
    assert {(v["source_sha256"], v["variant"]) for v in variants} == \
        {(s, k) for s in distinct for k in (0, 1)}
    # render: preview (the default) stores the previewed variants; the rest are recipes.
    assert all(v["rendered"] for v in variants[:6])
    assert not any(v["rendered"] for v in variants[PREVIEW_FRAMES:])
    for v in variants[:6]:
        data = store.get_object("main", v["object_key"])
        assert hashlib.sha256(data).hexdigest() == v["sha256"]
    # Boxes moved with the pixels: recompute one flipped variant's boxes from its source's.
    imported = _table(store, "main", table_key("imported_annotations", PARTITION))
    flipped = next(v for v in variants if v["hflip"] and v["boxes"] and v["boxes_dropped"] == 0
                   and v["label_source"] == "imported")
    params = AugParams.from_json(flipped["params"])
    src = np.array([[b["x_min"], b["y_min"], b["x_max"], b["y_max"]] for b in imported
                    if b["image_sha256"] == flipped["source_sha256"]])
    expected = transform_boxes(src, params, 0.35, 2.0).boxes
    got = np.array([[b["x_min"], b["y_min"], b["x_max"], b["y_max"]] for b in boxes
                    if b["input_key"] == flipped["input_key"]])
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))
    meta = dagster_instance.get_latest_materialization_event(
        __import__("dagster").AssetKey("augmented_samples")).asset_materialization.metadata
    assert meta["preview"].value.startswith("![")

    # Same inputs, same policy: nothing is recomputed, main's tables keep their bytes.
    before = {p: store.stat_object("main", p).checksum for p in (
        table_key("fused_samples", PARTITION), table_key("augmented_samples", PARTITION))}
    again = run_pipeline(PARTITION, instance=dagster_instance, select=PIPELINE)
    assert again.status == "SUCCESS", again.error
    assert again.counts["augment_computed"] == 0
    assert again.counts["augment_reused"] == len(variants)
    assert {p: store.stat_object("main", p).checksum for p in before} == before

    # Another seed: every variant recomputed, different bytes.
    reseeded = run_pipeline(PARTITION, instance=dagster_instance, select=PIPELINE,
                            run_config=_aug_config(_policy(tmp_path, seed=7)))
    assert reseeded.status == "SUCCESS", reseeded.error
    assert reseeded.counts["augment_computed"] == len(variants)
    new = _table(store, "main", table_key("augmented_samples", PARTITION))
    old_params = {v["params"] for v in variants}
    assert sum(v["params"] not in old_params for v in new) >= len(new) * 0.8

    # Back to the first policy: computed again from scratch, in another run and other step
    # processes, and byte for byte the first run's variants.
    restored = run_pipeline(PARTITION, instance=dagster_instance, select=PIPELINE)
    assert restored.status == "SUCCESS", restored.error
    assert restored.counts["augment_computed"] == len(variants)
    assert _table(store, "main", table_key("augmented_samples", PARTITION)) == variants


def test_variants_outside_the_policy_contract_never_reach_main(store, dagster_instance,
                                                                tmp_path):
    main_before = store.head("main")
    wild = _policy(tmp_path, rotate={"p": 1.0, "degrees": [20.0, 30.0]})
    report = run_pipeline(PARTITION, instance=dagster_instance, run_config=_aug_config(wild),
                          select=PIPELINE)
    assert report.status == "FAILURE"
    failed = {c["name"] for c in report.checks if not c["passed"]}
    assert "augmented_samples_contract" in failed
    assert store.head("main") == main_before
    branch_rows = _table(store, report.run_branch, table_key("augmented_samples", PARTITION))
    assert branch_rows and all(20.0 <= r["rotate_deg"] <= 30.0 for r in branch_rows)
    assert store.stat_object("main", branch_rows[0]["object_key"]) is None


def test_a_rig_drop_in_the_generic_format_is_fused_by_its_camera_log(store, dagster_instance,
                                                                     tmp_path):
    """A rig that names frames its own way and logs each exposure (µs, with firmware and
    calibration) in a CSV camera log: fusion takes times, sessions and calibration from the log."""
    import csv

    from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
    from dataops_cv.lib.synthetic.drops import write_drop
    from dataops_cv.lib.synthetic.timeline import session_id

    day = "2026-03-05"
    drop = tmp_path / "rig" / day
    config = SceneConfig(sessions_per_day=1, frames_per_session=12, cameras=("cam_a", "cam_b"),
                         defects=DefectConfig.none())
    manifest = write_drop(config, day, drop)
    (drop / "annotations.json").unlink()  # an unlabeled capture
    rows = []
    for i, image in enumerate(sorted(manifest.images, key=lambda f: f.path)):
        renamed = f"frames/{image.device_id}_{i:04d}.png"  # no session, no time in the name
        (drop / renamed).parent.mkdir(exist_ok=True)
        (drop / image.path).rename(drop / renamed)
        rows.append({"timestamp": image.timestamp_us, "timestamp_unit": "us", "sensor": "camera",
                     "device_id": image.device_id, "session_id": image.session_id,
                     "firmware": "imx490-1.2", "file": renamed, "exposure_ms": 8.0,
                     "calib_x": 1.5, "calib_y": 0.0, "calib_z": 1.6, "calib_qw": 1.0,
                     "calib_qx": 0.0, "calib_qy": 0.0, "calib_qz": 0.0})
    with (drop / "camera_log.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    report = run_pipeline(day, instance=dagster_instance, select=PIPELINE, run_config={
        "resources": {"capture_source": {"config": {"uri": str(tmp_path / "rig")}}}})
    assert report.status == "SUCCESS", report.error
    assert report.partition == f"{day}|rig"  # the source is named after its folder
    fused = _table(store, "main", table_key("fused_samples", report.partition))
    assert len(fused) == len(rows) == 24
    sid = session_id(day, 0)
    for r in fused:
        assert r["time_source"] == "sensor_log" and r["session_id"] == sid
        assert r["camera_firmware"] == "imx490-1.2" and r["calib_x"] == 1.5
        assert r["camera"] == r["rel_path"].split("/")[1].rsplit("_", 1)[0]
    assert sum(not r["unmatched"] for r in fused) >= 20  # edges of a 1 s session may miss GPS
    clocks = _table(store, "main",
                    f"tables/fused_samples/{folder(report.partition)}/_clocks.parquet")
    rates = {c["device_id"]: c["rate_hz"] for c in clocks}
    assert abs(rates["cam_a"] - 12.0) < 1.0 and abs(rates["imu0"] - 100.0) < 5.0
