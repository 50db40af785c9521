"""Blocking check on a training set: no leakage between splits, shards present as recorded."""

import dagster as dg

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import open_run_branch
from dataops_cv.defs.training_sets.assets import training_set
from dataops_cv.lib.core.partitions import key_of
from dataops_cv.lib.lakefs.layout import side_key, table_key
from dataops_cv.lib.lakefs.run_branch import RunBranch

TRAINING_SET_LEAKAGE_CHECK = "training_set_leakage"


def _root_of(run: RunBranch, partition: str) -> str | None:
    """The version folder the day's training set was written to (from its commit metadata)."""
    from dataops_cv.lib.training_sets.writer import parse_tag, trainset_root

    change = run.last_change(table_key("training_set", partition))
    parsed = parse_tag(change.metadata.get("trainset_tag", "")) if change else None
    return trainset_root(*parsed) if parsed else None


@dg.asset_check(
    asset=training_set,
    name=TRAINING_SET_LEAKAGE_CHECK,
    blocking=True,
    partitions_def=day_source_partitions,
    description="No leakage group and no near-duplicate pair (curation's pairs of each day, "
    "and a search of the curated features across days) straddles two splits; augmented "
    "samples are in train with their source; every sample id is unique and every shard the "
    "manifest names exists.",
)
def training_set_leakage(context: dg.AssetCheckExecutionContext,
                         lakefs: LakeFSResource) -> dg.AssetCheckResult:
    from dataops_cv.lib.curation.feature_cache import Features
    from dataops_cv.lib.training_sets.collect import window_pairs
    from dataops_cv.lib.training_sets.leakage import audit_training_set

    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs, training_set.key)
    rows = run.day_rows("training_set", partition)
    days = sorted({key_of(r["date"], r.get("source")) for r in rows if not r["augmented_from"]})
    features = Features.concat([Features.from_table(
        run.table(side_key("curated_samples", day, "_features.parquet"))) for day in days])

    def find_pairs(known: list[dict]) -> tuple[list[int], list[int]]:
        shas = [r["content_sha256"] for r in known]
        return window_pairs(run, days, shas, [key_of(r["date"], r.get("source")) for r in known],
                            [r["session_id"] for r in known], features.subset(shas))

    report = audit_training_set(rows, features, _root_of(run, partition), run.exists,
                                find_pairs)
    return dg.AssetCheckResult(
        passed=not report.problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(report.problems[:5]) if report.problems else
        f"{len(rows)} samples in {report.groups} groups; no group or near-duplicate pair "
        "crosses splits",
        metadata={"samples": len(rows), "groups": report.groups,
                  "straddling_groups": report.straddling_groups,
                  "straddling_near_duplicates": report.straddling_near_duplicates,
                  "missing_shards": report.missing_shards},
    )
