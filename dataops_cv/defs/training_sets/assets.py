"""Training sets: the useful samples of the curated days, split without leakage, written as a
manifest and Parquet shards under trainsets/<name>/<version>/ and tagged when the run publishes."""

import hashlib
import json
from collections.abc import Iterator

import dagster as dg
import numpy as np
from pydantic import Field

from dataops_cv.defs.acquisition.assets import read_table_rows
from dataops_cv.defs.acquisition.checks import CONTRACTS_DIR
from dataops_cv.defs.augmentation.assets import augmented_boxes_key, augmented_samples
from dataops_cv.defs.curation.assets import curated_samples, curation_side_key
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import (
    PUBLISH_TAG_METADATA,
    commit_metadata,
    open_run_branch,
)
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.validation.contracts import load_taxonomy
from dataops_cv.lib.lakefs.layout import earlier_partitions, table_key
from dataops_cv.lib.lakefs.run_branch import RunBranch
from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE

# Bumped when the same inputs would give other bytes: it is part of every version.
BUILD_VERSION = "1"


class TrainingSetConfig(dg.Config):
    name: str = Field(default="default", description="Training-set name: lowercase letters, "
                      "digits and '-'; the tag is trainset-<name>-<version>.")
    days: int = Field(default=0, description="Curated days up to the partition to include; 0 "
                      "includes every curated day up to it.")
    fractions: dict[str, float] = Field(
        default={"train": 0.8, "val": 0.1, "test": 0.1},
        description="Target share of samples per split (groups are never divided).")
    seed: str = Field(default="0", description="Seed of the split assignment.")
    include_augmented: bool = Field(
        default=True, description="Add the augmented variants of train samples to train.")
    max_shard_mb: int = Field(default=64, description="A shard is closed at this size.")
    rebuild: bool = Field(
        default=False, description="Build and write the version again even when it exists "
        "(it must come out byte-identical: same inputs, same bytes).")


def _sample_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _days(run: RunBranch, partition: str, days: int) -> list[str]:
    listing = [o.path for o in run.store.list_objects(run.branch, "tables/curated_samples/date=")]
    earlier = earlier_partitions(listing, "curated_samples", partition,
                                 days - 1 if days > 0 else len(listing) + 1)
    return [*earlier, partition] if days != 1 else [partition]


