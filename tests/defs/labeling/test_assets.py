"""Labeling assets, one at a time, against the real lakeFS and the real Label Studio.

The module runs the labels flow once, in the order a person meets it: tasks for the day, eight
frames labeled through Label Studio's API, the pull, pre-labels for the other four and the audit
queue. Each step that publishes to the labels branch is merged there as the product's publish
does, so that the next step sees it; labeled_annotations (which publishes to main) is not. The
repository is the module's own, so its labels branch holds this module's project alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dataops_cv.defs.labeling.assets.tasks import TASKS_TABLE
from dataops_cv.defs.resources import LabelStudioResource
from dataops_cv.defs.tags import LABELS_COMMIT_TAG
from dataops_cv.lib.labeling.labelstudio_client import LabelStudioClient
from dataops_cv.lib.lakefs.layout import SNAPSHOT_TABLE, prelabel_model_key, table_key
from dataops_cv.lib.lakefs.store import LakeFSStore
from dataops_cv.lib.publishing.publish import PublishResult, publish_run
from dataops_cv.lib.services.labelstudio_server import ADMIN_EMAIL
from tests.conftest import new_repository
from tests.defs.conftest import DAY, FRAMES_PER_CAMERA, Materialized, materialize, stage_resources

FRAMES = 2 * FRAMES_PER_CAMERA
LABELED = 8  # people label 8 frames; the model drafts the other 4
W, H = 320, 240

Box = tuple[str, float, float, float, float]  # class, x_min, y_min, x_max, y_max in pixels


@dataclass
class Step:
    """One materialization, its table of DAY as its run branch held it, and its publish."""

    done: Materialized
    rows: list[dict]
    checksum: str | None
    published: PublishResult | None


@dataclass
class Flow:
    resources: dict[str, Any]
    store: LakeFSStore
    client: LabelStudioClient
    project: int
    frames: list[dict]  # raw_frames of DAY on main
    posted: dict[str, list[Box]]  # image sha256 -> the boxes labeled in Label Studio
    tasks: Step
    tasks_again: Step
    snapshot: Step
    snapshot_again: Step
    labels_after_pull: str  # the labels branch's head once the pull was published
    prelabels: Step  # prelabels and audit_queue ran in this one run
    audit_queue: Step
    predictions_after_first: list  # Label Studio's predictions after the first prelabels run
    prelabels_again: Step


def _step(done: Materialized, asset: str, store: LakeFSStore | None = None) -> Step:
    """Read ``asset``'s table of DAY off ``done``'s run branch, then merge the branch into
    labels when a ``store`` is given (a publish deletes the branch)."""
    assert done.result.success
    stat = done.run.stat(table_key(asset, DAY))
    rows = done.run.day_rows(asset, DAY) if stat else []
    published = publish_run(store, done.result.run_id, {}, "labels") if store else None
    return Step(done, rows, stat.checksum if stat else None, published)


def _ls_tasks(client: LabelStudioClient, project: int) -> list[dict]:
    return sorted(client.pages("tasks", project=project, fields="all", resolve_uri=False),
                  key=lambda t: t["id"])


def _post(client: LabelStudioClient, task_id: int, boxes: list[Box]) -> None:
    """Submit ``boxes`` as one annotation, in percent of the frame as Label Studio keeps them."""
    client.sdk.annotations.create(task_id, lead_time=3.0, result=[
        {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
         "original_width": W, "original_height": H,
         "value": {"x": x0 / W * 100, "y": y0 / H * 100, "width": (x1 - x0) / W * 100,
                   "height": (y1 - y0) / H * 100, "rotation": 0, "rectanglelabels": [cls]}}
        for cls, x0, y0, x1, y1 in boxes])


@pytest.fixture(scope="module")
def flow(lakefs_server, label_studio_server,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    """The day's frames and true boxes published to main, then the labels flow on top."""
    lakefs = new_repository(lakefs_server)
    store = lakefs.store()
    env = label_studio_server.client_env()
    resources = {
        **stage_resources(lakefs, tmp_path_factory.mktemp("drops")),
        "label_studio": LabelStudioResource(
            url=env["LABEL_STUDIO_URL"], api_key=env["LABEL_STUDIO_API_KEY"],
            project_title=f"t-labeling-{uuid.uuid4().hex[:10]}"),
    }
    day = materialize(resources, ["raw_frames", "imported_annotations"])
    frames = day.run.day_rows("raw_frames", DAY)
    truth: dict[str, list[Box]] = {}
    for r in day.run.day_rows("imported_annotations", DAY):
        truth.setdefault(r["image_sha256"], []).append(
            (r["class_name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]))
    assert publish_run(store, day.result.run_id, {"test": __name__}).status == "merged"

    tasks = _step(materialize(resources, TASKS_TABLE), TASKS_TABLE, store)
    tasks_again = _step(materialize(resources, TASKS_TABLE), TASKS_TABLE)
    project = int(tasks.rows[0]["ls_project"])
    client = LabelStudioClient(env["LABEL_STUDIO_URL"], env["LABEL_STUDIO_API_KEY"])
    try:
        # Frames with boxes only: an annotation without boxes is quarantined, not a label.
        to_label = [t for t in _ls_tasks(client, project) if truth.get(t["data"]["sha256"])]
        posted = {t["data"]["sha256"]: truth[t["data"]["sha256"]] for t in to_label[:LABELED]}
        assert len(posted) == LABELED, f"{len(to_label)} frames of {DAY} have true boxes"
        for t in to_label[:LABELED]:
            _post(client, int(t["id"]), posted[t["data"]["sha256"]])
        snapshot = _step(materialize(resources, SNAPSHOT_TABLE, partition=None), SNAPSHOT_TABLE,
                         store)
        labels_after_pull = store.head("labels")
        snapshot_again = _step(materialize(resources, SNAPSHOT_TABLE, partition=None),
                               SNAPSHOT_TABLE, store)
        both = materialize(resources, ["prelabels", "audit_queue"])
        prelabels = _step(both, "prelabels")
        audit_queue = _step(both, "audit_queue", store)
        predictions = list(client.sdk.predictions.list(project=project))
        prelabels_again = _step(materialize(resources, "prelabels"), "prelabels")
        yield Flow(resources, store, client, project, frames, posted, tasks, tasks_again,
                   snapshot, snapshot_again, labels_after_pull, prelabels, audit_queue,
                   predictions, prelabels_again)
    finally:
        client.close()


def test_labelstudio_tasks_make_one_task_per_frame_and_none_twice(flow):
    meta = flow.tasks.done.metadata(TASKS_TABLE)
    assert meta["count_tasks_created"] == FRAMES and meta["count_tasks_existing"] == 0
    assert sorted(r["sha256"] for r in flow.tasks.rows) == sorted(f["sha256"] for f in flow.frames)
    assert {r["ls_project"] for r in flow.tasks.rows} == {flow.project}
    tasks = _ls_tasks(flow.client, flow.project)
    assert {t["data"]["sha256"]: t["id"] for t in tasks} == {
        r["sha256"]: r["ls_task_id"] for r in flow.tasks.rows}
    # A task shows its frame pinned to main's commit: the bytes under its labels never change.
    main = flow.store.get_commit(meta["lakefs_commit"]).metadata["frames_commit"]
    keys = {f["sha256"]: f["object_key"] for f in flow.frames}
    assert [t["data"]["image"] for t in tasks] == [
        f"s3://{flow.store.repository}/{main}/{keys[t['data']['sha256']]}" for t in tasks]
    assert {t["data"]["partition"] for t in tasks} == {DAY}
    assert flow.tasks.published.status == "merged"
    assert flow.store.stat_object("labels", table_key(TASKS_TABLE, DAY)).checksum == \
        flow.tasks.checksum

    again = flow.tasks_again.done.metadata(TASKS_TABLE)
    assert again["count_tasks_created"] == 0 and again["count_tasks_existing"] == FRAMES
    assert flow.tasks_again.checksum == flow.tasks.checksum  # the same tasks, byte for byte
    assert len(tasks) == FRAMES  # after both runs


def test_label_snapshot_holds_the_posted_boxes_in_pixels_and_an_unchanged_pull_writes_nothing(
        flow):
    meta = flow.snapshot.done.metadata(SNAPSHOT_TABLE)
    boxes = sum(len(b) for b in flow.posted.values())
    # The first pull indexes every task of the project, labeled or not.
    assert meta["count_tasks_changed"] == FRAMES and meta["count_boxes"] == boxes
    assert meta["count_quarantined"] == 0 and meta["partitions"] == [DAY]
    rows = flow.snapshot.rows
    got = sorted((r["image_sha256"], r["class_name"], r["x_min"], r["y_min"], r["x_max"],
                  r["y_max"]) for r in rows)
    want = sorted((sha, *box) for sha, posted in flow.posted.items() for box in posted)
    assert len(got) == len(want) == boxes
    for g, w in zip(got, want, strict=True):
        assert g[:2] == w[:2] and all(abs(a - b) <= 0.5 for a, b in zip(g[2:], w[2:], strict=True))
    task_of = {r["sha256"]: r["ls_task_id"] for r in flow.tasks.rows}
    assert all(r["ls_task_id"] == task_of[r["image_sha256"]] for r in rows)
    assert {r["annotator"] for r in rows} == {ADMIN_EMAIL}
    # The pull cannot know the commit it is about to make: labeled_annotations pins it.
    assert {r["label_revision"] for r in rows} == {None}
    assert {(r["source"], r["partition"], r["lead_time_s"]) for r in rows} == {
        ("labelstudio", DAY, 3.0)}
    assert flow.snapshot.published.status == "merged"
    assert flow.labels_after_pull == flow.snapshot.published.main_after
    assert flow.store.stat_object("labels", table_key(SNAPSHOT_TABLE, DAY)).checksum == \
        flow.snapshot.checksum

    again = flow.snapshot_again.done.metadata(SNAPSHOT_TABLE)
    assert again["count_tasks_changed"] == 0 and again["count_tasks_deleted"] == 0
    assert "lakefs_commit" not in again and again["labelstudio_requests"] <= 4
    assert flow.snapshot_again.checksum == flow.snapshot.checksum
    assert flow.snapshot_again.published.status == "nothing_to_publish"


def test_labeled_annotations_pin_every_row_to_the_labels_commit(flow):
    main_before = flow.store.head("main")
    done = materialize(flow.resources, "labeled_annotations",
                       tags={LABELS_COMMIT_TAG: flow.labels_after_pull})
    rows = done.run.day_rows("labeled_annotations", DAY)
    assert len(rows) == len(flow.snapshot.rows)
    assert {r["label_revision"] for r in rows} == {flow.labels_after_pull}
    assert sorted(r["annotation_id"] for r in rows) == sorted(
        r["annotation_id"] for r in flow.snapshot.rows)
    meta = done.metadata("labeled_annotations")
    assert meta["label_revision"] == flow.labels_after_pull
    assert meta["count_annotations"] == len(rows) and meta["count_annotations_quarantined"] == 0
    assert meta["sources"] == {"labelstudio": len(rows)}
    assert done.check("labeled_annotations_contract").passed
    assert flow.store.head("main") == main_before  # materialized, not published


def test_prelabels_reach_label_studio_for_the_unlabeled_tasks_only_and_once(flow):
    meta = flow.prelabels.done.metadata("prelabels")
    version = meta["model_version"]
    assert version.startswith("tinydet-") and meta["count_prelabeled"] == FRAMES - LABELED
    assert meta["training_frames"] == LABELED
    assert 0 <= meta["review_needed_at_precision_0.9"] <= FRAMES - LABELED  # against true boxes
    unlabeled = {r["sha256"]: r["ls_task_id"] for r in flow.tasks.rows
                 if r["sha256"] not in flow.posted}
    assert {(r["image_sha256"], r["ls_task_id"]) for r in flow.prelabels.rows} == \
        set(unlabeled.items())
    assert {r["model_version"] for r in flow.prelabels.rows} == {version}
    assert all(0.0 <= r["uncertainty"] <= 1.0 for r in flow.prelabels.rows)
    # The weights of the version are kept with its pre-labels, on the labels branch.
    labels = flow.audit_queue.published.main_after
    assert flow.store.stat_object(labels, prelabel_model_key(version)) is not None
    predictions = flow.predictions_after_first
    assert sorted(p.task for p in predictions) == sorted(unlabeled.values())
    for p in predictions:
        assert p.model_version == version and 0.0 <= p.score <= 1.0
        assert all(0.0 <= r["score"] <= 1.0 for r in p.result)

    # Same labels, same model: nothing is sent twice.
    again = flow.prelabels_again.done.metadata("prelabels")
    assert again["model_version"] == version and again["count_prelabeled"] == FRAMES - LABELED
    assert sorted(p.id for p in flow.client.sdk.predictions.list(project=flow.project)) == \
        sorted(p.id for p in predictions)


def test_audit_queue_ranks_the_prelabeled_frames_by_uncertainty_with_task_links(flow):
    queue = flow.audit_queue.rows
    uncertainty = {r["image_sha256"]: r["uncertainty"] for r in flow.prelabels.rows}
    assert [q["rank"] for q in queue] == list(range(1, FRAMES - LABELED + 1))
    assert [q["priority"] for q in queue] == sorted((q["priority"] for q in queue), reverse=True)
    assert {q["image_sha256"] for q in queue} == set(uncertainty)
    assert all(q["priority"] == round(uncertainty[q["image_sha256"]], 6) for q in queue)
    url = flow.resources["label_studio"].url
    assert all(q["reasons"] == "model_uncertain"
               and q["url"] == f"{url}/projects/{flow.project}/data?task={q['ls_task_id']}"
               for q in queue)
    assert flow.audit_queue.done.metadata("audit_queue")["count_queued"] == len(queue)
    assert flow.audit_queue.published.status == "merged"
    labels = flow.audit_queue.published.main_after
    assert flow.store.stat_object(labels, table_key("audit_queue", DAY)).checksum == \
        flow.audit_queue.checksum
