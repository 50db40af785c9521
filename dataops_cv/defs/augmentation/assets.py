"""Augmentation: K reproducible, box-aware variants of every fused sample of a day."""

import time
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.lib.core.annotations import XYXY, boxes_by_image, label_source
from dataops_cv.lib.core.previews import PREVIEW_FRAMES, box_tuples, preview_markdown
from dataops_cv.lib.lakefs.layout import augmented_key, side_key, table_key
from dataops_cv.lib.lakefs.run_branch import RunBranch

POLICY_FILE = "augmentation_policy.yaml"


class AugmentationConfig(dg.Config):
    policy_path: str = Field(
        default="", description="Policy YAML; empty means data_contracts/augmentation_policy.yaml.")
    variants_per_sample: int = Field(
        default=-1, description="Override the policy's K for this run; -1 keeps the policy's.")
    batch_size: int = Field(default=16, description="Variants computed per batch (memory bound).")
    device: str = Field(default="auto", description="auto (CUDA when present) | cpu | cuda.")
    render: Literal["none", "preview", "all"] = Field(
        default="preview",
        description="Which variants get their PNG stored under augmented/: none (recipes only; "
                    "the UI preview is rendered in memory), preview (the variants the UI "
                    "previews) or all. Every variant is a recipe that TrainingSetDataset and "
                    "exports render on the fly, byte-identical to a stored render.")


