"""The contract checks against the published day: blocking, warning and drift results with
their evidence committed on the run branch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import yaml

from dataops_cv.defs.validation.checks import build_contract_check
from dataops_cv.lib.lakefs.layout import validation_key
from dataops_cv.lib.lakefs.run_branch import RunBranch, run_branch_name
from dataops_cv.lib.validation.contracts import load_contract
from dataops_cv.lib.validation.contracts.location import contracts_dir
from tests.defs.conftest import (
    DAY,
    location_assets,
    materialize,
    partition_key,
    source_instance,
)


def test_the_checks_evaluate_the_table_and_commit_their_evidence(published_day):
    done = materialize(published_day.resources, "fused_samples")
    assert done.metadata("fused_samples")["unchanged"] is True  # checked as published
    assert done.check("fused_samples_contract").passed
    assert done.check("fused_samples_contract_warnings").passed
    drift = done.check("fused_samples_drift")
    assert drift.passed and drift.description == "no earlier partition on main to compare with"
    report = json.loads(done.run.read(validation_key("fused_samples", DAY, "contract")))
    assert report["success"] is True and report["rows"] == 12
    assert done.run.exists(validation_key("fused_samples", DAY, "drift"))


def test_a_stricter_contract_blocks_and_names_what_failed(published_day, tmp_path: Path):
    folder = tmp_path / "contracts"
    shutil.copytree(contracts_dir(), folder)
    path = folder / "raw_frames.yaml"
    doc = yaml.safe_load(path.read_text())
    rule = next(r for r in doc["expectations"] if r["rule"] == "row_count")
    rule["min"] = 1000
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    check = build_contract_check(load_contract(path))
    assets = [a for a in location_assets() if not isinstance(a, dg.AssetChecksDefinition)]
    with source_instance() as instance:
        result = dg.materialize(
            [*assets, check], selection=dg.AssetSelection.assets("raw_frames"),
            raise_on_error=False,
            partition_key=partition_key(DAY), resources=published_day.resources, instance=instance)
    (blocking,) = [e for e in result.get_asset_check_evaluations()
                   if e.check_name == "raw_frames_contract"]
    assert not blocking.passed and blocking.severity == dg.AssetCheckSeverity.ERROR
    failures = blocking.metadata["failures"].value
    assert any(f["name"] == rule["name"] for f in failures)
    run = RunBranch(published_day.store, run_branch_name(result.run_id))
    report = json.loads(run.read(validation_key("raw_frames", DAY, "contract")))
    assert report["success"] is False
