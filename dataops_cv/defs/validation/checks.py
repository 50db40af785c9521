"""Asset checks generated from the data contracts: for each contracted asset, one blocking check
(every error-severity expectation), one warning check (every warn-severity expectation) and, when
the contract has a ``drift`` section, a warning drift check against the partitions before it —
all evaluated on the run's own branch in one step. The full reports are committed on that branch
under validation/<asset>/date=<day>/{contract,drift}.json, so a failed run keeps its evidence.

The contracts are read when the definitions load (from ``DATAOPS_CV_CONTRACTS_DIR``, default the
repository's ``data_contracts/``): a broken contract stops the code location, naming the file and
key, instead of failing runs one by one."""

import json

import dagster as dg
import pandas as pd

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import open_run_branch
from dataops_cv.lib.core.partitions import day_of
from dataops_cv.lib.core.quarantine import Reason
from dataops_cv.lib.lakefs.layout import quarantine_key, table_key, validation_key
from dataops_cv.lib.lakefs.run_branch import RefView, RunBranch
from dataops_cv.lib.validation.contracts import Contract, ContractError, Relation, load_contracts
from dataops_cv.lib.validation.contracts.location import contracts_dir

# Assets are named by key: the validation stage depends on the others only through lakeFS.
CONTRACTED_ASSETS = ("raw_frames", "imported_annotations", "sensor_logs", "labeled_annotations",
                     "fused_samples", "augmented_samples", "curated_samples")
SAMPLE_FAILURES = 5


def contract_check_name(table: str) -> str:
    return f"{table}_contract"


def contract_warnings_check_name(table: str) -> str:
    return f"{table}_contract_warnings"


def drift_check_name(table: str) -> str:
    return f"{table}_drift"


def _frame(view: RefView, path: str, columns: list[str] | None = None) -> pd.DataFrame:
    table = view.table(path, columns)
    return pd.DataFrame() if table is None else table.to_pandas()


def _drift_outcome(run: RunBranch, contract: Contract, partition: str,
                   current: pd.DataFrame) -> tuple[bool, str, dict, bytes]:
    """Compare the partition with the contract's reference partitions as of the run's base;
    return (passed, description, metadata, report JSON)."""
    from dataops_cv.lib.validation.drift import compare

    spec = contract.drift
    assert spec is not None
    table = contract.table
    days = run.earlier_partitions(table, partition, spec.reference_partitions)
    cols = list(spec.columns)
    reference = pd.concat([_frame(run, table_key(table, d), cols) for d in days],
                          ignore_index=True) if days else pd.DataFrame(columns=cols)
    report = compare(contract, partition, current, reference, tuple(days))
    report_json = report.to_json()
    drifted = report.drifted
    compared = [c for c in report.columns if c.skipped is None]
    metadata: dict = {
        "reference_partitions": dg.MetadataValue.json(list(days)),
        "columns_compared": len(compared),
        "columns_drifted": len(drifted),
        "drift": dg.MetadataValue.json(json.loads(report_json)["columns"]),
        **{f"psi_{c.column}": float(c.psi) for c in compared if c.psi is not None},
    }
    if not days:
        description = "no earlier partition on main to compare with"
    elif drifted:
        description = "; ".join(f"{c.column}: {', '.join(c.reasons)}" for c in drifted)
    else:
        description = f"{len(compared)} columns stable against {len(days)} earlier partitions"
    return not drifted, description, metadata, report_json.encode()


def _quarantined(run: RunBranch, table: str, partition: str) -> list[dict]:
    # A box set aside only because its image was quarantined is counted against the image
    # (raw_frames' own rate), not again against the labels.
    return [r for r in run.rows(quarantine_key(table, partition))
            if r["reason"] != Reason.MISSING_IMAGE]


def _result_metadata(report, severity: str) -> dict:
    failed = report.failed(severity)
    return {
        "rows": report.rows,
        "evaluated": sum(1 for r in report.results if r.severity == severity),
        "failed": len(failed),
        "failures": dg.MetadataValue.json([
            {"name": r.name, "column": r.column, "expected": r.expected, "observed": r.observed,
             "unexpected_count": r.unexpected_count, "sample": r.sample[:SAMPLE_FAILURES],
             "records": r.records[:SAMPLE_FAILURES]}
            for r in failed[:20]
        ]),
        "contract": dg.MetadataValue.text(f"{report.table} ({report.contract_sha256[:12]})"),
    }


