"""Labeling end to end against a real Label Studio, a real lakeFS and real Dagster runs.

Annotations are posted through Label Studio's API as a person would; pulls, the labels branch,
the labeled-commit sensor and the labeled_annotations runs are all the product's own code.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

import dagster as dg
import httpx
import pytest

from dataops_cv.definitions import defs
from dataops_cv.defs.jobs import (
    LABEL_PULL_JOB,
    LABELED_ANNOTATIONS_JOB,
    LABELING_TASKS_JOB,
)
from dataops_cv.defs.tags import LABELS_COMMIT_TAG
from dataops_cv.lib.core.partitions import folder
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.labeling.labelstudio_client import PULL_OVERLAP, LabelStudioClient
from dataops_cv.lib.lakefs.layout import drop_prefix, table_key
from dataops_cv.runner import run_pipeline
from tests.conftest import free_port

pytestmark = pytest.mark.usefixtures("in_process_runs")

W, H = 320, 240
# What a labeled day needs on main: frames, and the fused samples its augmented variants use.
DAY_ASSETS = ["raw_frames", "sensor_logs", "fused_samples"]
SMALL_DAY = {"resources": {"capture_source": {"config": {
    "synthetic_sessions": 1, "synthetic_frames": 2}}}}  # 1 session x 2 cameras x 2 frames


@pytest.fixture
def label_studio(label_studio_server, monkeypatch):
    """The session's Label Studio, with a project of this test's own (named in the environment
    so that Dagster's step processes use it too)."""
    env = label_studio_server.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    project = f"t-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("DATAOPS_CV_LABEL_STUDIO_PROJECT", project)
    client = LabelStudioClient(env["LABEL_STUDIO_URL"], env["LABEL_STUDIO_API_KEY"])
    yield client, project
    client.close()


def _ok(report):
    assert report.status == "SUCCESS", report.error
    return report


def _frames_and_tasks(day, instance):
    _ok(run_pipeline(day, select=DAY_ASSETS, run_config=SMALL_DAY, instance=instance))
    return _ok(run_pipeline(day, job_name=LABELING_TASKS_JOB, instance=instance))


def _tasks(client: LabelStudioClient, title: str) -> list[dict]:
    (project,) = [p for p in client.sdk.projects.list(title=title) if p.title == title]
    return sorted(client.pages("tasks", project=project.id, fields="all", resolve_uri=False),
                  key=lambda t: t["id"])


def rect(label, x, y, w, h):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": W, "original_height": H,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                      "rectanglelabels": [label]}}


def _post(client, task, boxes, user=None):
    kwargs = {"completed_by": user} if user is not None else {}
    client.sdk.annotations.create(task["id"], result=[rect(*b) for b in boxes], lead_time=3.0,
                                  **kwargs)
    # What a pixel-exact pull must give back, per posted box.
    return [(task["data"]["sha256"], b[0], b[1] * W / 100, b[2] * H / 100,
             (b[1] + b[3]) * W / 100, (b[2] + b[4]) * H / 100) for b in boxes]


def _labels_table(store, ref, day):
    return from_parquet_bytes(store.get_object(ref, table_key("label_snapshot", day))).to_pylist()


def _sensor_tick(instance, lakefs, cursor):
    sensor = defs().resolve_sensor_def("labeled_commit_sensor")
    ctx = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), cursor=cursor,
                                  repository_def=defs().get_repository_def(),
                                  resources={"lakefs": lakefs})
    return sensor.evaluate_tick(ctx)


