"""Training sets: the useful samples of the curated days, split without leakage, written as a
manifest and Parquet shards under trainsets/<name>/<version>/ and tagged when the run publishes."""

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg
from pydantic import Field

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.tags import PUBLISH_TAG_METADATA
from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE
from dataops_cv.lib.lakefs.layout import (
    table_key,
    trainset_key,
    trainset_root,
    trainset_shards_root,
)
from dataops_cv.lib.lakefs.run_branch import UPLOAD_WORKERS, RunBranch
from dataops_cv.lib.training_sets import collect

TRAINING_SET_SAMPLES_CHECK = "training_set_has_samples"


def _has_samples(ok: bool, description: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=TRAINING_SET_SAMPLES_CHECK, passed=ok, description=description,
        severity=dg.AssetCheckSeverity.ERROR if ok else dg.AssetCheckSeverity.WARN,
        metadata=metadata)


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
    sticky_splits: bool = Field(
        default=True, description="Keep every sample in the split the latest earlier version "
        "of this name gave it (test before val before train when a new near-duplicate joins "
        "samples of several), balancing only new samples; false splits from scratch.")
    rebuild: bool = Field(
        default=False, description="Build and write the version again even when it exists "
        "(it must come out byte-identical: same inputs, same bytes).")


def _days(run: RunBranch, partition: str, days: int) -> list[str]:
    """The curated partitions of every source in the window of ``days`` capture days ending at
    ``partition``'s (all of them when ``days`` = 0): a training set is built across sources."""
    return run.window_partitions(collect.CURATED, partition, days)


def _split_table(planned, splits) -> tuple[dict[str, int], str]:
    """Samples per split, and a markdown table of boxes per class and split."""
    split_counts: dict[str, int] = {}
    class_counts: dict[str, dict[str, int]] = {}
    for p in planned:
        split_counts[p.split] = split_counts.get(p.split, 0) + 1
        for b in p.sample.boxes:
            per = class_counts.setdefault(p.split, {})
            per[b.class_name] = per.get(b.class_name, 0) + 1
    classes = sorted({c for per in class_counts.values() for c in per})
    table_md = "| split | samples | " + " | ".join(classes) + " |\n|---|---|" + "---|" * len(
        classes) + "\n" + "\n".join(
        f"| {s} | {split_counts.get(s, 0)} | "
        + " | ".join(str(class_counts.get(s, {}).get(c, 0)) for c in classes) + " |"
        for s in splits)
    return split_counts, table_md