def _specs(table: str, contract: Contract, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(contract_check_name(table), asset=key, blocking=True,
                          partitions_def=day_source_partitions,
                          description=f"Every error-severity expectation of "
                          f"data_contracts/{table}.yaml (blocks publishing)."),
        dg.AssetCheckSpec(contract_warnings_check_name(table), asset=key, blocking=False,
                          partitions_def=day_source_partitions,
                          description=f"Every warn-severity expectation of "
                          f"data_contracts/{table}.yaml."),
    ]
    if contract.drift is not None:
        specs.append(dg.AssetCheckSpec(
            drift_check_name(table), asset=key, blocking=False, partitions_def=day_source_partitions,
            description=f"Distribution drift against the earlier partitions, by the thresholds "
            f"in data_contracts/{table}.yaml (warns)."))
    return specs


def build_contract_check(contract: Contract, asset_key: dg.AssetKey | None = None):
    """The contract check of the asset ``contract`` describes (``asset_key``, default the asset
    named like the contract's table): blocking, warning and (if configured) drift results."""
    table = contract.table
    key = asset_key or dg.AssetKey(table)
    related = sorted({r.table for r in contract.rules
                      if isinstance(r, Relation) and r.table != table})
    self_related = any(isinstance(r, Relation) and r.table == table and r.across_sources
                       for r in contract.rules)

    @dg.multi_asset_check(name=f"{table}_contract_checks", specs=_specs(table, contract, key))
    def _check(context: dg.AssetCheckExecutionContext, lakefs: LakeFSResource):
        from dataops_cv.lib.validation.contracts import validate  # GX import is slow

        partition = str(context.partition_key)
        run = open_run_branch(context, lakefs, key)
        df = _frame(run, table_key(table, partition))
        quarantined = _quarantined(run, table, partition)
        others = {}
        if self_related:
            day = day_of(partition)
            same_day = [p for p in run.window_partitions(table, partition, 1)
                        if p != partition and day_of(p) == day]
            others[table] = pd.concat([_frame(run, table_key(table, p)) for p in same_day]) \
                if same_day else df.iloc[0:0]
        report = validate(
            contract, df,
            related={**{name: _frame(run, table_key(name, partition)) for name in related},
                     **others},
            quarantined=len(quarantined),
            quarantine_sample=[{k: q[k] for k in ("source_uri", "reason", "detail")}
                               for q in quarantined[:SAMPLE_FAILURES]],
        )
        evidence = validation_key(table, partition, "contract")
        run.put(evidence, report.to_json().encode(), "application/json")
        drift = None
        if contract.drift is not None:
            drift = _drift_outcome(run, contract, partition, df)
            run.put(validation_key(table, partition, "drift"), drift[3], "application/json")
        commit = run.commit(f"validation {table} {partition}: "
                            f"{'passed' if report.success else 'FAILED'}",
                            {"validation": table})
        link = {"evidence": dg.MetadataValue.path(evidence),
                "lakefs_commit": dg.MetadataValue.text(commit.id)}
        yield dg.AssetCheckResult(
            asset_key=key, check_name=contract_check_name(table),
            passed=not report.failed("error"), severity=dg.AssetCheckSeverity.ERROR,
            metadata={**_result_metadata(report, "error"), **link})
        yield dg.AssetCheckResult(
            asset_key=key, check_name=contract_warnings_check_name(table),
            passed=not report.failed("warn"), severity=dg.AssetCheckSeverity.WARN,
            metadata={**_result_metadata(report, "warn"), **link})
        if drift is not None:
            passed, description, metadata, _ = drift
            yield dg.AssetCheckResult(
                asset_key=key, check_name=drift_check_name(table), passed=passed,
                severity=dg.AssetCheckSeverity.WARN, description=description,
                metadata={**metadata, "lakefs_commit": dg.MetadataValue.text(commit.id),
                          "evidence": dg.MetadataValue.path(
                              validation_key(table, partition, "drift"))})

    return _check


@dg.definitions
def contract_checks() -> dg.Definitions:
    """Every contracted asset's checks, from the contracts folder as it is when the code
    location loads.

    Raises:
        ContractError: a contract is malformed (naming file and key) or missing.
    """
    folder = contracts_dir()
    contracts = load_contracts(folder)
    missing = [t for t in CONTRACTED_ASSETS if t not in contracts]
    if missing:
        raise ContractError(str(folder), "", f"no contract for {', '.join(missing)} (expected "
                            f"{', '.join(f'{t}.yaml' for t in missing)})")
    return dg.Definitions(asset_checks=[build_contract_check(contracts[t])
                                        for t in CONTRACTED_ASSETS])
