"""Acquisition: capture files into content-addressed lakeFS objects plus per-day tables."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import CaptureSourceResource, ContractsResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.lib.acquisition.ingest import ingest_images
from dataops_cv.lib.acquisition.labels import import_annotations
from dataops_cv.lib.acquisition.registry import SourceEntry
from dataops_cv.lib.acquisition.sensor_ingest import MANIFEST_SCHEMA, ingest_sensor_logs
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.core.partitions import source_of
from dataops_cv.lib.core.previews import PREVIEW_FRAMES, box_tuples, preview_markdown
from dataops_cv.lib.lakefs.layout import quarantine_key, side_key, table_key
from dataops_cv.lib.validation.quality import frame_quality_summary, label_quality_summary


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def _resolve(capture_source: CaptureSourceResource, partition: str, run) -> SourceEntry:
    """The partition's source (registered on lakeFS at the run's base, or the resource's own)."""
    legacy = [p for p in run.partitions("raw_frames") if source_of(p) is None]
    if legacy:
        raise dg.Failure(
            f"{partition}: this repository holds {len(legacy)} day(s) in the single-source "
            f"layout ({legacy[0]}..{legacy[-1]}); move them under a source once with "
            "`dataops-cv sources migrate NAME` (NAME: what those days' frames came from)")
    try:
        return capture_source.resolve(partition, run)
    except ValueError as exc:
        raise dg.Failure(f"{partition}: {exc}") from exc


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="acquisition",
    kinds={"lakefs", "parquet", "image"},
    code_version="3",
)
def raw_frames(
    context: dg.AssetExecutionContext,
    lakefs: LakeFSResource,
    capture_source: CaptureSourceResource,
    s3: S3Resource,
) -> dg.MaterializeResult:
    """One day's frames: image bytes under frames/<sha256>, a metadata table, and a quarantine
    table (with the bytes kept) for every file that could not be used."""
    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    entry = _resolve(capture_source, partition, run)
    source = capture_source.drop(partition, s3, entry)
    name = entry.name
    table_path = table_key("raw_frames", partition)
    context.log.info(f"ingesting {source.uri} into {run.branch} ({table_path})")

    result = ingest_images(
        source,
        partition,
        previous_rows=run.rows(table_path),
        previous_quarantine=run.rows(quarantine_key("raw_frames", partition)),
        put=run.put_content_addressed,
        max_pixels=capture_source.max_pixels,
        progress=lambda done, total: context.log.info(f"read {done}/{total} new or changed files"),
        source_name=name,
    )
    run.put_table(table_path, result.table)
    q_path = run.put_quarantine("raw_frames", partition, result.quarantine)
    c = result.counts
    commit = run.commit(
        f"raw_frames {partition}: {c['ingested']} frames, {c['quarantined']} quarantined",
        {"source_uri": source.uri, "source": name},
    )
    preview = [(run.read(key), []) for key in
               result.table.column("object_key").to_pylist()[:PREVIEW_FRAMES]]
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            **{f"count_{k}": v for k, v in c.items() if k != "bytes_read"},
            "bytes_read": dg.MetadataValue.int(c["bytes_read"]),
            "bytes_total": dg.MetadataValue.int(sum(result.table.column("size").to_pylist())),
            "source": dg.MetadataValue.text(source.uri),
            **table_metadata(table=table_path, quarantine_table=q_path),
            "quarantine_reasons": dg.MetadataValue.json(
                _counts(q.reason for q in result.quarantine)),
            **{f"quality_{k}": dg.MetadataValue.float(v)
               for k, v in frame_quality_summary(result.table.select(
                   ["duplicate_of", "width", "height", "brightness", "contrast",
                    "laplacian_var"]).to_pylist()).items()},
            "preview": dg.MetadataValue.md(preview_markdown(preview, "_no frames_")),
        }
    )


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="acquisition",
    kinds={"lakefs", "parquet"},
    deps=[raw_frames],
    code_version="1",
)
def imported_annotations(
    context: dg.AssetExecutionContext,
    lakefs: LakeFSResource,
    capture_source: CaptureSourceResource,
    s3: S3Resource,
    contracts: ContractsResource,
) -> dg.MaterializeResult:
    """One day's labels shipped with the source dataset (COCO, VOC, YOLO or Label Studio), as
    the canonical annotation table keyed by image hash, plus a quarantine table."""
    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    frames = run.day_rows("raw_frames", partition)
    entry = _resolve(capture_source, partition, run)
    source = capture_source.drop(partition, s3, entry)
    result = import_annotations(source, entry.format, frames,
                                box_rules=contracts.contract("imported_annotations").boxes)
    for line in result.notes:
        context.log.warning(line)
    table_path = table_key("imported_annotations", partition)
    run.put_rows(table_path, result.rows, ANNOTATION_SCHEMA)
    q_path = run.put_quarantine("imported_annotations", partition, result.quarantine)
    commit = run.commit(
        f"imported_annotations {partition}: {len(result.rows)} boxes ({result.format}), "
        f"{len(result.quarantine)} quarantined"
    )
    by_sha: dict[str, list[dict]] = {}
    for r in result.rows:
        by_sha.setdefault(r["image_sha256"], []).append(r)
    keys = {f["sha256"]: f["object_key"] for f in frames}
    preview = [(run.read(keys[sha]), box_tuples(boxes))
               for sha, boxes in list(by_sha.items())[:PREVIEW_FRAMES]]
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "count_annotations": len(result.rows),
            "count_annotations_quarantined": len(result.quarantine),
            "format": dg.MetadataValue.text(result.format),
            "class_counts": dg.MetadataValue.json(_counts(r["class_name"] for r in result.rows)),
            **{f"quality_{k}": dg.MetadataValue.float(v)
               for k, v in label_quality_summary(result.rows, frames).items()},
            **table_metadata(table=table_path, quarantine_table=q_path),
            "preview": dg.MetadataValue.md(preview_markdown(preview, "_no labeled frames_")),
        }
    )


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="acquisition",
    kinds={"lakefs", "parquet"},
    code_version="1",
)
def sensor_logs(
    context: dg.AssetExecutionContext,
    lakefs: LakeFSResource,
    capture_source: CaptureSourceResource,
    s3: S3Resource,
) -> dg.MaterializeResult:
    """One day's IMU / GPS / LiDAR / pose readings from the drop's logs in the generic sensor-log
    format, normalised to UTC nanoseconds, with referenced sweeps stored under sensors/<sha256>."""
    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    source = capture_source.drop(partition, s3, _resolve(capture_source, partition, run))
    table_path = table_key("sensor_logs", partition)
    manifest_path = side_key("sensor_logs", partition, "_logs.parquet")
    result = ingest_sensor_logs(source, run.table(table_path), run.rows(manifest_path),
                                run.put_content_addressed)
    run.put_rows(manifest_path, result.manifest, MANIFEST_SCHEMA)
    run.put_table(table_path, result.table)
    q_path = run.put_quarantine("sensor_logs", partition, result.quarantine)
    c = result.counts
    commit = run.commit(f"sensor_logs {partition}: {c['sensor_rows']} rows from "
                        f"{c['sensor_logs']} logs, {c['sensor_rows_quarantined']} quarantined")
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            **{f"count_{k}": v for k, v in c.items()},
            "rows_per_sensor": dg.MetadataValue.json(_counts(result.table["sensor"].to_pylist())),
            "devices": dg.MetadataValue.int(len(set(result.table["device_id"].to_pylist()))),
            **table_metadata(table=table_path, quarantine_table=q_path),
        }
    )
