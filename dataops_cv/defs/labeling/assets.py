"""Labeling: frames become Label Studio tasks; annotations come back incrementally as label
snapshots committed to the lakeFS labels branch; labeled commits become the canonical table."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import pyarrow as pa

from dataops_cv.defs.acquisition.assets import (
    quarantine_table_key,
    raw_frames,
    read_table_rows,
    write_day_tables,
)
from dataops_cv.defs.acquisition.checks import CONTRACTS_DIR
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import (
    LABELS_TARGET,
    PUBLISHES_TO_TAG,
    commit_metadata,
    open_run_branch,
)
from dataops_cv.defs.resources import LabelStudioResource, LakeFSResource
from dataops_cv.lib.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.contracts import load_taxonomy
from dataops_cv.lib.label_snapshot import (
    SNAPSHOT_SCHEMA,
    TASK_INDEX_SCHEMA,
    convert_task,
    merge_partition,
    plan_pull,
)
from dataops_cv.lib.labels import import_dropped_labels
from dataops_cv.lib.labelstudio_client import parse_ls_time
from dataops_cv.lib.layout import table_key
from dataops_cv.lib.quarantine import QUARANTINE_SCHEMA, QuarantineRecord, Reason
from dataops_cv.lib.tables import PARQUET_CONTENT_TYPE, from_parquet_bytes, to_parquet_bytes

TAXONOMY = load_taxonomy(CONTRACTS_DIR / "taxonomy.yaml")
LABELS_COMMIT_TAG = "dataops-cv/labels-commit"
TASKS_TABLE = "labelstudio_tasks"
SNAPSHOT_TABLE = "label_snapshot"
SNAPSHOT_INDEX = f"tables/{SNAPSHOT_TABLE}/_tasks.parquet"
SNAPSHOT_CURSOR = f"tables/{SNAPSHOT_TABLE}/_cursor.json"
UNLINKED_QUARANTINE = f"quarantine/{SNAPSHOT_TABLE}/_unlinked.parquet"
DROPS_PREFIX = "drops/"
LABELS_TAGS = {PUBLISHES_TO_TAG: LABELS_TARGET}
TASKS_SCHEMA = pa.schema([("sha256", pa.string()), ("ls_task_id", pa.int64()),
                          ("ls_project", pa.int64())])


def drop_prefix(partition: str) -> str:
    """Where people and vendors commit a day's label files on the labels branch."""
    return f"{DROPS_PREFIX}date={partition}/"


@dg.asset(
    partitions_def=daily_partitions,
    group_name="labeling",
    kinds={"labelstudio", "lakefs"},
    deps=[raw_frames],
    tags=LABELS_TAGS,
    code_version="1",
)
def labelstudio_tasks(
    context: dg.AssetExecutionContext, lakefs: LakeFSResource, label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """One Label Studio task per published frame of the day (images served from lakeFS), and the
    frame-to-task table on the labels branch."""
    partition = context.partition_key
    store = lakefs.store()
    main_commit = store.head(lakefs.main_branch)
    frames_path = table_key("raw_frames", partition)
    if store.stat_object(main_commit, frames_path) is None:
        raise dg.Failure(f"no raw_frames for {partition} on {lakefs.main_branch}: materialize and "
                         "publish the day's frames before making its labeling tasks")
    frames = from_parquet_bytes(store.get_object(main_commit, frames_path)).to_pylist()
    run = open_run_branch(context, lakefs, context.asset_key)
    client = label_studio.client()
    try:
        project = client.ensure_project(label_studio.project_title, TAXONOMY)
        cfg = store.config
        client.ensure_lakefs_storage(project, store.repository, cfg.endpoint, cfg.access_key_id,
                                     cfg.secret_access_key)
        # Pinned to a commit: the bytes a task shows can never change under its labels.
        sync = client.sync_tasks(
            project, partition, frames,
            lambda f: f"s3://{store.repository}/{main_commit}/{f['object_key']}")
    finally:
        client.close()
    rows = [{"sha256": sha, "ls_task_id": tid, "ls_project": project}
            for sha, tid in sorted(sync.task_ids.items())]
    path = table_key(TASKS_TABLE, partition)
    run.put(path, to_parquet_bytes(rows, TASKS_SCHEMA), PARQUET_CONTENT_TYPE)
    commit = run.commit(f"{TASKS_TABLE} {partition}: {sync.created} new tasks, "
                        f"{sync.existing} already in project {project}",
                        {"labelstudio_url": label_studio.url,
                         "labelstudio_project": str(project), "frames_commit": main_commit})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "count_tasks_created": sync.created,
        "count_tasks_existing": sync.existing,
        "labelstudio_project": dg.MetadataValue.url(f"{label_studio.url}/projects/{project}"),
        "table": dg.MetadataValue.path(path),
    })