def _write(run: RunBranch, planned, name: str, version: str, max_shard_mb: int,
           earlier_shards: list[str]) -> tuple[bytes, dict[str, str], int]:
    """Stream the training set's files onto the run branch (shards shared per day and split
    under the name, reused where an earlier version wrote them); return the manifest bytes, the
    digest of every file written and the bytes written."""
    from dataops_cv.lib.training_sets.writer import MANIFEST_PATH, write_training_set

    def existing(key: str) -> bytes | None:
        return run.read(key) if run.exists(key) else None

    def put(rel: str, data: bytes, shared: bool) -> None:
        run.put(rel if shared else trainset_key(name, version, rel), data, PARQUET_CONTENT_TYPE
                if rel.endswith(".parquet") else "application/octet-stream")

    digests: dict[str, str] = {}
    size = 0
    manifest = b""
    # Images are fetched in UPLOAD_WORKERS threads, and a finished shard uploads while the next
    # one is fetched and encoded: at most two shards in flight, so memory stays bounded.
    with ThreadPoolExecutor(1, thread_name_prefix="trainset-put") as pool:
        pending: deque[Future] = deque()
        for rel, data, digest, shared in write_training_set(
                planned, run.read, max_shard_bytes=max_shard_mb * 2**20,
                fetch_workers=UPLOAD_WORKERS, shard_dir=trainset_shards_root(name),
                existing=existing, exists=run.exists, earlier_shards=earlier_shards):
            if len(pending) >= 2:
                pending.popleft().result()
            pending.append(pool.submit(put, rel, data, shared))
            digests[rel], size = digest, size + len(data)
            if rel == MANIFEST_PATH:
                manifest = data
        while pending:
            pending.popleft().result()
    return manifest, digests, size


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="training_sets",
    kinds={"lakefs", "parquet", "torch"},
    deps=["curated_samples", "augmented_samples"],
    code_version="1",
    # No useful sample in the window (e.g. days nobody labeled yet) means no training set: the
    # asset is not materialized and no tag is made, rather than an empty set published; the
    # check below then fails as a warning with the window's reasons, so it is never silent.
    output_required=False,
    check_specs=[dg.AssetCheckSpec(
        TRAINING_SET_SAMPLES_CHECK, asset="training_set", blocking=True,
        description="The window has useful samples to build a training set from (a warning "
        "with the reasons histogram when it has none: nothing is published then).")],
)
def training_set(
    context: dg.AssetExecutionContext, config: TrainingSetConfig, lakefs: LakeFSResource,
    contracts: ContractsResource,
) -> Iterator[dg.MaterializeResult]:
    """The training set as of one day: the useful samples of the curated days up to it, split
    train/val/test by leakage group and class, as a manifest and shards tagged on publish."""
    from dataops_cv.lib.curation.features import FEATURE_VERSION
    from dataops_cv.lib.training_sets import writer

    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    writer.validate_name(config.name)
    if not run.exists(table_key(collect.CURATED, partition)):
        raise dg.Failure(f"training_set {partition}: no curated_samples table for {partition} on "
                         f"{run.branch}; materialize curated_samples for this day first")
    days = _days(run, partition, config.days)
    taxonomy = {c: i for i, c in enumerate(contracts.taxonomy())}

    def class_id(box) -> int:
        # Labels without an id take the taxonomy's index; -1 marks a class outside it.
        if box["class_id"] is not None:
            return int(box["class_id"])
        return taxonomy.get(box["class_name"], -1)

    checksums = run.checksums(collect.input_tables(days))

    def inputs_of(previous: str | None) -> bytes:
        return collect.inputs_document(
            partition, config.name, config.fractions, config.seed, config.include_augmented,
            config.max_shard_mb, FEATURE_VERSION, checksums, previous)

    previous = (collect.previous_version(run, config.name, partition, inputs_of(None))
                if config.sticky_splits else None)
    inputs_json = inputs_of(previous)
    version = collect.version_of(partition, inputs_json)
    tag = writer.tag_name(config.name, version)
    root = trainset_root(config.name, version)
    manifest_path = trainset_key(config.name, version, writer.MANIFEST_PATH)
    base_meta = {
        PUBLISH_TAG_METADATA: dg.MetadataValue.text(tag),
        "trainset_name": dg.MetadataValue.text(config.name),
        "trainset_version": dg.MetadataValue.text(version),
        "trainset_root": dg.MetadataValue.path(root),
        "days": dg.MetadataValue.json(days),
        "previous_version": dg.MetadataValue.text(previous or ""),
    }
    if run.exists(manifest_path) and not config.rebuild:
        context.log.info(f"{tag} already holds these inputs; nothing to build")
        commit = run.commit(f"training_set {partition}: {tag} unchanged")
        yield dg.MaterializeResult(
            metadata={**commit_metadata(run, commit.id), **base_meta, "unchanged": True},
            check_results=[_has_samples(True, f"{tag} already built from these inputs")])
        return

    found = collect.collect(run, days, class_id, config.include_augmented)
    if not found.originals:
        from dataops_cv.lib.curation.collapse import reasons_histogram

        window = [r for d in days for r in run.day_rows(collect.CURATED, d)]
        histogram = reasons_histogram(window)
        message = (f"no useful sample among the {len(window)} curated frames of {days[0]}.."
                   f"{days[-1]}, so no training set is made (reasons: "
                   + (", ".join(f"{r} {n}" for r, n in histogram.items()) or "no frames")
                   + "); see curated_samples_not_collapsed of those days for what to change")
        context.log.warning(f"training_set {partition}: {message}")
        yield _has_samples(False, message, frames=len(window),
                           reasons=dg.MetadataValue.json(histogram),
                           days=dg.MetadataValue.json(days))
        return
    pair_i, pair_j = collect.collected_pairs(run, days, found)
    group_of = collect.leakage_groups([s.sample_id for s in found.originals], found.sessions,
                                      zip(pair_i, pair_j, strict=True))
    prior, earlier_shards = collect.prior_placement(run, config.name, previous)
    planned = writer.plan_training_set(collect.grouped_samples(found, group_of),
                                       config.fractions, config.seed, prior)
    kept = sum(1 for p in planned if prior.get(p.sample.sample_id) == p.split)
    moved = sum(1 for p in planned if p.sample.sample_id in prior
                and prior[p.sample.sample_id] != p.split)
    if moved:
        context.log.warning(
            f"training_set {partition}: {moved} sample(s) changed split since {previous}: new "
            "near-duplicates joined them to samples of an evaluation split")
    manifest, digests, size = _write(run, planned, config.name, version, config.max_shard_mb,
                                     earlier_shards)
    if not manifest:
        raise dg.Failure(f"training_set {partition}: the writer produced no manifest")
    run.put(trainset_key(config.name, version, writer.INPUTS_PATH), inputs_json,
            "application/json")
    # The day's copy lets the contract check and drift read it like every other table.
    run.put(table_key("training_set", partition), manifest, PARQUET_CONTENT_TYPE)
    split_counts, table_md = _split_table(planned, writer.SPLITS)
    commit = run.commit(
        f"training_set {partition}: {tag} with "
        + ", ".join(f"{n} {s}" for s, n in sorted(split_counts.items())),
        {"trainset_tag": tag, "trainset_version": version})
    yield dg.MaterializeResult(check_results=[_has_samples(
        True, f"{len(planned)} samples from {len(days)} curated day(s)")], metadata={
        **commit_metadata(run, commit.id),
        **base_meta,
        "unchanged": False,
        **{f"count_trainset_{s}": split_counts.get(s, 0) for s in writer.SPLITS},
        "count_trainset_augmented": sum(1 for p in planned if p.sample.augmented_from),
        "count_trainset_groups": len(set(group_of)),
        "count_trainset_cross_day_copies": found.cross_day_copies,
        "count_trainset_split_kept": kept,
        "count_trainset_split_moved": moved,
        "count_shard_files_written": sum(1 for p in digests
                                         if p.endswith(".parquet") and "/shards/" in p
                                         and not p.endswith(".index.parquet")),
        "near_duplicate_pairs_across_set": len(pair_i),
        "splits": dg.MetadataValue.md(table_md),
        "digests": dg.MetadataValue.json(digests),
        "bytes": size,
        "manifest": dg.MetadataValue.path(manifest_path),
    })