def _groups(keys: list[str], sessions: list[str | None], pairs) -> list[str]:
    """Leakage group per sample: samples of one capture session, and near-duplicates across
    sessions or days, end up together; the group's key is its smallest session (or sample)."""
    parent = list(range(len(keys)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, int] = {}
    for k, s in enumerate(sessions):
        if s:
            union(first.setdefault(s, k), k)
    for a, b in pairs:
        union(int(a), int(b))
    label: dict[int, str] = {}
    for k in range(len(keys)):
        root = find(k)
        name = sessions[k] or keys[k]
        label[root] = min(label.get(root, name), name)
    return [label[find(k)] for k in range(len(keys))]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="training_sets",
    kinds={"lakefs", "parquet", "torch"},
    deps=[curated_samples, augmented_samples],
    code_version="1",
    # No useful sample in the window (e.g. days nobody labeled yet) means no training set: the
    # asset is not materialized and no tag is made, rather than an empty set published.
    output_required=False,
)
def training_set(
    context: dg.AssetExecutionContext, config: TrainingSetConfig, lakefs: LakeFSResource,
) -> Iterator[dg.MaterializeResult]:
    """The training set as of one day: the useful samples of the curated days up to it, split
    train/val/test by leakage group and class, as a manifest and shards tagged on publish."""
    from dataops_cv.lib.curation import similarity as curation
    from dataops_cv.lib.training_sets import writer as trainset

    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    trainset.validate_name(config.name)
    if not run.exists(table_key("curated_samples", partition)):
        raise dg.Failure(f"training_set {partition}: no curated_samples table for {partition} on "
                         f"{run.branch}; materialize curated_samples for this day first")
    days = _days(run, partition, config.days)
    taxonomy = {c: i for i, c in enumerate(load_taxonomy(CONTRACTS_DIR / "taxonomy.yaml"))}

    def class_id(box: dict) -> int:
        # Labels without an id take the taxonomy's index; -1 marks a class outside it.
        if box["class_id"] is not None:
            return int(box["class_id"])
        return taxonomy.get(box["class_name"], -1)

    watched = [p for d in days for p in (
        table_key("curated_samples", d), curation_side_key(d, "_boxes.parquet"),
        curation_side_key(d, "_features.parquet"), table_key("augmented_samples", d),
        augmented_boxes_key(d))]
    stats = {p: run.store.stat_object(run.branch, p) for p in watched}
    inputs = {"build": BUILD_VERSION, "name": config.name, "partition": partition,
              "fractions": dict(sorted(config.fractions.items())), "seed": config.seed,
              "include_augmented": config.include_augmented, "max_shard_mb": config.max_shard_mb,
              "features": curation.FEATURE_VERSION,
              "tables": {p: (s.checksum if s else None) for p, s in stats.items()}}
    inputs_json = json.dumps(inputs, sort_keys=True, indent=1).encode()
    # Named by its inputs: the same inputs always give the same version, the same paths and
    # (tested) the same bytes, so a rebuild is a no-op diff and a tag names exactly one content.
    version = f"v{partition.replace('-', '')}-{hashlib.sha256(inputs_json).hexdigest()[:10]}"
    tag = trainset.tag_name(config.name, version)
    root = trainset.trainset_root(config.name, version)
    manifest_path = f"{root}/manifest.parquet"
    table_path = table_key("training_set", partition)
    base_meta = {
        PUBLISH_TAG_METADATA: dg.MetadataValue.text(tag),
        "trainset_name": dg.MetadataValue.text(config.name),
        "trainset_version": dg.MetadataValue.text(version),
        "trainset_root": dg.MetadataValue.path(root),
        "days": dg.MetadataValue.json(days),
    }
    if run.exists(manifest_path) and not config.rebuild:
        context.log.info(f"{tag} already holds these inputs; nothing to build")
        commit = run.commit(f"training_set {partition}: {tag} unchanged")
        yield dg.MaterializeResult(metadata={**commit_metadata(run, commit.id), **base_meta,
                                             "unchanged": True})
        return

    originals: list = []
    sessions: list[str | None] = []
    phashes: list[int] = []
    embeddings: list[list[float]] = []
    seen_sha: dict[str, str] = {}
    cross_day_copies = 0
    augmented: list = []
    for day in days:
        useful = [r for r in read_table_rows(run, table_key("curated_samples", day))
                  if r["decision"] == "useful"]
        boxes: dict[str, list] = {}
        for b in read_table_rows(run, curation_side_key(day, "_boxes.parquet")):
            boxes.setdefault(b["sample_id"], []).append(trainset.Box(
                b["annotation_id"], b["class_name"], class_id(b), b["x_min"], b["y_min"],
                b["x_max"], b["y_max"]))
        features = {f["sha256"]: f for f in read_table_rows(
            run, curation_side_key(day, "_features.parquet"))}
        kept_by_sha: dict[str, str] = {}
        for r in sorted(useful, key=lambda r: r["sample_id"]):
            if r["sha256"] in seen_sha:  # the same bytes on an earlier day: one sample
                cross_day_copies += 1
                continue
            seen_sha[r["sha256"]] = r["sample_id"]
            kept_by_sha[r["sha256"]] = r["sample_id"]
            f = features[r["sha256"]]
            phashes.append(curation.phash_from_hex(f["phash"]))
            embeddings.append(f["embedding"])
            sessions.append(r["session_id"])
            originals.append(trainset.SampleIn(
                sample_id=r["sample_id"], content_sha256=r["sha256"], object_key=r["object_key"],
                date=day, rel_path=r["rel_path"], session_id=r["session_id"],
                camera=r["camera"], width=r["width"], height=r["height"], group_key="",
                boxes=tuple(boxes.get(r["sample_id"], ())), label_source=r["label_source"],
                label_revision=r["label_revision"] or ""))
        if not config.include_augmented or not kept_by_sha:
            continue
        aug_boxes: dict[str, list] = {}
        for b in read_table_rows(run, augmented_boxes_key(day)):
            aug_boxes.setdefault(b["input_key"], []).append(trainset.Box(
                b["annotation_id"], b["class_name"], class_id(b), b["x_min"], b["y_min"],
                b["x_max"], b["y_max"]))
        by_id = {s.sample_id: s for s in originals}
        for v in read_table_rows(run, table_key("augmented_samples", day)):
            source = kept_by_sha.get(v["source_sha256"])
            if source is None:
                continue
            src = by_id[source]
            augmented.append((src, v, tuple(sorted(aug_boxes.get(v["input_key"], ()),
                                                   key=lambda b: b.annotation_id))))

    if not originals:
        context.log.warning(f"training_set {partition}: no useful sample in the curated days "
                            f"{days} (see curated_samples' reasons); no training set is made")
        return
    pairs = curation.near_duplicate_pairs(
        np.array(phashes, dtype=np.uint64),
        np.array(embeddings, dtype=np.float32).reshape(len(originals), -1))
    group_of = _groups([s.sample_id for s in originals], sessions,
                       zip(pairs.i, pairs.j, strict=True))
    samples = [trainset.SampleIn(**{**s.__dict__, "group_key": g})
               for s, g in zip(originals, group_of, strict=True)]
    groups_by_id = {s.sample_id: s.group_key for s in samples}
    for src, v, vboxes in augmented:
        samples.append(trainset.SampleIn(
            sample_id=_sample_id(src.sample_id, "augmented", v["input_key"]),
            content_sha256=v["sha256"], object_key=v["object_key"], date=src.date,
            rel_path=src.rel_path, session_id=src.session_id, camera=src.camera,
            width=v["width"], height=v["height"], group_key=groups_by_id[src.sample_id],
            boxes=vboxes, label_source=src.label_source, label_revision=src.label_revision,
            augmented_from=src.sample_id, aug_policy_version=v["policy_version"],
            aug_input_key=v["input_key"], aug_params=v["params"]))

    planned = trainset.plan_training_set(samples, config.fractions, config.seed)
    digests: dict[str, str] = {}
    sizes: dict[str, int] = {}
    manifest_bytes = b""
    for rel, data, digest in trainset.write_training_set(
            planned, run.read, max_shard_bytes=config.max_shard_mb * 2**20):
        run.put(f"{root}/{rel}", data, PARQUET_CONTENT_TYPE if rel.endswith(".parquet")
                else "application/octet-stream")
        digests[rel], sizes[rel] = digest, len(data)
        if rel == "manifest.parquet":
            manifest_bytes = data
    if not manifest_bytes:
        raise dg.Failure(f"training_set {partition}: the writer produced no manifest")
    run.put(f"{root}/inputs.json", inputs_json, "application/json")
    # The day's copy lets the contract check and drift read it like every other table.
    run.put(table_path, manifest_bytes, PARQUET_CONTENT_TYPE)

    split_counts: dict[str, int] = {}
    class_counts: dict[str, dict[str, int]] = {}
    for p in planned:
        split_counts[p.split] = split_counts.get(p.split, 0) + 1
        for b in p.sample.boxes:
            per = class_counts.setdefault(p.split, {})
            per[b.class_name] = per.get(b.class_name, 0) + 1
    commit = run.commit(
        f"training_set {partition}: {tag} with "
        + ", ".join(f"{n} {s}" for s, n in sorted(split_counts.items())),
        {"trainset_tag": tag, "trainset_version": version})
    classes = sorted({c for per in class_counts.values() for c in per})
    table_md = "| split | samples | " + " | ".join(classes) + " |\n|---|---|" + "---|" * len(
        classes) + "\n" + "\n".join(
        f"| {s} | {split_counts.get(s, 0)} | "
        + " | ".join(str(class_counts.get(s, {}).get(c, 0)) for c in classes) + " |"
        for s in trainset.SPLITS)
    yield dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        **base_meta,
        "unchanged": False,
        **{f"count_trainset_{s}": split_counts.get(s, 0) for s in trainset.SPLITS},
        "count_trainset_augmented": sum(1 for p in planned if p.sample.augmented_from),
        "count_trainset_groups": len(set(group_of)),
        "count_trainset_cross_day_copies": cross_day_copies,
        "near_duplicate_pairs_across_set": len(pairs.i),
        "splits": dg.MetadataValue.md(table_md),
        "digests": dg.MetadataValue.json(digests),
        "bytes": sum(sizes.values()),
        "manifest": dg.MetadataValue.path(manifest_path),
    })