def test_pull_is_exact_incremental_and_drives_the_labeled_commit_sensor(
        lakefs, store, dagster_instance, label_studio):
    client, title = label_studio
    day = "2026-05-01|synthetic"  # capture day | source
    first = _frames_and_tasks(day, dagster_instance)
    assert first.counts["tasks_created"] == 4 and first.publish_status == "merged"
    again = _ok(run_pipeline(day, job_name=LABELING_TASKS_JOB, instance=dagster_instance))
    assert again.counts["tasks_created"] == 0 and again.counts["tasks_existing"] == 4
    tasks = _tasks(client, title)
    assert len(tasks) == 4  # re-sync made no duplicates
    assert tasks[0]["data"]["image"].startswith(f"s3://{store.repository}/")
    # Label Studio serves each task's image from lakeFS (through the project's S3 storage),
    # byte for byte the frame the task is keyed by.
    resolved = client.sdk.tasks.get(str(tasks[0]["id"])).data["image"]
    image = httpx.get(client.url + resolved, follow_redirects=True, timeout=30,
                      headers={"Authorization": f"Token {os.environ['LABEL_STUDIO_API_KEY']}"})
    assert image.status_code == 200
    assert hashlib.sha256(image.content).hexdigest() == tasks[0]["data"]["sha256"]

    second = client.sdk.users.create(email=f"{title}@example.org", username=title,
                                     password=uuid.uuid4().hex)
    posted = _post(client, tasks[0], [("car", 10, 20, 30, 40), ("pedestrian", 55.5, 5.25, 10, 30)])
    posted += _post(client, tasks[0], [("car", 11, 21, 29, 39)], user=second.id)
    # Every pull re-reads the overlap window before its cursor (dropping what it holds): keep
    # task 0 outside it, so the later pull's fetch count is exactly its changed tasks.
    time.sleep(PULL_OVERLAP.total_seconds() + 0.2)
    posted += _post(client, tasks[1], [("cyclist", 0, 0, 12.345, 67.891)])

    pull = _ok(run_pipeline(None, job_name=LABEL_PULL_JOB, instance=dagster_instance))
    assert pull.publish_status == "merged" and store.head("labels") == pull.main_after
    assert pull.counts["tasks_changed"] == 4 and pull.counts["boxes"] == 4
    rows = _labels_table(store, "labels", day)
    got = sorted((r["image_sha256"], r["class_name"], r["x_min"], r["y_min"], r["x_max"],
                  r["y_max"]) for r in rows)
    assert len(got) == len(posted)
    for g, p in zip(got, sorted(posted), strict=True):
        assert g[:2] == p[:2] and all(abs(a - b) <= 0.5 for a, b in zip(g[2:], p[2:], strict=True))
    assert {r["annotator"] for r in rows} == {"admin@dataops-cv.local", f"{title}@example.org"}
    assert all(r["lead_time_s"] == 3.0 and r["created_at"] is not None for r in rows)
    (commit,) = [c for c in store.log("labels", amount=10) if "labelstudio_cursor" in c.metadata]
    assert commit.metadata["labelstudio_project"] and commit.metadata["labelstudio_cursor"]
    assert commit.metadata["partitions"] == day

    labels_head = store.head("labels")
    unchanged = _ok(run_pipeline(None, job_name=LABEL_PULL_JOB, instance=dagster_instance))
    assert store.head("labels") == labels_head  # nothing written, no commit
    assert unchanged.publish_status == "nothing_to_publish"
    mat = _materialization(dagster_instance, unchanged.run_id, "label_snapshot")
    assert mat["count_tasks_changed"] == 0 and mat["labelstudio_requests"] <= 4

    posted_later = _post(client, tasks[1], [("car", 40, 40, 10, 10)], user=second.id)
    posted_later += _post(client, tasks[2], [("bus", 1, 2, 3, 4)])
    posted_later += _post(client, tasks[3], [("truck", 5, 6, 7, 8)])
    later = _ok(run_pipeline(None, job_name=LABEL_PULL_JOB, instance=dagster_instance))
    mat = _materialization(dagster_instance, later.run_id, "label_snapshot")
    assert mat["count_tasks_fetched"] == 3 and mat["count_tasks_changed"] == 3
    assert mat["labelstudio_requests"] <= 5  # project, task count, one page, users
    assert len(_labels_table(store, "labels", day)) == len(posted) + len(posted_later)

    tick = _sensor_tick(dagster_instance, lakefs, None)
    (request,) = tick.run_requests
    head = store.head("labels")
    assert request.partition_key == day and request.tags[LABELS_COMMIT_TAG] == head
    assert tick.cursor == head
    assert _sensor_tick(dagster_instance, lakefs, tick.cursor).run_requests == []

    labeled = _ok(run_pipeline(day, job_name=LABELED_ANNOTATIONS_JOB, instance=dagster_instance,
                               extra_tags=request.tags))
    assert labeled.publish_status == "merged"
    assert {c["name"]: c["passed"] for c in labeled.checks}["labeled_annotations_contract"]
    table = from_parquet_bytes(store.get_object(
        "main", table_key("labeled_annotations", day))).to_pylist()
    assert len(table) == 7 and {r["label_revision"] for r in table} == {head}