@dg.asset(
    group_name="labeling",
    kinds={"labelstudio", "lakefs", "parquet"},
    deps=[labelstudio_tasks],
    tags=LABELS_TAGS,
    code_version="1",
)
def label_snapshot(
    context: dg.AssetExecutionContext, lakefs: LakeFSResource, label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """Every annotator's boxes from Label Studio per capture day, pulled incrementally (only
    tasks changed since the stored cursor) and committed to the labels branch."""
    run = open_run_branch(context, lakefs, context.asset_key)
    cursors = json.loads(run.read(SNAPSHOT_CURSOR)) if run.exists(SNAPSHOT_CURSOR) else {}
    index_rows = read_table_rows(run, SNAPSHOT_INDEX)
    client = label_studio.client()
    try:
        project = client.ensure_project(label_studio.project_title, TAXONOMY)
        state = cursors.get(str(project), {})
        since = parse_ls_time(state["cursor"]) if state.get("cursor") else None
        index = {int(r["ls_task_id"]): (r["partition"] or "", r["updated_at"])
                 for r in index_rows}
        fetched = list(client.changed_tasks(project, since))
        new_ids = {int(t["id"]) for t in fetched} - set(index)
        live = None
        if client.task_count(project) != len(index) + len(new_ids):
            live = client.task_ids(project)  # something was deleted: find out what
        plan = plan_pull(fetched, index, since, live)
        users = client.users() if plan.changed else {}
        requests = client.requests
    finally:
        client.close()
    base = {"count_tasks_fetched": plan.fetched, "count_tasks_changed": len(plan.changed),
            "count_tasks_deleted": len(plan.deleted), "labelstudio_requests": requests,
            "labelstudio_project": dg.MetadataValue.url(f"{label_studio.url}/projects/{project}")}
    if plan.empty:
        context.log.info(f"Label Studio project {project}: nothing changed since {since}")
        return dg.MaterializeResult(metadata={**base, "partitions": dg.MetadataValue.json([])})

    converted = [convert_task(t, label_studio.url, project, users, TAXONOMY)
                 for t in plan.changed]
    by_partition: dict[str, list] = {}
    for t in converted:
        by_partition.setdefault(t.partition or "", []).append(t)
    counts = {"boxes": 0, "quarantined": 0}
    for partition in sorted(set(by_partition) | set(plan.deleted.values())):
        deleted = [tid for tid, p in plan.deleted.items() if p == partition]
        rows_path = table_key(SNAPSHOT_TABLE, partition) if partition else None
        q_path = quarantine_table_key(SNAPSHOT_TABLE, partition) if partition \
            else UNLINKED_QUARANTINE
        rows, quarantine = merge_partition(
            read_table_rows(run, rows_path) if rows_path else [], read_table_rows(run, q_path),
            by_partition.get(partition, []), deleted, label_studio.url, project)
        if rows_path:
            run.put(rows_path, to_parquet_bytes(rows, SNAPSHOT_SCHEMA), PARQUET_CONTENT_TYPE)
        run.put(q_path, to_parquet_bytes(quarantine, QUARANTINE_SCHEMA), PARQUET_CONTENT_TYPE)
        counts["boxes"] += sum(1 for t in by_partition.get(partition, []) for _ in t.rows)
        counts["quarantined"] += sum(len(t.quarantine) for t in by_partition.get(partition, []))

    kept = {tid: row for tid, row in ((int(r["ls_task_id"]), r) for r in index_rows)
            if tid not in plan.deleted}
    for t in converted:
        kept[t.task_id] = {"ls_task_id": t.task_id, "partition": t.partition, "sha256": t.sha256,
                           "updated_at": t.updated_at}
    run.put(SNAPSHOT_INDEX, to_parquet_bytes(sorted(kept.values(), key=lambda r: r["ls_task_id"]),
                                             TASK_INDEX_SCHEMA), PARQUET_CONTENT_TYPE)
    cursor = plan.cursor.isoformat() if plan.cursor else None
    cursors[str(project)] = {"cursor": cursor, "labelstudio_url": label_studio.url}
    run.put(SNAPSHOT_CURSOR, json.dumps(cursors, indent=2, sort_keys=True).encode(),
            "application/json")
    partitions = [p for p in plan.partitions if p]
    commit = run.commit(
        f"{SNAPSHOT_TABLE}: {len(plan.changed)} changed and {len(plan.deleted)} deleted tasks "
        f"of Label Studio project {project} ({', '.join(partitions) or 'no capture day'})",
        {"labelstudio_url": label_studio.url, "labelstudio_project": str(project),
         "labelstudio_cursor": cursor or "", "partitions": ",".join(partitions)})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id), **base,
        "count_boxes": counts["boxes"], "count_quarantined": counts["quarantined"],
        "cursor": dg.MetadataValue.text(cursor or ""),
        "partitions": dg.MetadataValue.json(partitions),
    })


