"""Label Studio tasks -> the canonical annotation table per capture day, updated incrementally.

A snapshot is, per partition, every box of every annotator on that day's tasks (the canonical
columns plus the task, annotation, and lead time), a quarantine table, and one small index of
all tasks seen (task id, partition, ``updated_at``). A pull changes only the partitions whose tasks
changed or were deleted; an unchanged project changes nothing.

Conversion rules:

* Boxes are percent of ``original_width``/``original_height``; converted to pixels with the same
  rotation rule as the Label Studio importer
  (:func:`dataops_cv.lib.acquisition.importers.labelstudio.result_box`).
  The declared size must be the frame's displayed size (a box drawn on another image is
  quarantined), then the common 1 px tolerance applies (percent outside 0..100 is out of bounds).
* Every annotation of every annotator is kept; ``review_state`` is ``ground_truth`` for an
  annotation marked so, else ``submitted`` (or the rotated-box marker).
* A submitted annotation without boxes, or a skipped one, is quarantined as ``empty_annotation``:
  Label Studio cannot tell "nothing here" from "forgot", so it is not taken as "no objects".
* A label outside the taxonomy is ``unknown_class``; a task without our ``sha256``/``partition``
  (made by hand in Label Studio) is ``missing_image``; the labels of a deleted task leave the
  snapshot and are quarantined as ``task_deleted`` with their boxes in the detail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from dataops_cv.lib.acquisition.importers.common import RecordRejected, validate_box
from dataops_cv.lib.acquisition.importers.labelstudio import annotation_meta, result_box
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA, Annotation, BoxRules, annotation_id
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason
from dataops_cv.lib.labeling.labelstudio_client import parse_ls_time

SOURCE = "labelstudio"

SNAPSHOT_SCHEMA = pa.schema(list(ANNOTATION_SCHEMA) + [
    pa.field("partition", pa.string()),
    pa.field("ls_project", pa.int64()),
    pa.field("ls_task_id", pa.int64()),
    pa.field("ls_annotation_id", pa.int64()),
    pa.field("lead_time_s", pa.float64()),
])

TASK_INDEX_SCHEMA = pa.schema([
    ("ls_task_id", pa.int64()),
    ("partition", pa.string()),
    ("sha256", pa.string()),
    ("updated_at", pa.string()),  # exactly as Label Studio reported it, normalised to UTC ISO
])


def task_uri(server: str, project: int, task_id: int) -> str:
    return f"{server.rstrip('/')}/projects/{project}/data?task={task_id}"


@dataclass
class TaskLabels:
    """One task's boxes and quarantine records."""

    task_id: int
    partition: str | None
    sha256: str | None
    updated_at: str
    rows: list[dict] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)


def convert_task(task: Mapping, server: str, project: int, users: Mapping[int, str],
                 taxonomy: Sequence[str], box_rules: BoxRules | None = None) -> TaskLabels:
    """Every annotation of one Label Studio task (as the API returns it) in canonical rows;
    boxes that break ``box_rules`` (default :class:`BoxRules`) are quarantined."""
    task_id = int(task["id"])
    data = task.get("data") or {}
    sha, partition = data.get("sha256"), data.get("partition")
    updated = parse_ls_time(task["updated_at"]).isoformat()
    out = TaskLabels(task_id, partition if isinstance(partition, str) else None,
                     sha if isinstance(sha, str) else None, updated)
    base_uri = task_uri(server, project, task_id)
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    if out.sha256 is None or out.partition is None:
        for ann in annotations or [{}]:
            out.quarantine.append(QuarantineRecord(
                f"{base_uri}#annotation={ann.get('id')}", "annotation", Reason.MISSING_IMAGE,
                "task was not made by dataops-cv's task sync (its data has no sha256/partition), "
                "so its image is unknown"))
        return out
    size = (data.get("width"), data.get("height"))
    classes = {name: i for i, name in enumerate(taxonomy)}
    for ann in annotations:
        _convert_annotation(ann, out, base_uri, project, size, users, classes,
                            box_rules or BoxRules())
    return out


