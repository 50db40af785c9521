"""Acquisition: capture files into content-addressed lakeFS objects plus per-day tables."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.resources import CaptureSourceResource, LakeFSResource
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.acquisition.ingest import FRAMES_SCHEMA, ingest_images
from dataops_cv.lib.acquisition.labels import import_annotations
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.core.previews import grid_png, markdown_image
from dataops_cv.lib.validation.quality import frame_quality_summary, label_quality_summary
from dataops_cv.lib.core.quarantine import QUARANTINE_SCHEMA, QuarantineRecord
from dataops_cv.lib.lakefs.run_branch import RunBranch
from dataops_cv.lib.acquisition.sensor_ingest import MANIFEST_SCHEMA, ingest_sensor_logs
from dataops_cv.lib.core.tables import (
    PARQUET_CONTENT_TYPE,
    from_parquet_bytes,
    table_to_parquet_bytes,
    to_parquet_bytes,
)

PREVIEW_FRAMES = 12


def quarantine_table_key(asset: str, partition: str) -> str:
    return f"quarantine/{asset}/date={partition}/_quarantine.parquet"


def write_day_tables(
    run: RunBranch, table_path: str, table_bytes: bytes, q_path: str,
    quarantine: list[QuarantineRecord],
) -> dict[str, dg.MetadataValue]:
    """Stage a day's table and its quarantine table; return the metadata pointing at both."""
    run.put(table_path, table_bytes, PARQUET_CONTENT_TYPE)
    run.put(q_path, to_parquet_bytes([q.row() for q in quarantine], QUARANTINE_SCHEMA),
            PARQUET_CONTENT_TYPE)
    return {"table": dg.MetadataValue.path(table_path),
            "quarantine_table": dg.MetadataValue.path(q_path)}


def read_table_rows(run: RunBranch, path: str) -> list[dict]:
    """Rows of a table on the run branch (as of its base plus this run), or [] if absent."""
    if not run.exists(path):
        return []
    return from_parquet_bytes(run.read(path)).to_pylist()


@dg.asset(
    partitions_def=daily_partitions,
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
    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    source = capture_source.drop(partition, s3)
    table_path = table_key("raw_frames", partition)
    q_path = quarantine_table_key("raw_frames", partition)
    context.log.info(f"ingesting {source.uri} into {run.branch} ({table_path})")

    result = ingest_images(
        source,
        partition,
        previous_rows=read_table_rows(run, table_path),
        previous_quarantine=read_table_rows(run, q_path),
        put=run.put_content_addressed,
        max_pixels=capture_source.max_pixels,
        progress=lambda done, total: context.log.info(f"read {done}/{total} new or changed files"),
    )
    tables = write_day_tables(run, table_path, to_parquet_bytes(result.rows, FRAMES_SCHEMA),
                              q_path, result.quarantine)
    c = result.counts
    commit = run.commit(
        f"raw_frames {partition}: {c['ingested']} frames, {c['quarantined']} quarantined",
        {"source_uri": source.uri},
    )
    preview = [(run.read(r["object_key"]), []) for r in result.rows[:PREVIEW_FRAMES]]
    reasons: dict[str, int] = {}
    for q in result.quarantine:
        reasons[str(q.reason)] = reasons.get(str(q.reason), 0) + 1
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            **{f"count_{k}": v for k, v in c.items() if k != "bytes_read"},
            "bytes_read": dg.MetadataValue.int(c["bytes_read"]),
            "bytes_total": dg.MetadataValue.int(sum(int(r["size"]) for r in result.rows)),
            "source": dg.MetadataValue.text(source.uri),
            **tables,
            "quarantine_reasons": dg.MetadataValue.json(reasons),
            **{f"quality_{k}": dg.MetadataValue.float(v)
               for k, v in frame_quality_summary(result.rows).items()},
            "preview": dg.MetadataValue.md(markdown_image(grid_png(preview)) if preview else
                                           "_no frames_"),
        }
    )


@dg.asset(
    partitions_def=daily_partitions,
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
) -> dg.MaterializeResult:
    """One day's labels shipped with the source dataset (COCO, VOC, YOLO or Label Studio), as
    the canonical annotation table keyed by image hash, plus a quarantine table."""
    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    frames = read_table_rows(run, table_key("raw_frames", partition))
    source = capture_source.drop(partition, s3)
    result = import_annotations(source, capture_source.format, frames)
    for line in result.notes:
        context.log.warning(line)
    table_path = table_key("imported_annotations", partition)
    q_path = quarantine_table_key("imported_annotations", partition)
    tables = write_day_tables(run, table_path,
                              to_parquet_bytes(result.rows, ANNOTATION_SCHEMA),
                              q_path, result.quarantine)
    commit = run.commit(
        f"imported_annotations {partition}: {len(result.rows)} boxes ({result.format}), "
        f"{len(result.quarantine)} quarantined"
    )
    by_sha: dict[str, list] = {}
    for r in result.rows:
        by_sha.setdefault(r["image_sha256"], []).append(
            (r["class_name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]))
    keys = {f["sha256"]: f["object_key"] for f in frames}
    preview = [(run.read(keys[sha]), boxes) for sha, boxes in list(by_sha.items())[:PREVIEW_FRAMES]]
    classes: dict[str, int] = {}
    for r in result.rows:
        classes[r["class_name"]] = classes.get(r["class_name"], 0) + 1
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "count_annotations": len(result.rows),
            "count_annotations_quarantined": len(result.quarantine),
            "format": dg.MetadataValue.text(result.format),
            "class_counts": dg.MetadataValue.json(classes),
            **{f"quality_{k}": dg.MetadataValue.float(v)
               for k, v in label_quality_summary(result.rows, frames).items()},
            **tables,
            "preview": dg.MetadataValue.md(markdown_image(grid_png(preview)) if preview else
                                           "_no labeled frames_"),
        }
    )


@dg.asset(
    partitions_def=daily_partitions,
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
    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    source = capture_source.drop(partition, s3)
    table_path = table_key("sensor_logs", partition)
    manifest_path = f"tables/sensor_logs/date={partition}/_logs.parquet"
    q_path = quarantine_table_key("sensor_logs", partition)
    previous = from_parquet_bytes(run.read(table_path)) if run.exists(table_path) else None
    result = ingest_sensor_logs(source, previous, read_table_rows(run, manifest_path),
                                run.put_content_addressed)
    run.put(manifest_path, to_parquet_bytes(result.manifest, MANIFEST_SCHEMA),
            PARQUET_CONTENT_TYPE)
    tables = write_day_tables(run, table_path, table_to_parquet_bytes(result.table), q_path,
                              result.quarantine)
    c = result.counts
    commit = run.commit(f"sensor_logs {partition}: {c['sensor_rows']} rows from "
                        f"{c['sensor_logs']} logs, {c['sensor_rows_quarantined']} quarantined")
    per_sensor: dict[str, int] = {}
    for name in result.table["sensor"].to_pylist():
        per_sensor[name] = per_sensor.get(name, 0) + 1
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            **{f"count_{k}": v for k, v in c.items()},
            "rows_per_sensor": dg.MetadataValue.json(per_sensor),
            "devices": dg.MetadataValue.int(len(set(result.table["device_id"].to_pylist()))),
            **tables,
        }
    )
