"""Label Studio tasks to canonical rows, pull planning and partition merges (pure)."""

from __future__ import annotations

import json

import pytest

from dataops_cv.lib.core.quarantine import Reason
from dataops_cv.lib.labeling.labelstudio_client import (
    PULL_OVERLAP,
    label_config,
    parse_ls_time,
    pull_start,
    updated_filter,
)
from dataops_cv.lib.labeling.snapshot import convert_task, merge_partition, plan_pull, task_uri

SERVER = "http://127.0.0.1:8080"
TAXONOMY = ("car", "pedestrian")
SHA = "a" * 64


def rect(label, x=10.0, y=20.0, w=30.0, h=40.0, rotation=0.0, size=(320, 240), rid="r1"):
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": size[0], "original_height": size[1],
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                      "rectanglelabels": [label]}}


def task(annotations, task_id=7, updated="2026-11-23T10:00:00.123456Z", **data):
    return {"id": task_id, "updated_at": updated,
            "data": {"image": "s3://r/c/frames/x.png", "sha256": SHA, "partition": "2026-05-01",
                     "width": 320, "height": 240, **data},
            "annotations": annotations}


def ann(result, ann_id=1, by=1, **extra):
    return {"id": ann_id, "completed_by": by, "result": result, "lead_time": 4.5,
            "created_at": "2026-11-23T09:59:00Z", "updated_at": "2026-11-23T10:00:00Z", **extra}


def test_percent_boxes_become_pixels_for_every_annotator():
    t = task([ann([rect("car")], ann_id=1, by=1), ann([rect("pedestrian", rid="r2")], 2, by=2)])
    out = convert_task(t, SERVER, 3, {1: "a@x", 2: "b@x"}, TAXONOMY)
    assert out.quarantine == []
    assert [(r["annotator"], r["class_name"], r["class_id"]) for r in out.rows] == [
        ("a@x", "car", 0), ("b@x", "pedestrian", 1)]
    row = out.rows[0]
    assert (row["x_min"], row["y_min"], row["x_max"], row["y_max"]) == pytest.approx(
        (32.0, 48.0, 128.0, 144.0))
    assert row["lead_time_s"] == 4.5 and row["ls_task_id"] == 7 and row["ls_annotation_id"] == 1
    assert row["review_state"] == "submitted" and row["source"] == "labelstudio"
    assert row["partition"] == "2026-05-01" and row["image_sha256"] == SHA
    assert len({r["annotation_id"] for r in out.rows}) == 2


@pytest.mark.parametrize("result, reason", [
    ([rect("dragon")], Reason.UNKNOWN_CLASS),
    ([rect("car", x=95.0, w=30.0)], Reason.BOX_OUT_OF_BOUNDS),  # 125% of the width
    ([rect("car", size=(640, 480))], Reason.BOX_OUT_OF_BOUNDS),  # drawn on another image size
    ([rect("car", w=0.0)], Reason.BOX_DEGENERATE),
    ([rect("car", w=0.25)], Reason.BOX_TOO_SMALL),  # 0.8 px of a 320 px wide image
    ([rect("car", w=90.0, h=0.5)], Reason.BOX_IMPLAUSIBLE_ASPECT),  # 288 x 1.2 px
    ([], Reason.EMPTY_ANNOTATION),
])
def test_bad_results_are_quarantined_with_their_reason(result, reason):
    out = convert_task(task([ann(result)]), SERVER, 3, {}, TAXONOMY)
    assert out.rows == []
    assert [q.reason for q in out.quarantine] == [reason]
    assert out.quarantine[0].source_uri.startswith(task_uri(SERVER, 3, 7) + "#annotation=1")


def test_skipped_annotations_and_unlinked_tasks_are_quarantined():
    skipped = convert_task(task([ann([rect("car")], was_cancelled=True)]), SERVER, 3, {}, TAXONOMY)
    assert [q.reason for q in skipped.quarantine] == [Reason.EMPTY_ANNOTATION]
    assert "skipped" in skipped.quarantine[0].detail
    unlinked = convert_task({"id": 9, "updated_at": "2026-11-23T10:00:00Z",
                             "data": {"image": "https://x/y.png"},
                             "annotations": [ann([rect("car")])]}, SERVER, 3, {}, TAXONOMY)
    assert unlinked.partition is None and unlinked.rows == []
    assert [q.reason for q in unlinked.quarantine] == [Reason.MISSING_IMAGE]