@dg.asset(
    partitions_def=daily_partitions,
    group_name="labeling",
    kinds={"lakefs", "parquet"},
    deps=[raw_frames, label_snapshot],
    code_version="1",
)
def labeled_annotations(context: dg.AssetExecutionContext,
                        lakefs: LakeFSResource) -> dg.MaterializeResult:
    """One day's human labels from the labels branch (Label Studio snapshots and vendor drops in
    COCO, VOC, YOLO or Label Studio JSON) as the canonical table, pinned to one labels commit."""
    partition = context.partition_key
    store = lakefs.store()
    run = open_run_branch(context, lakefs, context.asset_key)
    frames = read_table_rows(run, table_key("raw_frames", partition))
    revision = context.run.tags.get(LABELS_COMMIT_TAG)
    if revision is None and store.branch_exists(lakefs.labels_branch):
        revision = store.head(lakefs.labels_branch)
    rows: list[dict] = []
    quarantine: list[QuarantineRecord] = []
    sources: dict[str, int] = {}
    if revision is not None:
        snap_path = table_key(SNAPSHOT_TABLE, partition)
        if store.stat_object(revision, snap_path) is not None:
            present = {str(f["sha256"]) for f in frames}
            for r in from_parquet_bytes(store.get_object(revision, snap_path)).to_pylist():
                row = {k: r[k] for k in ANNOTATION_SCHEMA.names} | {"label_revision": revision}
                if row["image_sha256"] in present:
                    rows.append(row)
                else:
                    quarantine.append(QuarantineRecord(
                        f"lakefs://{store.repository}/{revision}/{snap_path}#{r['annotation_id']}",
                        "annotation", Reason.MISSING_IMAGE,
                        f"frame {row['image_sha256']} is not among {partition}'s frames"))
            sources["labelstudio"] = len(rows)
            # Boxes the pull set aside count against the day's labels (the contract's quarantine
            # rate); skipped or empty annotations are not boxes and stay in the snapshot's table.
            q_snap = quarantine_table_key(SNAPSHOT_TABLE, partition)
            if store.stat_object(revision, q_snap) is not None:
                for q in from_parquet_bytes(store.get_object(revision, q_snap)).to_pylist():
                    if q["reason"] != Reason.EMPTY_ANNOTATION:
                        quarantine.append(QuarantineRecord(**{**q, "reason": Reason(q["reason"])}))
        prefix = drop_prefix(partition)
        drop = list(store.list_objects(revision, prefix))
        if drop:
            with tempfile.TemporaryDirectory(prefix="label-drop-") as tmp:
                for obj in drop:
                    dest = Path(tmp) / obj.path[len(prefix):]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(store.get_object(revision, obj.path))
                result = import_dropped_labels(
                    Path(tmp), frames, revision, TAXONOMY,
                    read_frame=lambda f: store.get_object(revision, str(f["object_key"])),
                    uri_prefix=f"lakefs://{store.repository}/{revision}/{prefix}")
            rows.extend(result.rows)
            quarantine.extend(result.quarantine)
            sources[result.format] = len(result.rows)
    rows.sort(key=lambda r: (r["image_sha256"], r["annotation_id"]))
    table_path = table_key("labeled_annotations", partition)
    tables = write_day_tables(run, table_path, to_parquet_bytes(rows, ANNOTATION_SCHEMA),
                              quarantine_table_key("labeled_annotations", partition), quarantine)
    commit = run.commit(f"labeled_annotations {partition}: {len(rows)} boxes from labels "
                        f"commit {revision or '(no labels branch)'}",
                        {"label_revision": revision or ""})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "count_annotations": len(rows),
        "count_annotations_quarantined": len(quarantine),
        "label_revision": dg.MetadataValue.text(revision or ""),
        "sources": dg.MetadataValue.json(sources),
        **tables,
    })
