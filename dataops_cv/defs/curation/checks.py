"""Blocking check on curation: every frame decided once, every exclusion with its reason."""

import dagster as dg

from dataops_cv.defs.curation.assets import curated_samples
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import open_run_branch
from dataops_cv.lib.curation.decisions import check_rows, sample_id, summary

CURATED_REASONS_CHECK = "curated_samples_reasons"


@dg.asset_check(
    asset=curated_samples,
    name=CURATED_REASONS_CHECK,
    blocking=True,
    partitions_def=daily_partitions,
    description="Every fused frame of the day has exactly one decision; every useless or "
    "harmful frame has a reason (and a useful one none); duplicates name the frame kept; the "
    "counts add up.",
)
def curated_samples_reasons(context: dg.AssetCheckExecutionContext,
                            lakefs: LakeFSResource) -> dg.AssetCheckResult:
    partition = context.partition_key
    run = open_run_branch(context, lakefs, curated_samples.key)
    rows = run.day_rows("curated_samples", partition)
    expected = [sample_id(partition, r["rel_path"])
                for r in run.day_rows("fused_samples", partition)]
    problems = check_rows(rows, expected)
    counts = summary(rows)
    adds_up = counts["useful"] + counts["useless"] + counts["harmful"] == len(expected)
    if not adds_up and not problems:
        problems.append(f"decisions {counts['useful']} + {counts['useless']} + "
                        f"{counts['harmful']} != {len(expected)} frames")
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) if problems else
        f"{len(rows)} frames: {counts['useful']} useful, {counts['useless']} useless, "
        f"{counts['harmful']} harmful",
        metadata={"frames": len(expected), "problems": len(problems),
                  **{f"{k}": int(v) for k, v in counts.items() if v}},
    )
