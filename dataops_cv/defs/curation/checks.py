"""Blocking checks on curation: every frame decided once, every exclusion with its reason, and
no day collapsed by one reason."""

import dagster as dg

from dataops_cv.defs.curation.assets import curated_samples
from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LakeFSResource
from dataops_cv.defs.run_branch import open_run_branch
from dataops_cv.lib.core.partitions import day_of
from dataops_cv.lib.curation.decisions import check_rows, sample_id, summary

CURATED_REASONS_CHECK = "curated_samples_reasons"
CURATED_COLLAPSE_CHECK = "curated_samples_not_collapsed"


@dg.asset_check(
    asset=curated_samples,
    name=CURATED_REASONS_CHECK,
    blocking=True,
    partitions_def=day_source_partitions,
    description="Every fused frame of the day has exactly one decision; every useless or "
    "harmful frame has a reason (and a useful one none); duplicates name the frame kept; the "
    "counts add up.",
)
def curated_samples_reasons(context: dg.AssetCheckExecutionContext,
                            lakefs: LakeFSResource) -> dg.AssetCheckResult:
    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs, curated_samples.key)
    rows = run.day_rows("curated_samples", partition)
    expected = [sample_id(partition, r["rel_path"])
                for r in run.day_rows("fused_samples", partition)]
    day = day_of(partition)
    elsewhere = {r["sample_id"] for p in run.window_partitions("curated_samples", partition, 1)
                 if p != partition and day_of(p) == day
                 for r in run.day_rows("curated_samples", p) if r["decision"] == "useful"}
    problems = check_rows(rows, expected, elsewhere)
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


@dg.asset_check(
    asset=curated_samples,
    name=CURATED_COLLAPSE_CHECK,
    blocking=True,
    partitions_def=day_source_partitions,
    description="No harmful reason excludes more than the contract's max_excluded_share of the "
    "day, and the day keeps a useful frame (error: a collapsed curation is not published); a "
    "useless reason doing so, or a day waiting for labels, is a warning.",
)
def curated_samples_not_collapsed(context: dg.AssetCheckExecutionContext,
                                  lakefs: LakeFSResource,
                                  contracts: ContractsResource) -> dg.AssetCheckResult:
    from dataops_cv.lib.curation.collapse import ERROR, judge_collapse

    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs, curated_samples.key)
    spec = contracts.contract("curated_samples").curation
    share = spec.max_excluded_share if spec is not None else 0.5
    found = judge_collapse(run.day_rows("curated_samples", partition), share)
    return dg.AssetCheckResult(
        passed=found.passed,
        severity=dg.AssetCheckSeverity.ERROR if found.severity in (None, ERROR)
        else dg.AssetCheckSeverity.WARN,
        description="; ".join(found.problems) if found.problems else
        f"{found.useful} of {found.frames} frames useful; no reason excludes more than "
        f"{share:.0%}",
        metadata={"frames": found.frames, "useful": found.useful,
                  "max_excluded_share": float(share),
                  "reasons": dg.MetadataValue.json(found.histogram)},
    )
