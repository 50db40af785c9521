"""Blocking checks on acquisition outputs, read from the run's own branch."""

import dagster as dg
import pyarrow.compute as pc

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import open_run_branch
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.validation.contracts import ContractError, Resolution, load_contract
from dataops_cv.lib.validation.contracts.location import contracts_dir

RAW_FRAMES_RESOLUTION_CHECK = "raw_frames_resolution"


def resolution_rule(contract_path) -> Resolution:
    """The minimum frame size, from the raw_frames contract's one resolution rule.

    Raises:
        ContractError: the contract is malformed or has no single resolution rule.
    """
    contract = load_contract(contract_path)
    rules = [r for r in contract.rules if isinstance(r, Resolution)]
    if len(rules) != 1:
        raise ContractError(str(contract.path), "expectations",
                            f"expected exactly one resolution rule, found {len(rules)}")
    return rules[0]


def build_resolution_check(rule: Resolution) -> dg.AssetChecksDefinition:
    """The fast blocking check that every frame of the day is at least the rule's size."""
    min_width, min_height = rule.min_width, rule.min_height

    @dg.asset_check(
        asset="raw_frames",
        name=RAW_FRAMES_RESOLUTION_CHECK,
        blocking=True,
        partitions_def=day_source_partitions,
        description=f"Partition is non-empty and every frame is at least "
        f"{min_width}x{min_height}.",
    )
    def raw_frames_resolution(
        context: dg.AssetCheckExecutionContext, lakefs: LakeFSResource
    ) -> dg.AssetCheckResult:
        key = dg.AssetKey("raw_frames")
        run = open_run_branch(context, lakefs, key)
        table = run.table(table_key("raw_frames", str(context.partition_key)))
        if table is None:
            raise dg.Failure(f"raw_frames_resolution {context.partition_key}: no raw_frames "
                             f"table on {run.branch}")
        too_small = table.filter(pc.or_(pc.less(table["width"], min_width),
                                        pc.less(table["height"], min_height)))
        return dg.AssetCheckResult(
            passed=table.num_rows > 0 and too_small.num_rows == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": table.num_rows,
                "below_min_resolution": too_small.num_rows,
                "expected": f">= {min_width}x{min_height}, at least 1 row",
                "failing_sample": dg.MetadataValue.json(too_small.slice(0, 5).select(
                    ["sha256", "width", "height"]).to_pylist()),
            },
        )

    return raw_frames_resolution


@dg.definitions
def acquisition_checks() -> dg.Definitions:
    """The resolution check, with its minimum read from the contracts folder at load."""
    return dg.Definitions(asset_checks=[
        build_resolution_check(resolution_rule(contracts_dir() / "raw_frames.yaml"))])
