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
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.validation.contracts import load_taxonomy
from dataops_cv.lib.labeling.snapshot import (
    SNAPSHOT_SCHEMA,
    TASK_INDEX_SCHEMA,
    convert_task,
    merge_partition,
    plan_pull,
)
from dataops_cv.lib.acquisition.labels import import_dropped_labels
from dataops_cv.lib.labeling.qa import agreement_summary, pair_scores, task_agreements
from dataops_cv.lib.labeling.labelstudio_client import FROM_NAME, TO_NAME, parse_ls_time
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.core.quarantine import QUARANTINE_SCHEMA, QuarantineRecord, Reason
from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE, from_parquet_bytes, to_parquet_bytes

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
        pulled_at = parse_ls_time(state["pulled_at"]) if state.get("pulled_at") else None
        index = {int(r["ls_task_id"]): (r["partition"] or "", r["updated_at"])
                 for r in index_rows}
        # Label Studio's time just before the query (from the last response): the next pull's
        # re-read window ends here.
        pulled_now = client.server_time
        fetched = list(client.changed_tasks(project, since, pulled_at))
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
    cursors[str(project)] = {"cursor": cursor, "labelstudio_url": label_studio.url,
                             "pulled_at": pulled_now.isoformat() if pulled_now else None}
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


MIN_LABELED_FRAMES = 8
MAX_TRAINING_FRAMES = 512
PREDICT_BATCH = 32
REVIEW_PRECISIONS = (0.9, 0.95)
PRELABELS_SCHEMA = pa.schema([
    ("image_sha256", pa.string()), ("ls_task_id", pa.int64()), ("model_version", pa.string()),
    ("uncertainty", pa.float64()), ("boxes", pa.string()),  # JSON list of detections
])
QUEUE_SCHEMA = pa.schema([
    ("rank", pa.int64()), ("ls_task_id", pa.int64()), ("image_sha256", pa.string()),
    ("priority", pa.float64()), ("reasons", pa.string()), ("uncertainty", pa.float64()),
    ("agreement", pa.float64()), ("url", pa.string()),
])


def _snapshot_rows(run, partitions: list[str] | None = None) -> list[dict]:
    """Label snapshot rows on the run branch: of ``partitions``, or of every day."""
    if partitions is None:
        prefix = f"tables/{SNAPSHOT_TABLE}/date="
        partitions = sorted({o.path[len(prefix):].split("/", 1)[0]
                             for o in run.store.list_objects(run.branch, prefix)})
    rows: list[dict] = []
    for day in partitions:
        rows.extend(read_table_rows(run, table_key(SNAPSHOT_TABLE, day)))
    return rows


def _frames_on(store, ref: str, days) -> dict[str, dict]:
    frames: dict[str, dict] = {}
    for day in sorted(set(days)):
        path = table_key("raw_frames", day)
        if store.stat_object(ref, path) is not None:
            for f in from_parquet_bytes(store.get_object(ref, path)).to_pylist():
                frames[str(f["sha256"])] = f
    return frames


def _prelabel_result(det, width: int, height: int) -> dict:
    """A detection (``lib.autolabel.Detection``) as a Label Studio prediction result."""
    return {"type": "rectanglelabels", "from_name": FROM_NAME, "to_name": TO_NAME,
            "original_width": width, "original_height": height, "score": round(det.score, 6),
            "value": {"x": det.x_min / width * 100, "y": det.y_min / height * 100,
                      "width": (det.x_max - det.x_min) / width * 100,
                      "height": (det.y_max - det.y_min) / height * 100, "rotation": 0,
                      "rectanglelabels": [det.class_name]}}