def _materialization(instance, run_id, asset):
    (event,) = [e for e in instance.all_logs(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event.asset_key.to_user_string() == asset]
    meta = event.dagster_event.event_specific_data.materialization.metadata
    return {k: v.value for k, v in meta.items()}


def test_a_vendor_coco_drop_on_the_labels_branch_requests_one_run_for_its_day(
        lakefs, store, dagster_instance):
    day = "2026-05-02|synthetic"  # capture day | source
    _ok(run_pipeline(day, select=DAY_ASSETS, run_config=SMALL_DAY, instance=dagster_instance))
    frames = from_parquet_bytes(store.get_object("main", table_key("raw_frames", day))).to_pylist()
    store.create_branch("labels", source="main")
    start = _sensor_tick(dagster_instance, lakefs, None)
    assert start.run_requests == [] and start.cursor == store.head("labels")

    coco = {"images": [{"id": 1, "file_name": frames[0]["rel_path"], "width": W, "height": H}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [8, 9, 40, 30]}],
            "categories": [{"id": 3, "name": "car"}]}
    store.put_object("labels", f"{drop_prefix(day)}vendor/coco.json", json.dumps(coco).encode(),
                     "application/json")
    store.commit("labels", "vendor drop: one car")
    tick = _sensor_tick(dagster_instance, lakefs, start.cursor)
    (request,) = tick.run_requests
    assert request.partition_key == day and tick.cursor == store.head("labels")
    assert request.run_key == f"{tick.cursor}:{day}"
    assert _sensor_tick(dagster_instance, lakefs, tick.cursor).run_requests == []

    labeled = _ok(run_pipeline(day, job_name=LABELED_ANNOTATIONS_JOB, instance=dagster_instance,
                               extra_tags=request.tags))
    (row,) = from_parquet_bytes(store.get_object(
        "main", table_key("labeled_annotations", day))).to_pylist()
    assert (row["class_name"], row["source"], row["label_revision"]) == ("car", "coco", tick.cursor)
    assert (row["x_min"], row["y_min"], row["x_max"], row["y_max"]) == (8, 9, 48, 39)
    assert labeled.publish_status == "merged"
    # The run rebuilt what depends on the labels: the labeled frame's variants carry its box.
    variants = from_parquet_bytes(store.get_object(
        "main", table_key("augmented_samples", day))).to_pylist()
    mine = [v for v in variants if v["source_sha256"] == row["image_sha256"]]
    assert mine and {v["label_source"] for v in mine} == {"labeled"}
    assert sum(v["boxes"] + v["boxes_dropped"] for v in mine) == len(mine)


def test_bad_labels_are_quarantined_deleted_tasks_leave_and_the_contract_blocks(
        lakefs, store, dagster_instance, label_studio):
    client, title = label_studio
    day = "2026-05-03|synthetic"  # capture day | source
    _frames_and_tasks(day, dagster_instance)
    tasks = _tasks(client, title)
    _post(client, tasks[0], [("car", 10, 10, 20, 20), ("dragon", 30, 30, 10, 10)])
    _post(client, tasks[1], [("car", 95, 10, 30, 10)])  # 125% of the width
    _post(client, tasks[2], [])  # submitted without boxes
    _post(client, tasks[3], [("bus", 10, 10, 20, 20)])
    _ok(run_pipeline(None, job_name=LABEL_PULL_JOB, instance=dagster_instance))
    assert len(_labels_table(store, "labels", day)) == 2
    q_path = f"quarantine/label_snapshot/{folder(day)}/_quarantine.parquet"
    reasons = sorted(r["reason"] for r in from_parquet_bytes(
        store.get_object("labels", q_path)).to_pylist())
    assert reasons == ["box_out_of_bounds", "empty_annotation", "unknown_class"]

    client.sdk.tasks.delete(str(tasks[3]["id"]))
    deleted = _ok(run_pipeline(None, job_name=LABEL_PULL_JOB, instance=dagster_instance))
    assert _materialization(dagster_instance, deleted.run_id, "label_snapshot")[
        "count_tasks_deleted"] == 1
    assert [r["class_name"] for r in _labels_table(store, "labels", day)] == ["car"]
    quarantine = from_parquet_bytes(store.get_object("labels", q_path)).to_pylist()
    (gone,) = [q for q in quarantine if q["reason"] == "task_deleted"]
    assert '"bus"' in gone["detail"]  # nothing is lost: the box is in the record

    main_before = store.head("main")
    blocked = run_pipeline(day, job_name=LABELED_ANNOTATIONS_JOB, instance=dagster_instance)
    assert blocked.status == "FAILURE" and store.head("main") == main_before
    check = {c["name"]: c for c in blocked.checks}["labeled_annotations_contract"]
    assert not check["passed"]  # 3 of 4 boxes quarantined, far above the 1% limit


def test_an_unreachable_label_studio_fails_the_pull_and_leaves_the_labels_branch(
        lakefs, store, dagster_instance, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-used")
    store.create_branch("labels", source="main")
    before = store.head("labels")
    report = run_pipeline(None, job_name=LABEL_PULL_JOB, instance=dagster_instance)
    assert report.status == "FAILURE" and report.publish_status == "not_published"
    assert "failed after 4 attempts" in report.error and "Label Studio at" in report.error
    assert store.head("labels") == before and report.main_after == before
