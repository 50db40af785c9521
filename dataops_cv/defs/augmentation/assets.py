"""Augmentation: K reproducible, box-aware variants of every fused sample of a day."""

import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from dataops_cv.defs.acquisition.assets import (
    PREVIEW_FRAMES,
    imported_annotations,
    read_table_rows,
)
from dataops_cv.defs.acquisition.checks import CONTRACTS_DIR
from dataops_cv.defs.fusion.assets import fused_samples
from dataops_cv.defs.labeling.assets import labeled_annotations
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.core.previews import grid_png, markdown_image
from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE, to_parquet_bytes

POLICY_FILE = "augmentation_policy.yaml"


def augmented_boxes_key(partition: str) -> str:
    return f"tables/augmented_samples/date={partition}/_annotations.parquet"


class AugmentationConfig(dg.Config):
    policy_path: str = Field(
        default="", description="Policy YAML; empty means data_contracts/augmentation_policy.yaml.")
    variants_per_sample: int = Field(
        default=-1, description="Override the policy's K for this run; -1 keeps the policy's.")
    batch_size: int = Field(default=16, description="Variants computed per batch (memory bound).")
    device: str = Field(default="auto", description="auto (CUDA when present) | cpu | cuda.")


def _boxes_by_image(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["image_sha256"], []).append(r)
    return out


@dg.asset(
    partitions_def=daily_partitions,
    group_name="augmentation",
    kinds={"lakefs", "parquet", "torch", "image"},
    deps=[fused_samples, imported_annotations, labeled_annotations],
    code_version="1",
)
def augmented_samples(
    context: dg.AssetExecutionContext, config: AugmentationConfig, lakefs: LakeFSResource,
) -> dg.MaterializeResult:
    """One day's augmented variants: K per distinct fused frame, PNG bytes under augmented/<sha256>,
    a row per variant with its source and exact parameters, and the moved boxes."""
    from dataops_cv.lib.augmentation import augment  # torch and the kernels load only in this step

    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    policy = augment.load_policy(Path(config.policy_path) if config.policy_path
                                 else CONTRACTS_DIR / POLICY_FILE)
    k = policy.variants_per_sample if config.variants_per_sample < 0 else config.variants_per_sample
    device = augment.resolve_device(config.device)

    fused_path = table_key("fused_samples", partition)
    if not run.exists(fused_path):
        # No samples is a missing upstream, not an empty day: say so instead of publishing none.
        raise dg.Failure(f"augmented_samples {partition}: no fused_samples table at {fused_path} "
                         f"on {run.branch}; materialize fused_samples for this day first "
                         f"(dataops_job does)")
    fused = read_table_rows(run, fused_path)
    labeled = _boxes_by_image(read_table_rows(run, table_key("labeled_annotations", partition)))
    imported = _boxes_by_image(read_table_rows(run, table_key("imported_annotations", partition)))
    keys: dict[str, str] = {}
    for r in fused:  # exact duplicates share a sha256: their content is augmented once
        keys.setdefault(r["sha256"], r["object_key"])

    def sample(sha: str, object_key: str) -> "augment.SourceSample":
        rows, source = (labeled[sha], "labeled") if sha in labeled else (
            (imported[sha], "imported") if sha in imported else ([], "none"))
        boxes = tuple(augment.SourceBox(b["annotation_id"], b["class_name"], b["class_id"],
                                        (b["x_min"], b["y_min"], b["x_max"], b["y_max"]))
                      for b in rows)
        return augment.SourceSample(sha, lambda: run.read(object_key), boxes, source)

    samples = [sample(sha, key) for sha, key in sorted(keys.items())]
    wanted = {augment.input_key(policy, s, v) for s in samples for v in range(k)}
    table_path = table_key("augmented_samples", partition)
    boxes_path = augmented_boxes_key(partition)
    previous = {r["input_key"]: r for r in read_table_rows(run, table_path)
                if r["input_key"] in wanted and r["policy_version"] == policy.version}
    rows = list(previous.values())
    # Two variants can have the same bytes (both drew no transform), so boxes follow input keys.
    box_rows = [b for b in read_table_rows(run, boxes_path) if b["input_key"] in previous]

    started = time.perf_counter()
    computed = uploaded = 0
    for variant in augment.augment_stream(samples, policy, variants=k,
                                          skip=frozenset(previous), batch_size=config.batch_size,
                                          device=device):
        uploaded += run.put_content_addressed(augment.augmented_key(variant.sha256), variant.png,
                                              "image/png")
        rows.append(augment.variant_row(variant, policy, keys[variant.source.sha256]))
        box_rows.extend(augment.variant_box_rows(variant))
        computed += 1
        if computed % 200 == 0:
            context.log.info(f"augmented {computed} variants")
    seconds = time.perf_counter() - started

    rows.sort(key=lambda r: (r["source_sha256"], r["variant"]))
    box_rows.sort(key=lambda b: (b["input_key"], b["annotation_id"]))
    run.put(table_path, to_parquet_bytes(rows, augment.AUGMENTED_SCHEMA), PARQUET_CONTENT_TYPE)
    run.put(boxes_path, to_parquet_bytes(box_rows, augment.AUGMENTED_BOXES_SCHEMA),
            PARQUET_CONTENT_TYPE)
    commit = run.commit(
        f"augmented_samples {partition}: {len(rows)} variants of {len(samples)} samples "
        f"({computed} computed, {len(previous)} unchanged)",
        {"policy_version": policy.version},
    )
    by_input: dict[str, list[dict]] = {}
    for b in box_rows:
        by_input.setdefault(b["input_key"], []).append(b)
    preview = [(run.read(r["object_key"]),
                [(b["class_name"], b["x_min"], b["y_min"], b["x_max"], b["y_max"])
                 for b in by_input.get(r["input_key"], [])])
               for r in rows[:PREVIEW_FRAMES]]
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "count_augment_samples": len(samples),
            "count_augment_variants": len(rows),
            "count_augment_computed": computed,
            "count_augment_reused": len(previous),
            "count_augment_uploaded": uploaded,
            "count_augment_boxes": len(box_rows),
            "count_augment_boxes_dropped": sum(int(r["boxes_dropped"]) for r in rows),
            "variants_per_sample": k,
            "policy_version": dg.MetadataValue.text(policy.version),
            "device": dg.MetadataValue.text(device),
            "variants_per_second": dg.MetadataValue.float(
                round(computed / seconds, 2) if computed and seconds > 0 else 0.0),
            "table": dg.MetadataValue.path(table_path),
            "boxes_table": dg.MetadataValue.path(boxes_path),
            "preview": dg.MetadataValue.md(markdown_image(grid_png(preview)) if preview else
                                           "_no samples_"),
        }
    )