def test_a_rotated_box_becomes_its_enclosing_box_marked_for_review():
    out = convert_task(task([ann([rect("car", x=50, y=50, w=10, h=10, rotation=90)])]),
                       SERVER, 3, {}, TAXONOMY)
    (row,) = out.rows
    assert row["review_state"] == "rotated_enclosing_box"
    # 32 x 24 px turned 90 degrees clockwise about its top-left corner (160, 120): 24 wide to
    # the left of the corner, 32 tall below it.
    assert (row["x_min"], row["y_min"], row["x_max"], row["y_max"]) == pytest.approx(
        (136.0, 120.0, 160.0, 152.0))


def test_plan_pull_drops_what_the_overlap_window_reread():
    seen = task([], task_id=1, updated="2026-11-23T10:00:00.000001Z")
    new = task([], task_id=2, updated="2026-11-23T10:00:01Z")
    index = {1: ("2026-05-01", parse_ls_time(seen["updated_at"]).isoformat()),
             5: ("2026-05-02", "2026-11-20T00:00:00+00:00")}
    plan = plan_pull([seen, new], index, parse_ls_time(seen["updated_at"]), live_ids={1, 2})
    assert plan.fetched == 2
    assert [t["id"] for t in plan.changed] == [2]
    assert plan.deleted == {5: "2026-05-02"}
    assert plan.partitions == ["2026-05-01", "2026-05-02"]
    assert plan.cursor == parse_ls_time(new["updated_at"])
    assert plan_pull([seen], index, None, None).empty


def test_merge_replaces_changed_tasks_and_moves_deleted_ones_to_quarantine():
    old = convert_task(task([ann([rect("car")])], task_id=1), SERVER, 3, {}, TAXONOMY)
    gone = convert_task(task([ann([rect("pedestrian")], ann_id=4)], task_id=2), SERVER, 3, {},
                        TAXONOMY)
    rows, quarantine = merge_partition(old.rows + gone.rows, [], [], [], SERVER, 3)
    edited = convert_task(task([ann([rect("car", x=50)], ann_id=1)], task_id=1), SERVER, 3, {},
                          TAXONOMY)
    rows, quarantine = merge_partition(rows, quarantine, [edited], [2], SERVER, 3)
    assert [(r["ls_task_id"], r["x_min"]) for r in rows] == [(1, 160.0)]
    (q,) = quarantine
    assert q["reason"] == Reason.TASK_DELETED and '"pedestrian"' in q["detail"]


def test_label_config_and_query_forms():
    config = label_config(["car", "a&b"])
    assert '<Label value="car"/>' in config and '<Label value="a&amp;b"/>' in config
    query = json.loads(updated_filter(parse_ls_time("2026-11-23T10:00:05.5Z")))
    item = query["filters"]["items"][0]
    assert item["value"] == "2026-11-23T10:00:03.500000Z"  # the cursor minus the overlap
    assert item["operator"] == "greater" and query["ordering"] == ["tasks:updated_at"]


def test_the_re_read_window_ends_at_the_previous_pull_not_at_the_cursor():
    cursor = parse_ls_time("2026-11-23T10:00:00Z")
    # Pulled long after the last change: only a millisecond before the cursor is re-read.
    assert pull_start(cursor, parse_ls_time("2026-11-23T11:00:00Z")) == parse_ls_time(
        "2026-11-23T09:59:59.999Z")
    # Pulled right after it: writes in flight then may sit up to the overlap before the pull.
    assert pull_start(cursor, parse_ls_time("2026-11-23T10:00:01Z")) == parse_ls_time(
        "2026-11-23T09:59:59Z")
    assert pull_start(cursor, None) == cursor - PULL_OVERLAP
