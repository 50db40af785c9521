"""The code location loads and declares everything the pipeline promises."""

import dagster as dg

from dataops_cv.definitions import defs
from dataops_cv.defs.acquisition.checks import RAW_FRAMES_RESOLUTION_CHECK
from dataops_cv.defs.jobs import DATAOPS_JOB, LABEL_PULL_JOB
from dataops_cv.defs.tags import LABELS_TARGET, PUBLISHES_TO_TAG


def test_definitions_load_and_validate():
    d = defs()
    dg.Definitions.validate_loadable(d)
    repo = d.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} >= {
        "raw_frames", "imported_annotations", "sensor_logs", "labelstudio_tasks",
        "label_snapshot", "labeled_annotations", "fused_samples", "augmented_samples",
        "curated_samples", "training_set"}
    assert {s.name for s in repo.schedule_defs} == {"nightly_schedule"}
    assert {s.name for s in repo.sensor_defs} >= {
        "publish_run_sensor", "failed_run_sensor", "canceled_run_sensor", "new_drop_sensor",
        "labeled_commit_sensor"}
    assert d.resolve_job_def(DATAOPS_JOB).partitions_def is not None
    assert {"lakefs", "capture_source", "s3", "label_studio"} <= \
        repo.get_top_level_resources().keys()


def test_labeling_pulls_publish_to_the_labels_branch_and_the_pipeline_does_not_include_them():
    d = defs()
    pipeline = {k.to_user_string() for k in d.resolve_job_def(DATAOPS_JOB).asset_layer
                .executable_asset_keys}
    assert {"labeled_annotations", "curated_samples", "training_set"} <= pipeline
    assert not pipeline & {"labelstudio_tasks", "label_snapshot"}
    assert d.resolve_job_def(LABEL_PULL_JOB).tags[PUBLISHES_TO_TAG] == LABELS_TARGET


def test_resolution_check_is_blocking():
    repo = defs().get_repository_def()
    key = dg.AssetCheckKey(dg.AssetKey("raw_frames"), RAW_FRAMES_RESOLUTION_CHECK)
    spec = repo.asset_graph.get_check_spec(key)
    assert spec.blocking


def test_workspace_yaml_loads_the_location():
    """What `dagster dev` loads: the location named in workspace.yaml validates."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
         "-w", str(root / "workspace.yaml")],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_contract_has_a_blocking_and_a_warning_check():
    graph = defs().resolve_asset_graph()
    for table in ("raw_frames", "imported_annotations", "sensor_logs", "labeled_annotations",
                  "fused_samples", "augmented_samples"):
        key = dg.AssetKey(table)
        blocking = graph.get_check_spec(dg.AssetCheckKey(key, f"{table}_contract"))
        warning = graph.get_check_spec(dg.AssetCheckKey(key, f"{table}_contract_warnings"))
        drift = graph.get_check_spec(dg.AssetCheckKey(key, f"{table}_drift"))
        assert blocking.blocking and not warning.blocking and not drift.blocking
    for asset, check in (("curated_samples", "curated_samples_contract"),
                         ("curated_samples", "curated_samples_reasons"),
                         ("curated_samples", "curated_samples_not_collapsed"),
                         ("training_set", "training_set_leakage"),
                         ("training_set", "training_set_has_samples")):
        assert graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(asset), check)).blocking
