"""Blocking checks on acquisition outputs, read from the run's own branch."""


from pathlib import Path

import pyarrow.compute as pc

import dagster as dg
from dataops_cv.defs.acquisition.assets import raw_frames
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.validation.contracts import ContractError, Resolution, load_contract
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.core.tables import from_parquet_bytes

RAW_FRAMES_RESOLUTION_CHECK = "raw_frames_resolution"
CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts"


def _resolution_rule() -> Resolution:
    """The minimum frame size, from the raw_frames contract's resolution rule. Read when the
    definitions load, so a bad contract stops the code location with the file and key named."""
    contract = load_contract(CONTRACTS_DIR / "raw_frames.yaml")
    rules = [r for r in contract.rules if isinstance(r, Resolution)]
    if len(rules) != 1:
        raise ContractError(f"{contract.path}: expected exactly one resolution rule, "
                            f"found {len(rules)}")
    return rules[0]


RESOLUTION = _resolution_rule()
MIN_WIDTH = RESOLUTION.min_width
MIN_HEIGHT = RESOLUTION.min_height


@dg.asset_check(
    asset=raw_frames,
    name=RAW_FRAMES_RESOLUTION_CHECK,
    blocking=True,
    partitions_def=daily_partitions,
    description=f"Partition is non-empty and every frame is at least {MIN_WIDTH}x{MIN_HEIGHT}.",
)
def raw_frames_resolution(
    context: dg.AssetCheckExecutionContext, lakefs: LakeFSResource
) -> dg.AssetCheckResult:
    run = open_run_branch(context, lakefs, raw_frames.key)
    table = from_parquet_bytes(run.read(table_key("raw_frames", context.partition_key)))
    too_small = table.filter(
        pc.or_(pc.less(table["width"], MIN_WIDTH), pc.less(table["height"], MIN_HEIGHT))
    )
    passed = table.num_rows > 0 and too_small.num_rows == 0
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows": table.num_rows,
            "below_min_resolution": too_small.num_rows,
            "expected": f">= {MIN_WIDTH}x{MIN_HEIGHT}, at least 1 row",
            "failing_sample": dg.MetadataValue.json(too_small.slice(0, 5).select(
                ["sha256", "width", "height"]).to_pylist()),
        },
    )
