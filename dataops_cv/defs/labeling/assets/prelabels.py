"""Model pre-labels for a day's unlabeled Label Studio tasks."""

import json

import dagster as dg

from dataops_cv.defs.labeling.assets.tasks import TASKS_TABLE
from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LabelStudioResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.tags import LABELS_TAGS
from dataops_cv.lib.labeling import prelabel
from dataops_cv.lib.labeling.qa import pair_scores
from dataops_cv.lib.lakefs.layout import SNAPSHOT_TABLE, prelabel_model_key, table_key
from dataops_cv.lib.lakefs.run_branch import RefView


def _frames(main: RefView, days) -> dict[str, dict]:
    """Frames of ``days`` as published on main, by sha256."""
    return {str(f["sha256"]): f for day in sorted(set(days))
            for f in main.day_rows("raw_frames", day)}


def _send(client, project: int, model, todo: list[str], tasks: dict[str, int], load,
          truth: dict | None) -> tuple[list[dict], list[tuple[float, bool]]]:
    """Predict ``todo`` in batches and send each task's pre-labels once; return the prelabels
    rows and, where the day has known boxes, (uncertainty, right) per frame."""
    from dataops_cv.lib.labeling.autolabel import predict

    done = client.predicted_tasks(project, model.version)
    rows, right = [], []
    for start in range(0, len(todo), prelabel.PREDICT_BATCH):
        batch = todo[start:start + prelabel.PREDICT_BATCH]
        x, sizes = load(batch)
        for sha, (w, h), (dets, uncertainty) in zip(batch, sizes, predict(model, x, sizes),
                                                     strict=True):
            if tasks[sha] not in done:
                client.call(f"send pre-labels for task {tasks[sha]}",
                            client.sdk.predictions.create, task=tasks[sha],
                            result=[prelabel.prediction_result(d, w, h) for d in dets],
                            score=round(1.0 - uncertainty, 6), model_version=model.version)
            rows.append({"image_sha256": sha, "ls_task_id": tasks[sha],
                         "model_version": model.version, "uncertainty": uncertainty,
                         "boxes": json.dumps([d.__dict__ for d in dets])})
            if truth is not None:
                f1, cls = pair_scores(
                    [(d.class_name, d.x_min, d.y_min, d.x_max, d.y_max) for d in dets],
                    truth.get(sha, []))
                right.append((uncertainty, f1 * cls >= prelabel.RIGHT_AT))
    return rows, right


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="labeling",
    kinds={"labelstudio", "lakefs", "pytorch"},
    deps=["labelstudio_tasks", "label_snapshot"],
    tags=LABELS_TAGS,
    code_version="1",
)
def prelabels(context: dg.AssetExecutionContext, lakefs: LakeFSResource,
              label_studio: LabelStudioResource,
              contracts: ContractsResource) -> dg.MaterializeResult:
    """Model pre-labels with per-box scores and an image uncertainty for the day's unlabeled
    tasks, sent to Label Studio as predictions; the model is trained on every labeled frame."""
    # torch and torchvision take seconds to import: only the steps that train pay for them.
    import torch

    from dataops_cv.lib.labeling.autolabel import (
        frames_to_review,
        image_tensor,
        seed_from,
        train,
        training_boxes,
    )

    partition = str(context.partition_key)
    store = lakefs.store()
    main = RefView(store, store.head(lakefs.main_branch))
    run = open_run_branch(context, lakefs)
    taxonomy = contracts.taxonomy()
    tasks = {str(r["sha256"]): int(r["ls_task_id"]) for r in run.day_rows(TASKS_TABLE, partition)}
    if not tasks:
        raise dg.Failure(f"no Label Studio tasks for {partition}: run labelstudio_tasks first")
    labeled = [r for day in run.partitions(SNAPSHOT_TABLE)
               for r in run.day_rows(SNAPSHOT_TABLE, day)]
    frames = _frames(main, {str(r["partition"]) for r in labeled} | {partition})
    train_shas = sorted({str(r["image_sha256"]) for r in labeled} & set(frames))
    if len(train_shas) < prelabel.MIN_LABELED_FRAMES:
        context.log.warning(f"{len(train_shas)} labeled frames; pre-labels start at "
                            f"{prelabel.MIN_LABELED_FRAMES}")
        return dg.MaterializeResult(metadata={
            "skipped": dg.MetadataValue.text(
                f"{len(train_shas)} labeled frames, fewer than {prelabel.MIN_LABELED_FRAMES}"),
            "count_prelabeled": 0})
    train_shas = train_shas[:prelabel.MAX_TRAINING_FRAMES]

    def load(shas):
        decoded = [image_tensor(main.read(str(frames[s]["object_key"]))) for s in shas]
        return torch.stack([d[0] for d in decoded]), [(d[1], d[2]) for d in decoded]

    images, sizes = load(train_shas)
    boxes = training_boxes(labeled, dict(zip(train_shas, sizes, strict=True)), taxonomy)
    keys = sorted(str(r["annotation_id"]) for r in labeled)
    model = train(images, [boxes.get(s, []) for s in train_shas], taxonomy, seed_from(keys))
    context.log.info(f"trained {model.version} on {len(train_shas)} labeled frames")

    labeled_set = {str(r["image_sha256"]) for r in labeled}
    todo = sorted(s for s in tasks if s not in labeled_set and s in frames)
    # The day's imported labels (the synthetic generator's truth) say how many frames need review.
    truth = prelabel.boxes_by_image(main.day_rows("imported_annotations", partition)) or None
    client = label_studio.client()
    try:
        project = client.ensure_project(label_studio.project_title, taxonomy)
        rows, right = _send(client, project, model, todo, tasks, load, truth)
    finally:
        client.close()
    run.put_rows(table_key("prelabels", partition), rows, prelabel.PRELABELS_SCHEMA)
    run.put(prelabel_model_key(model.version), model.weights, "application/octet-stream")
    commit = run.commit(f"prelabels {partition}: {len(rows)} frames by {model.version}",
                        {"model_version": model.version, "labelstudio_project": str(project)})
    uncertainties = [r["uncertainty"] for r in rows]
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "model_version": dg.MetadataValue.text(model.version),
        "count_prelabeled": len(rows),
        "training_frames": len(train_shas),
        "mean_uncertainty": dg.MetadataValue.float(
            sum(uncertainties) / len(uncertainties) if uncertainties else 0.0),
        **{k: dg.MetadataValue.int(v)
           for k, v in prelabel.review_counts(right, frames_to_review).items()},
    })
