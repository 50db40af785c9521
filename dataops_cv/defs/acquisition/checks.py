"""Blocking checks on acquisition outputs, read from the run's own branch."""


import pyarrow.compute as pc

import dagster as dg
from dataops_cv.defs.acquisition.assets import raw_frames
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.layout import table_key
from dataops_cv.lib.tables import from_parquet_bytes

RAW_FRAMES_RESOLUTION_CHECK = "raw_frames_resolution"
# Until data contracts land (data_contracts/*.yaml), the minimum usable frame size lives here.
MIN_WIDTH = 64
MIN_HEIGHT = 64


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
