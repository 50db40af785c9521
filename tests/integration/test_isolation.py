"""Write-audit-publish end to end: real Dagster runs (multiprocess executor) on a real lakeFS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from dataops_cv.defs.tags import MAIN_COMMIT_TAG
from dataops_cv.lib.core.partitions import day_of, folder
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.lakefs.run_branch import RUN_BRANCH_PREFIX
from dataops_cv.runner import run_pipeline
from tests.integration.fault_job import WRITES_BEFORE_FAILURE, fault_job, unchecked_job

PARTITION = "2026-02-01|synthetic"  # capture day | source
REPORT_KEYS = {"run_id", "status", "partition", "run_branch", "main_before", "main_after",
               "counts", "checks"}


def _cli(*args: str, tmp_path: Path, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "DATAOPS_CV_HOME": str(tmp_path / "state")}
    cmd = [sys.executable, "-m", "dataops_cv.cli", *args]
    if kwargs.pop("background", False):
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _config(tmp_path: Path, **raw_frames) -> str:
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
    path.write_text(json.dumps({"resources": {"capture_source": {"config": {
        f"synthetic_{k}": v for k, v in raw_frames.items()}}}}))
    return str(path)


def _main_objects(store) -> dict[str, str]:
    return {o.path: o.checksum for o in store.list_objects("main")}


CONTRACTED = ("raw_frames", "imported_annotations", "sensor_logs", "labeled_annotations",
              "fused_samples", "augmented_samples")
# Contracted without a drift section, and the stage-specific blocking checks.
CONTRACTED_NO_DRIFT = ("curated_samples",)
OTHER_BLOCKING = (("curated_samples", "curated_samples_reasons"),
                  ("curated_samples", "curated_samples_not_collapsed"),
                  ("training_set", "training_set_leakage"),
                  ("training_set", "training_set_has_samples"))


def test_successful_run_publishes_one_merge_naming_the_run(store, dagster_instance):
    main_before = store.head("main")
    report = run_pipeline(PARTITION, instance=dagster_instance)
    assert report.status == "SUCCESS" and report.publish_status == "merged", report.error
    assert report.main_before == main_before != report.main_after == store.head("main")
    checks = {(c["asset"], c["name"]): (c["passed"], c["severity"]) for c in report.checks}
    assert checks == {
        ("raw_frames", "raw_frames_resolution"): (True, "error"),
        **{(t, f"{t}_contract"): (True, "error") for t in CONTRACTED},
        **{(t, f"{t}_{kind}"): (True, "warn")
           for t in CONTRACTED for kind in ("contract_warnings", "drift")},
        **{(t, f"{t}_contract"): (True, "error") for t in CONTRACTED_NO_DRIFT},
        **{(t, f"{t}_contract_warnings"): (True, "warn") for t in CONTRACTED_NO_DRIFT},
        **{key: (True, "error") for key in OTHER_BLOCKING},
    }
    evidence = json.loads(store.get_object(
        "main", f"validation/raw_frames/{folder(PARTITION)}/contract.json"))
    assert evidence["table"] == "raw_frames" and evidence["success"] is True
    assert report.counts["ingested"] == 24

    merge = store.get_commit(report.main_after)
    assert merge.parents[0] == main_before
    assert merge.metadata["dagster_run_id"] == report.run_id
    assert merge.metadata["dagster_partition_key"] == PARTITION
    assert merge.metadata["dagster_job"] == "dataops_job"
    run_commits = {c.metadata.get("dagster_asset_key"): c
                   for c in store.log(merge.parents[1], amount=40)
                   if c.metadata.get("dagster_run_id") == report.run_id}
    # labeled_annotations runs too: with no labels branch yet it commits an empty day table.
    assert run_commits.keys() == {*CONTRACTED, *CONTRACTED_NO_DRIFT, "training_set"}
    asset_commit = run_commits["raw_frames"]
    assert asset_commit.metadata["dagster_run_id"] == report.run_id
    assert asset_commit.metadata["code_version"]

    event = dagster_instance.get_latest_materialization_event(dg.AssetKey("raw_frames"))
    meta = event.asset_materialization.metadata
    assert meta["lakefs_commit"].value == asset_commit.id
    assert asset_commit.id in meta["lakefs_commit_url"].value
    run = dagster_instance.get_run_by_id(report.run_id)
    assert run.tags[MAIN_COMMIT_TAG] == report.main_after

    table = from_parquet_bytes(store.get_object("main", table_key("raw_frames", PARTITION)))
    assert table.num_rows == 24
    for key in table["object_key"].to_pylist():
        assert store.stat_object("main", key) is not None
    assert list(store.list_branches(prefix=RUN_BRANCH_PREFIX)) == []  # merged branch removed


def test_blocking_check_failure_keeps_main_and_the_failed_branch(store, dagster_instance,
                                                                  tmp_path):
    main_before = store.head("main")
    proc = _cli("run", "--partition", PARTITION, "--json",
                "--config", _config(tmp_path, width=16, height=16), tmp_path=tmp_path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert REPORT_KEYS <= report.keys()
    assert report["status"] == "FAILURE"
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert {"raw_frames_resolution", "raw_frames_contract"} <= failed
    assert all(c["severity"] == "error" for c in report["checks"]
               if c["name"] in ("raw_frames_resolution", "raw_frames_contract"))
    assert store.head("main") == main_before == report["main_after"]
    branch = report["run_branch"]
    table = from_parquet_bytes(store.get_object(branch, table_key("raw_frames", PARTITION)))
    assert set(table["width"].to_pylist()) == {16}  # the failed data, kept for inspection
    # Blocking: imported_annotations (downstream of raw_frames) never ran.
    assert store.stat_object(branch, table_key("imported_annotations", PARTITION)) is None
    assert store.get_commit(branch).metadata["dagster_run_status"] == "FAILURE"
    evidence = json.loads(store.get_object(branch, f"validation/raw_frames/{folder(PARTITION)}/"
                                                   "contract.json"))
    assert evidence["success"] is False  # the evidence stays on the failed branch
    (resolution, *_) = [r for r in evidence["results"] if r["name"] == "min_resolution"]
    assert resolution["records"] and all(r["width"] == 16 and r["rel_path"].endswith(".png")
                                         for r in resolution["records"])
    assert dagster_instance.get_run_by_id(report["run_id"]).status == dg.DagsterRunStatus.FAILURE


def test_run_that_raises_mid_asset_leaves_main_untouched(store, dagster_instance):
    main_before = store.head("main")
    report = run_pipeline(PARTITION, instance=dagster_instance,
                          job=dg.reconstructable(fault_job))
    assert report.status == "FAILURE" and "simulated crash" in report.error
    assert store.head("main") == main_before
    head = store.get_commit(report.run_branch)
    assert head.metadata["dagster_run_status"] == "FAILURE"
    assert "simulated crash" in head.metadata["dagster_failure"]
    kept = [o.path for o in store.list_objects(report.run_branch, prefix="tables/half_written/")]
    assert len(kept) == WRITES_BEFORE_FAILURE
    assert dagster_instance.get_run_by_id(report.run_id).status == dg.DagsterRunStatus.FAILURE


def test_run_without_its_blocking_checks_is_not_published(store, dagster_instance):
    main_before = store.head("main")
    report = run_pipeline(PARTITION, instance=dagster_instance,
                          job=dg.reconstructable(unchecked_job))
    assert report.checks == []  # the run itself succeeded: no check was in it
    assert report.status == "FAILURE" and report.publish_status == "unaudited"
    assert "raw_frames:raw_frames_resolution" in report.error
    assert store.head("main") == main_before
    assert store.get_commit(report.run_branch).metadata["dagster_run_status"] == "UNAUDITED"


def test_kill_9_mid_write_then_rerun_publishes(store, dagster_instance, tmp_path, monkeypatch):
    main_before = store.head("main")
    proc = _cli("run", "--partition", PARTITION, "--json",
                "--config", _config(tmp_path, frames=1500), tmp_path=tmp_path, background=True)
    try:
        deadline = time.monotonic() + 180
        staged = 0
        while time.monotonic() < deadline and proc.poll() is None:
            branches = [b for b, _ in store.list_branches(prefix=RUN_BRANCH_PREFIX)]
            if branches:
                staged = sum(1 for _ in store.uncommitted(branches[0]))
                if staged >= 20:
                    break
            time.sleep(0.2)
        assert proc.poll() is None and staged >= 20, "run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert store.head("main") == main_before

    monkeypatch.setenv("DATAOPS_CV_EXECUTOR", "in_process")  # the kill was the multiprocess part
    report = run_pipeline(PARTITION, instance=dagster_instance)
    assert report.status == "SUCCESS" and report.publish_status == "merged", report.error
    table = from_parquet_bytes(store.get_object("main", table_key("raw_frames", PARTITION)))
    assert table.num_rows == 24


def test_rerun_with_same_inputs_changes_nothing_on_main(store, dagster_instance,
                                                       in_process_runs):
    first = run_pipeline(PARTITION, instance=dagster_instance)
    assert first.status == "SUCCESS"
    objects = _main_objects(store)
    second = run_pipeline(PARTITION, instance=dagster_instance)
    assert second.status == "SUCCESS" and second.publish_status == "nothing_to_publish"
    assert second.main_after == first.main_after == store.head("main")
    assert _main_objects(store) == objects
    assert list(store.diff(first.main_after, "main")) == []
    assert second.counts["read"] == 0 and second.counts["unchanged"] == 24  # nothing re-read
    assert second.counts["uploaded"] == 0


def test_conflicting_publish_fails_loudly_and_main_keeps_the_first(store, dagster_instance,
                                                                    tmp_path, in_process_runs):
    base = store.head("main")
    first = run_pipeline(PARTITION, instance=dagster_instance)
    other = {"resources": {"capture_source": {"config": {"synthetic_seed": 7}}}}
    second = run_pipeline(PARTITION, instance=dagster_instance, run_config=other,
                          extra_tags={"dataops-cv/base-commit": base})
    assert second.status == "FAILURE" and second.publish_status == "conflict"
    assert table_key("raw_frames", PARTITION) in second.error
    assert store.head("main") == first.main_after
    assert store.branch_exists(second.run_branch)


def test_three_days_of_two_sources_backfill_as_six_isolated_merges(store, tmp_path,
                                                                   in_process_runs):
    """A backfill over both partition dimensions: 3 days x 2 registered sources, runs at once,
    each in its own process (steps in-process: the property here is isolation between
    concurrent runs, and 6 x 13 step processes would crowd 2 cores)."""
    main_before = store.head("main")
    for name, uri in (("synthetic", "synthetic://"), ("rig-b", "synthetic://?seed=7")):
        added = _cli("sources", "add", name, uri, tmp_path=tmp_path)
        assert added.returncode == 0, added.stderr[-2000:]
    listed = _cli("sources", "list", "--json", tmp_path=tmp_path)
    assert [e["name"] for e in json.loads(listed.stdout)] == ["rig-b", "synthetic"]
    proc = _cli("backfill", "--start", "2026-02-10", "--end", "2026-02-12", "--parallel", "3",
                "--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = json.loads(proc.stdout)
    partitions = [f"{d}|{s}" for d in ("2026-02-10", "2026-02-11", "2026-02-12")
                  for s in ("rig-b", "synthetic")]
    assert sorted(r["partition"] for r in reports) == partitions
    assert all(REPORT_KEYS <= r.keys() for r in reports)
    assert {r["publish_status"] for r in reports} == {"merged"}
    assert len({r["run_id"] for r in reports}) == 6

    merges = [c for c in store.log("main", amount=300) if len(c.parents) == 2
              and "dagster_run_id" in c.metadata]
    assert len(merges) == 6
    assert {m.metadata["dagster_run_id"] for m in merges} == {r["run_id"] for r in reports}
    for merge in merges:
        partition = merge.metadata["dagster_partition_key"]
        brought = {d.path for d in store.diff(merge.parents[0], merge.id)}
        table_path = table_key("raw_frames", partition)
        own_frames = set(from_parquet_bytes(store.get_object(merge.id, table_path))
                         ["object_key"].to_pylist())
        sensors = from_parquet_bytes(store.get_object(merge.id, table_key("sensor_logs",
                                                                          partition)))
        own_blobs = {k for k in sensors["object_key"].to_pylist() if k}
        own_variants = set(from_parquet_bytes(store.get_object(
            merge.id, table_key("augmented_samples", partition)))["object_key"].to_pylist())
        own_tables = {p for p in brought if f"/{folder(partition)}/" in p}
        # The partition's training set lives in its own version folder, named after the day.
        own_trainset = {p for p in brought if p.startswith(
            f"trainsets/default/v{day_of(partition).replace('-', '')}-")}
        assert own_frames and own_blobs and own_variants and table_path in own_tables
        assert own_trainset
        assert brought <= own_frames | own_blobs | own_variants | own_tables | own_trainset, \
            f"{partition} wrote outside it"
        assert store.head(f"trainset-default-{own_trainset.pop().split('/')[2]}") == merge.id
    for partition in partitions:
        assert store.stat_object("main", table_key("raw_frames", partition)) is not None
    assert store.head("main") != main_before
