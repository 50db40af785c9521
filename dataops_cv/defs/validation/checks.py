"""Asset checks generated from data_contracts/*.yaml: for each contracted asset, one blocking check
(every error-severity expectation) and one warning check (every warn-severity expectation),
evaluated on the run's own branch. The full validation report is committed on that branch under
validation/<asset>/date=<day>/contract.json, so a failed run keeps its evidence."""

import pandas as pd

import dagster as dg
from dataops_cv.defs.acquisition.assets import (
    imported_annotations,
    quarantine_table_key,
    raw_frames,
    read_table_rows,
    sensor_logs,
)
from dataops_cv.defs.acquisition.checks import CONTRACTS_DIR
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.contracts import Contract, Relation, load_contracts
from dataops_cv.lib.layout import table_key, validation_key
from dataops_cv.lib.quarantine import Reason
from dataops_cv.lib.run_isolation import RunBranch
from dataops_cv.lib.tables import from_parquet_bytes

# Loaded when the definitions load: a broken contract stops the code location, naming the file
# and key, instead of failing runs one by one.
CONTRACTS = load_contracts(CONTRACTS_DIR)
CONTRACTED_ASSETS = {"raw_frames": raw_frames, "imported_annotations": imported_annotations,
                     "sensor_logs": sensor_logs}
SAMPLE_FAILURES = 5


def contract_check_name(table: str) -> str:
    return f"{table}_contract"


def contract_warnings_check_name(table: str) -> str:
    return f"{table}_contract_warnings"


def _frame(run: RunBranch, path: str) -> pd.DataFrame:
    return from_parquet_bytes(run.read(path)).to_pandas() if run.exists(path) else pd.DataFrame()


def _quarantined(run: RunBranch, table: str, partition: str) -> int:
    rows = read_table_rows(run, quarantine_table_key(table, partition))
    # A box set aside only because its image was quarantined is counted against the image
    # (raw_frames' own rate), not again against the labels.
    return sum(1 for r in rows if r["reason"] != Reason.MISSING_IMAGE)


def _result_metadata(report, severity: str) -> dict:
    failed = report.failed(severity)
    return {
        "rows": report.rows,
        "evaluated": sum(1 for r in report.results if r.severity == severity),
        "failed": len(failed),
        "failures": dg.MetadataValue.json([
            {"name": r.name, "column": r.column, "expected": r.expected, "observed": r.observed,
             "unexpected_count": r.unexpected_count, "sample": r.sample[:SAMPLE_FAILURES]}
            for r in failed[:20]
        ]),
        "contract": dg.MetadataValue.text(f"{report.table} ({report.contract_sha256[:12]})"),
    }


def _build_check(table: str, contract: Contract, asset: dg.AssetsDefinition):
    errors = contract_check_name(table)
    warnings = contract_warnings_check_name(table)
    related = sorted({r.table for r in contract.rules
                      if isinstance(r, Relation) and r.table != table})

    @dg.multi_asset_check(
        name=f"{table}_contract_checks",
        specs=[
            dg.AssetCheckSpec(errors, asset=asset.key, blocking=True,
                              partitions_def=daily_partitions,
                              description=f"Every error-severity expectation of "
                              f"data_contracts/{table}.yaml (blocks publishing)."),
            dg.AssetCheckSpec(warnings, asset=asset.key, blocking=False,
                              partitions_def=daily_partitions,
                              description=f"Every warn-severity expectation of "
                              f"data_contracts/{table}.yaml."),
        ],
    )
    def _check(context: dg.AssetCheckExecutionContext, lakefs: LakeFSResource):
        from dataops_cv.lib.contracts import validate  # GX import is slow: only where it runs

        partition = context.partition_key
        run = open_run_branch(context, lakefs, asset.key)
        df = _frame(run, table_key(table, partition))
        report = validate(
            contract, df,
            related={name: _frame(run, table_key(name, partition)) for name in related},
            quarantined=_quarantined(run, table, partition),
        )
        evidence = validation_key(table, partition, "contract")
        run.put(evidence, report.to_json().encode(), "application/json")
        commit = run.commit(f"validation {table} {partition}: "
                            f"{'passed' if report.success else 'FAILED'}",
                            {"validation": table})
        link = {"evidence": dg.MetadataValue.path(evidence),
                "lakefs_commit": dg.MetadataValue.text(commit.id)}
        yield dg.AssetCheckResult(
            asset_key=asset.key, check_name=errors, passed=not report.failed("error"),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**_result_metadata(report, "error"), **link})
        yield dg.AssetCheckResult(
            asset_key=asset.key, check_name=warnings, passed=not report.failed("warn"),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**_result_metadata(report, "warn"), **link})

    return _check


contract_checks = [
    _build_check(table, CONTRACTS[table], asset) for table, asset in CONTRACTED_ASSETS.items()
]