@dg.asset(
    partitions_def=daily_partitions,
    group_name="labeling",
    kinds={"labelstudio", "lakefs", "pytorch"},
    deps=[labelstudio_tasks, label_snapshot],
    tags=LABELS_TAGS,
    code_version="1",
)
def prelabels(context: dg.AssetExecutionContext, lakefs: LakeFSResource,
              label_studio: LabelStudioResource) -> dg.MaterializeResult:
    """Model pre-labels with per-box scores and an image uncertainty for the day's unlabeled
    tasks, sent to Label Studio as predictions; the model is trained on every labeled frame."""
    # torch and torchvision take seconds to import: only the steps that train pay for them.
    import torch

    from dataops_cv.lib.labeling.autolabel import (
        frames_to_review,
        image_tensor,
        predict,
        seed_from,
        train,
        training_boxes,
    )

    partition = context.partition_key
    store = lakefs.store()
    main = store.head(lakefs.main_branch)
    run = open_run_branch(context, lakefs, context.asset_key)
    tasks = {str(r["sha256"]): int(r["ls_task_id"])
             for r in read_table_rows(run, table_key(TASKS_TABLE, partition))}
    if not tasks:
        raise dg.Failure(f"no Label Studio tasks for {partition}: run labelstudio_tasks first")
    labeled = _snapshot_rows(run)
    labeled_days = {str(r["partition"]) for r in labeled}
    frames = _frames_on(store, main, labeled_days | {partition})
    train_shas = sorted({str(r["image_sha256"]) for r in labeled} & set(frames))
    if len(train_shas) < MIN_LABELED_FRAMES:
        context.log.warning(f"{len(train_shas)} labeled frames; pre-labels start at "
                            f"{MIN_LABELED_FRAMES}")
        return dg.MaterializeResult(metadata={
            "skipped": dg.MetadataValue.text(
                f"{len(train_shas)} labeled frames, fewer than {MIN_LABELED_FRAMES}"),
            "count_prelabeled": 0})
    train_shas = train_shas[:MAX_TRAINING_FRAMES]

    def load(shas):
        decoded = [image_tensor(store.get_object(main, str(frames[s]["object_key"])))
                   for s in shas]
        return torch.stack([d[0] for d in decoded]), [(d[1], d[2]) for d in decoded]

    images, sizes = load(train_shas)
    boxes = training_boxes(labeled, dict(zip(train_shas, sizes, strict=True)), TAXONOMY)
    keys = sorted(str(r["annotation_id"]) for r in labeled)
    model = train(images, [boxes.get(s, []) for s in train_shas], TAXONOMY, seed_from(keys))
    context.log.info(f"trained {model.version} on {len(train_shas)} labeled frames")

    labeled_set = {str(r["image_sha256"]) for r in labeled}
    todo = sorted(s for s in tasks if s not in labeled_set and s in frames)
    rows, gt_right = [], []
    gt_rows = _ground_truth(store, main, partition)
    client = label_studio.client()
    try:
        project = client.ensure_project(label_studio.project_title, TAXONOMY)
        done = client.predicted_tasks(project, model.version)
        for start in range(0, len(todo), PREDICT_BATCH):
            batch = todo[start:start + PREDICT_BATCH]
            x, batch_sizes = load(batch)
            for sha, (w, h), (dets, uncertainty) in zip(
                    batch, batch_sizes, predict(model, x, batch_sizes), strict=True):
                if tasks[sha] not in done:
                    client.call(f"send pre-labels for task {tasks[sha]}",
                                client.sdk.predictions.create, task=tasks[sha],
                                result=[_prelabel_result(d, w, h) for d in dets],
                                score=round(1.0 - uncertainty, 6), model_version=model.version)
                rows.append({"image_sha256": sha, "ls_task_id": tasks[sha],
                             "model_version": model.version, "uncertainty": uncertainty,
                             "boxes": json.dumps([d.__dict__ for d in dets])})
                if gt_rows is not None:
                    f1, cls = pair_scores(
                        [(d.class_name, d.x_min, d.y_min, d.x_max, d.y_max) for d in dets],
                        gt_rows.get(sha, []))
                    gt_right.append((uncertainty, f1 * cls >= RIGHT_AT))
    finally:
        client.close()
    run.put(table_key("prelabels", partition), to_parquet_bytes(rows, PRELABELS_SCHEMA),
            PARQUET_CONTENT_TYPE)
    run.put(f"models/prelabel/{model.version}.pt", model.weights, "application/octet-stream")
    commit = run.commit(f"prelabels {partition}: {len(rows)} frames by {model.version}",
                        {"model_version": model.version, "labelstudio_project": str(project)})
    review = {}
    if gt_right:
        review = {f"review_needed_at_precision_{p}": dg.MetadataValue.int(
            frames_to_review(gt_right, p)) for p in REVIEW_PRECISIONS}
        review["prelabels_right"] = dg.MetadataValue.int(sum(ok for _, ok in gt_right))
    uncertainties = [r["uncertainty"] for r in rows]
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "model_version": dg.MetadataValue.text(model.version),
        "count_prelabeled": len(rows),
        "training_frames": len(train_shas),
        "mean_uncertainty": dg.MetadataValue.float(
            sum(uncertainties) / len(uncertainties) if uncertainties else 0.0),
        **review,
    })