def _samples(run: RunBranch, partition: str, stream) -> tuple[list, dict[str, str]]:
    """The day's distinct frames as source samples with their boxes, and sha256 -> object key."""
    fused = run.day_rows("fused_samples", partition)
    labeled = boxes_by_image(run.day_rows("labeled_annotations", partition))
    imported = boxes_by_image(run.day_rows("imported_annotations", partition))
    keys: dict[str, str] = {}
    for r in fused:  # exact duplicates share a sha256: their content is augmented once
        keys.setdefault(r["sha256"], r["object_key"])

    def sample(sha: str, object_key: str):
        rows, source = label_source(sha, labeled, imported)
        boxes = tuple(stream.SourceBox(b["annotation_id"], b["class_name"], b["class_id"],
                                       tuple(b[c] for c in XYXY)) for b in rows)
        return stream.SourceSample(sha, lambda: run.read(object_key), boxes, source,
                                   sizes.get(sha))

    # Displayed sizes (after EXIF orientation) from ingest: a recipe then needs no decode.
    sizes = {r["sha256"]: (int(r["width"]), int(r["height"]))
             for r in run.day_rows("raw_frames", partition)
             if r["sha256"] in keys and r.get("width") and r.get("height")}
    return [sample(sha, key) for sha, key in sorted(keys.items())], keys


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="augmentation",
    kinds={"lakefs", "parquet", "torch", "image"},
    deps=["fused_samples", "imported_annotations", "labeled_annotations"],
    code_version="1",
)
def augmented_samples(
    context: dg.AssetExecutionContext, config: AugmentationConfig, lakefs: LakeFSResource,
    contracts: ContractsResource,
) -> dg.MaterializeResult:
    """One day's augmented variants: K per distinct fused frame, a row per variant with its
    source and exact parameters (its recipe) and the moved boxes; PNG bytes under
    augmented/<sha256> for the variants ``render`` asks to store (default: the previewed ones).

    Why ``preview`` by default: at nightly scale rendering every variant to lossless PNG was
    ~70% of the whole graph's time and wrote many times the source's bytes, while trainers
    augment in their loaders anyway; here the loaders (TrainingSetDataset, exports) render the
    recorded recipe, byte-identical to a stored render, so the record stays exact and the UI
    keeps its thumbnails. ``all`` is for teams that want every PNG on lakeFS."""
    # torch and the kernels load only in this step
    from dataops_cv.lib.augmentation import kernels, stream, tables
    from dataops_cv.lib.augmentation.policy import load_policy

    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    policy = load_policy(Path(config.policy_path) if config.policy_path
                         else contracts.path(POLICY_FILE))
    k = policy.variants_per_sample if config.variants_per_sample < 0 else config.variants_per_sample
    device = kernels.resolve_device(config.device)

    fused_path = table_key("fused_samples", partition)
    if not run.exists(fused_path):
        # No samples is a missing upstream, not an empty day: say so instead of publishing none.
        raise dg.Failure(f"augmented_samples {partition}: no fused_samples table at {fused_path} "
                         f"on {run.branch}; materialize fused_samples for this day first "
                         f"(dataops_job does)")
    samples, keys = _samples(run, partition, stream)
    # Every variant's input key once, in the table's (source_sha256, variant) order: the
    # preview shows its first rows.
    ordered = [stream.input_key(policy, s, v) for s in samples for v in range(k)]
    wanted = frozenset(ordered)
    stored = {"all": wanted, "preview": frozenset(ordered[:PREVIEW_FRAMES]),
              "none": frozenset()}[config.render]
    table_path = table_key("augmented_samples", partition)
    boxes_path = side_key("augmented_samples", partition, "_annotations.parquet")
    # A row is reused unless this run must store a render it lacks (a recipe's bytes are the
    # same whenever they are rendered, so a stored render is always kept).
    previous = {r["input_key"]: r for r in run.rows(table_path)
                if r["input_key"] in wanted and r["policy_version"] == policy.version
                and (r.get("rendered", True) or r["input_key"] not in stored)}
    for r in previous.values():
        r.setdefault("rendered", r.get("sha256") is not None)
    rows = list(previous.values())
    # Two variants can have the same bytes (both drew no transform), so boxes follow input keys.
    box_rows = [b for b in run.rows(boxes_path) if b["input_key"] in previous]

    started = time.perf_counter()
    computed = uploaded = rendered = 0
    for variant in stream.augment_stream(samples, policy, variants=k,
                                         skip=frozenset(previous), batch_size=config.batch_size,
                                         device=device, render=stored.__contains__):
        if variant.png is not None:
            rendered += 1
            uploaded += run.put_content_addressed(augmented_key(variant.sha256), variant.png,
                                                  "image/png")
        rows.append(tables.variant_row(variant, policy, keys[variant.source.sha256]))
        box_rows.extend(tables.variant_box_rows(variant))
        computed += 1
        if computed % 200 == 0:
            context.log.info(f"augmented {computed} variants")
    seconds = time.perf_counter() - started

    rows.sort(key=lambda r: (r["source_sha256"], r["variant"]))
    box_rows.sort(key=lambda b: (b["input_key"], b["annotation_id"]))
    run.put_rows(table_path, rows, tables.AUGMENTED_SCHEMA)
    run.put_rows(boxes_path, box_rows, tables.AUGMENTED_BOXES_SCHEMA)
    commit = run.commit(
        f"augmented_samples {partition}: {len(rows)} variants of {len(samples)} samples "
        f"({computed} computed, {len(previous)} unchanged)",
        {"policy_version": policy.version},
    )
    by_input: dict[str, list[dict]] = {}
    for b in box_rows:
        by_input.setdefault(b["input_key"], []).append(b)
    preview = [(_preview_image(run, r, keys, stream),
                box_tuples(by_input.get(r["input_key"], []))) for r in rows[:PREVIEW_FRAMES]]
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "count_augment_samples": len(samples),
            "count_augment_variants": len(rows),
            "count_augment_computed": computed,
            "count_augment_reused": len(previous),
            "count_augment_uploaded": uploaded,
            "count_augment_rendered": rendered,
            "count_augment_stored": sum(1 for r in rows if r["rendered"]),
            "render": dg.MetadataValue.text(config.render),
            "count_augment_boxes": len(box_rows),
            "count_augment_boxes_dropped": sum(int(r["boxes_dropped"]) for r in rows),
            "variants_per_sample": k,
            "policy_version": dg.MetadataValue.text(policy.version),
            "device": dg.MetadataValue.text(device),
            "variants_per_second": dg.MetadataValue.float(
                round(computed / seconds, 2) if computed and seconds > 0 else 0.0),
            **table_metadata(table=table_path, boxes_table=boxes_path),
            "preview": dg.MetadataValue.md(preview_markdown(preview, "_no samples_")),
        }
    )


def _preview_image(run: RunBranch, row: dict, keys: dict[str, str], stream) -> bytes:
    """A previewed variant's PNG: its stored render, or rendered now from its recipe."""
    if row["rendered"]:
        return run.read(row["object_key"])
    from dataops_cv.lib.augmentation.params import AugParams

    return stream.render_png(run.read(keys[row["source_sha256"]]),
                             AugParams.from_json(row["params"]))