def _convert_annotation(ann: dict, out: TaskLabels, base_uri: str, project: int,
                        size: tuple, users: Mapping[int, str], classes: Mapping[str, int],
                        rules: BoxRules) -> None:
    ann_id = int(ann["id"])
    uri = f"{base_uri}#annotation={ann_id}"
    by = ann.get("completed_by")
    who = users.get(int(by), str(by)) if isinstance(by, int) else by
    rects = [r for r in ann.get("result") or []
             if isinstance(r, dict) and r.get("type") == "rectanglelabels"]
    if ann.get("was_cancelled") or not rects:
        why = "was skipped" if ann.get("was_cancelled") else "has no boxes"
        out.quarantine.append(QuarantineRecord(
            uri, "annotation", Reason.EMPTY_ANNOTATION,
            f"annotation {ann_id} by {who} {why}: not taken as 'no objects in this image'"))
        return
    try:
        meta = annotation_meta({**ann, "completed_by": who})
    except RecordRejected as exc:
        out.quarantine.append(QuarantineRecord(uri, "annotation", exc.reason, exc.detail))
        return
    lead = ann.get("lead_time")
    for index, res in enumerate(rects):
        record = f"{uri}/result={res.get('id', index)}"
        try:
            labels, width, height, coords, state = result_box(res)
            if size != (None, None) and (width, height) != size:
                raise RecordRejected(
                    Reason.BOX_OUT_OF_BOUNDS,
                    f"box drawn on a {width}x{height} image, but the frame is "
                    f"{size[0]}x{size[1]}")
            x0, y0, x1, y1 = validate_box(coords, width, height)
            implausible = rules.problem(x0, y0, x1, y1)
            if implausible is not None:
                raise RecordRejected(*implausible)
        except RecordRejected as exc:
            out.quarantine.append(QuarantineRecord(record, "annotation", exc.reason, exc.detail))
            continue
        for label in labels:
            native = record if len(labels) == 1 else f"{record}/label={label}"
            if label not in classes:
                out.quarantine.append(QuarantineRecord(
                    native, "annotation", Reason.UNKNOWN_CLASS,
                    f"label {label!r} is not in the taxonomy {list(classes)}"))
                continue
            row = Annotation(
                image_sha256=str(out.sha256),
                annotation_id=annotation_id(
                    SOURCE, f"project={project}/task={out.task_id}/annotation={ann_id}/"
                            f"result={res.get('id', index)}/label={label}"),
                class_name=label, class_id=classes[label],
                x_min=x0, y_min=y0, x_max=x1, y_max=y1, source=SOURCE,
                review_state=state or ("ground_truth" if ann.get("ground_truth") else "submitted"),
                **meta,
            ).row()
            row.update(partition=out.partition, ls_project=project, ls_task_id=out.task_id,
                       ls_annotation_id=ann_id,
                       lead_time_s=float(lead) if isinstance(lead, (int, float)) else None)
            out.rows.append(row)


@dataclass
class PullPlan:
    """What one pull found: tasks to (re)convert, tasks deleted, and the next cursor."""

    fetched: int
    changed: list[Mapping]
    deleted: dict[int, str]  # task id -> partition
    cursor: datetime | None

    @property
    def partitions(self) -> list[str]:
        parts = {str((t.get("data") or {}).get("partition")) for t in self.changed
                 if isinstance((t.get("data") or {}).get("partition"), str)}
        return sorted(parts | set(self.deleted.values()))

    @property
    def empty(self) -> bool:
        return not self.changed and not self.deleted


def plan_pull(fetched: Iterable[Mapping], index: Mapping[int, tuple[str, str]],
              cursor: datetime | None, live_ids: set[int] | None) -> PullPlan:
    """Drop what the snapshot already holds (the overlap window re-reads a few tasks).

    Args:
        fetched: tasks returned by the changed-since query.
        index: task id -> (partition, updated_at) of every task the snapshot holds.
        live_ids: every task id in the project now, or None when counts showed no deletion.
    """
    changed, count, newest = [], 0, cursor
    for task in fetched:
        count += 1
        updated = parse_ls_time(task["updated_at"])
        newest = updated if newest is None or updated > newest else newest
        known = index.get(int(task["id"]))
        if known is None or known[1] != updated.isoformat():
            changed.append(task)
    deleted = {}
    if live_ids is not None:
        deleted = {tid: part for tid, (part, _) in index.items() if tid not in live_ids}
    return PullPlan(count, changed, deleted, newest)


def merge_partition(previous_rows: list[dict], previous_quarantine: list[dict],
                    converted: list[TaskLabels], deleted: Iterable[int],
                    server: str, project: int) -> tuple[list[dict], list[dict]]:
    """A partition's new snapshot: previous rows of untouched tasks, plus the converted tasks;
    a deleted task's rows move to the quarantine with their boxes in the detail."""
    deleted = set(deleted)
    replaced = {t.task_id for t in converted} | deleted
    prefixes = tuple(f"{task_uri(server, project, tid)}#" for tid in replaced)
    rows = [r for r in previous_rows if int(r["ls_task_id"]) not in replaced]
    quarantine = [q for q in previous_quarantine if not str(q["source_uri"]).startswith(prefixes)]
    for t in converted:
        rows.extend(t.rows)
        quarantine.extend(q.row() for q in t.quarantine)
    for r in previous_rows:
        if int(r["ls_task_id"]) in deleted:
            box = {k: r[k] for k in ("class_name", "x_min", "y_min", "x_max", "y_max",
                                     "annotator", "image_sha256")}
            quarantine.append(QuarantineRecord(
                f"{task_uri(server, project, int(r['ls_task_id']))}#annotation="
                f"{r['ls_annotation_id']}", "annotation", Reason.TASK_DELETED,
                f"task deleted in Label Studio; its box was {json.dumps(box, default=str)}",
            ).row())
    rows.sort(key=lambda r: (r["image_sha256"], r["annotation_id"]))
    quarantine.sort(key=lambda q: (q["source_uri"], q["reason"]))
    return rows, quarantine