RIGHT_AT = 0.8  # a frame's pre-labels are right when box F1 x class agreement reaches this


def _ground_truth(store, ref: str, partition: str) -> dict[str, list] | None:
    """The day's imported labels (the synthetic generator's truth), to report how many frames
    need review at a target precision; None when the day has none."""
    path = table_key("imported_annotations", partition)
    if store.stat_object(ref, path) is None:
        return None
    rows = from_parquet_bytes(store.get_object(ref, path)).to_pylist()
    if not rows:
        return None
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(str(r["image_sha256"]), []).append(
            (r["class_name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]))
    return out


@dg.asset(
    partitions_def=daily_partitions,
    group_name="labeling",
    kinds={"labelstudio", "lakefs", "parquet"},
    deps=[prelabels, label_snapshot],
    tags=LABELS_TAGS,
    code_version="1",
)
def audit_queue(context: dg.AssetExecutionContext, lakefs: LakeFSResource,
                label_studio: LabelStudioResource) -> dg.MaterializeResult:
    """The day's frames ranked for human review: where the model is least sure, and where
    annotators disagree, most urgent first, with a link to each Label Studio task."""
    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    tasks = {str(r["sha256"]): (int(r["ls_task_id"]), int(r["ls_project"]))
             for r in read_table_rows(run, table_key(TASKS_TABLE, partition))}
    uncertain = {str(r["image_sha256"]): float(r["uncertainty"])
                 for r in read_table_rows(run, table_key("prelabels", partition))}
    agreements = {a.image_sha256: a for a in task_agreements(_snapshot_rows(run, [partition]))}
    queue = []
    for sha in sorted(set(uncertain) | {s for s, a in agreements.items() if a.disagreement}):
        if sha not in tasks:
            continue
        reasons, priority = [], 0.0
        if sha in uncertain:
            reasons.append("model_uncertain")
            priority = uncertain[sha]
        agreement = agreements.get(sha)
        if agreement is not None and agreement.disagreement:
            reasons.append("annotators_disagree")
            priority = max(priority, 1.0 - agreement.agreement)
        task_id, project = tasks[sha]
        queue.append({"ls_task_id": task_id, "image_sha256": sha, "priority": round(priority, 6),
                      "reasons": ",".join(reasons), "uncertainty": uncertain.get(sha),
                      "agreement": agreement.agreement if agreement else None,
                      "url": f"{label_studio.url}/projects/{project}/data?task={task_id}"})
    queue.sort(key=lambda q: (-q["priority"], q["image_sha256"]))
    for rank, q in enumerate(queue, start=1):
        q["rank"] = rank
    path = table_key("audit_queue", partition)
    run.put(path, to_parquet_bytes(queue, QUEUE_SCHEMA), PARQUET_CONTENT_TYPE)
    commit = run.commit(f"audit_queue {partition}: {len(queue)} frames to review")
    top = "\n".join(f"| {q['rank']} | [{q['ls_task_id']}]({q['url']}) | {q['priority']:.3f} | "
                    f"{q['reasons']} |" for q in queue[:10])
    summary = agreement_summary(list(agreements.values()))
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "count_queued": len(queue),
        "count_disagreements": int(summary["disagreements"]),
        **{f"qa_{k}": dg.MetadataValue.float(v) for k, v in summary.items()},
        "table": dg.MetadataValue.path(path),
        "top": dg.MetadataValue.md("| rank | task | priority | why |\n|---|---|---|---|\n" + top
                                   if queue else "_nothing to review_"),
    })
