"""Blocking check on a training set: no leakage between splits, shards present as recorded."""

import dagster as dg
import numpy as np

from dataops_cv.defs.acquisition.assets import read_table_rows
from dataops_cv.defs.curation.assets import curation_side_key
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.training_sets.assets import training_set
from dataops_cv.lib.lakefs.layout import table_key

TRAINING_SET_LEAKAGE_CHECK = "training_set_leakage"


@dg.asset_check(
    asset=training_set,
    name=TRAINING_SET_LEAKAGE_CHECK,
    blocking=True,
    partitions_def=daily_partitions,
    description="No leakage group and no near-duplicate pair (recomputed from the curated "
    "features) straddles two splits; augmented samples are in train with their source; every "
    "sample id is unique and every shard the manifest names exists.",
)
def training_set_leakage(context: dg.AssetCheckExecutionContext,
                         lakefs: LakeFSResource) -> dg.AssetCheckResult:
    from dataops_cv.lib.curation import similarity as curation

    partition = context.partition_key
    run = open_run_branch(context, lakefs, training_set.key)
    rows = read_table_rows(run, table_key("training_set", partition))
    problems: list[str] = []
    if not rows:
        problems.append(f"no manifest for {partition}")
    split_of = {r["sample_id"]: r["split"] for r in rows}
    if len(split_of) != len(rows):
        problems.append(f"{len(rows) - len(split_of)} repeated sample ids")
    groups: dict[str, set[str]] = {}
    for r in rows:
        groups.setdefault(r["group_key"], set()).add(r["split"])
    straddling = sorted(g for g, s in groups.items() if len(s) > 1)
    if straddling:
        problems.append(f"{len(straddling)} group(s) in several splits, e.g. {straddling[:3]}")
    for r in rows:
        if r["augmented_from"]:
            if r["split"] != "train" or split_of.get(r["augmented_from"]) != "train":
                problems.append(f"augmented {r['sample_id']} is in {r['split']}, its source "
                                f"{r['augmented_from']} in {split_of.get(r['augmented_from'])}")
                break

    originals = [r for r in rows if not r["augmented_from"]]
    features: dict[str, dict] = {}
    for day in sorted({r["date"] for r in originals}):
        for f in read_table_rows(run, curation_side_key(day, "_features.parquet")):
            features.setdefault(f["sha256"], f)
    known = [r for r in originals if r["content_sha256"] in features]
    if len(known) != len(originals):
        problems.append(f"{len(originals) - len(known)} samples have no curated features")
    cross = 0
    if known:
        pairs = curation.near_duplicate_pairs(
            np.array([curation.phash_from_hex(features[r["content_sha256"]]["phash"])
                      for r in known], dtype=np.uint64),
            np.array([features[r["content_sha256"]]["embedding"] for r in known],
                     dtype=np.float32).reshape(len(known), -1))
        cross = sum(1 for a, b in zip(pairs.i, pairs.j, strict=True)
                    if known[int(a)]["split"] != known[int(b)]["split"])
        if cross:
            problems.append(f"{cross} near-duplicate pair(s) straddle splits")

    root = _root_of(run, partition)
    missing = sorted(shard for shard in {r["shard"] for r in rows}
                     if root is None or not run.exists(f"{root}/{shard}"))
    if missing:
        problems.append(f"{len(missing)} shard(s) missing under {root}, e.g. {missing[:3]}")
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems[:5]) if problems else
        f"{len(rows)} samples in {len(groups)} groups; no group or near-duplicate pair crosses "
        "splits",
        metadata={"samples": len(rows), "groups": len(groups),
                  "straddling_groups": len(straddling), "straddling_near_duplicates": cross,
                  "missing_shards": len(missing)},
    )


def _root_of(run, partition: str) -> str | None:
    """The version folder the day's training set was written to (from its commit metadata)."""
    from dataops_cv.lib.training_sets.writer import parse_tag, trainset_root

    change = run.store.last_change(run.branch, table_key("training_set", partition))
    parsed = parse_tag(change.metadata.get("trainset_tag", "")) if change else None
    return trainset_root(*parsed) if parsed else None
