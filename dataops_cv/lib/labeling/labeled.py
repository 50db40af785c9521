"""A day's human labels as the canonical annotation table, read from one commit of the labels
branch: the Label Studio snapshot and the label files people or vendors dropped there."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataops_cv.lib.acquisition.labels import import_dropped_labels
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA, BoxRules
from dataops_cv.lib.core.quarantine import QuarantineRecord, Reason
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.run_branch import RefView


@dataclass
class LabeledDay:
    rows: list[dict] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # boxes per label source


def _snapshot(labels: RefView, partition: str, frames: Sequence[dict], day: LabeledDay) -> None:
    snap_path = layout.table_key(layout.SNAPSHOT_TABLE, partition)
    if not labels.exists(snap_path):
        return
    present = {str(f["sha256"]) for f in frames}
    taken = 0
    for r in labels.rows(snap_path):
        row = {k: r[k] for k in ANNOTATION_SCHEMA.names} | {"label_revision": labels.ref}
        if row["image_sha256"] in present:
            day.rows.append(row)
            taken += 1
        else:
            day.quarantine.append(QuarantineRecord(
                f"lakefs://{labels.store.repository}/{labels.ref}/{snap_path}"
                f"#{r['annotation_id']}", "annotation", Reason.MISSING_IMAGE,
                f"frame {row['image_sha256']} is not among {partition}'s frames"))
    day.sources["labelstudio"] = taken
    # Boxes the pull set aside count against the day's labels (the contract's quarantine rate);
    # skipped or empty annotations are not boxes and stay in the snapshot's table.
    for q in labels.rows(layout.quarantine_key(layout.SNAPSHOT_TABLE, partition)):
        if q["reason"] != Reason.EMPTY_ANNOTATION:
            day.quarantine.append(QuarantineRecord(**{**q, "reason": Reason(q["reason"])}))


def _drop(labels: RefView, partition: str, frames: Sequence[dict], taxonomy: Sequence[str],
          day: LabeledDay, box_rules: BoxRules | None) -> None:
    prefix = layout.drop_prefix(partition)
    drop = list(labels.list(prefix))
    if not drop:
        return
    with tempfile.TemporaryDirectory(prefix="label-drop-") as tmp:
        for obj in drop:
            dest = Path(tmp) / obj.path[len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(labels.read(obj.path))
        result = import_dropped_labels(
            Path(tmp), list(frames), labels.ref, tuple(taxonomy),
            read_frame=lambda f: labels.read(str(f["object_key"])),
            uri_prefix=f"lakefs://{labels.store.repository}/{labels.ref}/{prefix}",
            box_rules=box_rules)
    day.rows.extend(result.rows)
    day.quarantine.extend(result.quarantine)
    day.sources[result.format] = len(result.rows)


def labeled_day(labels: RefView | None, partition: str, frames: Sequence[dict],
                taxonomy: Sequence[str], box_rules: BoxRules | None = None) -> LabeledDay:
    """The day's boxes from the labels commit ``labels`` (None: no labels branch yet), each
    naming that commit as its ``label_revision``, sorted by image and annotation id; boxes of
    frames the day does not have are quarantined as ``missing_image``."""
    day = LabeledDay()
    if labels is not None:
        _snapshot(labels, partition, frames, day)
        _drop(labels, partition, frames, taxonomy, day, box_rules)
    day.rows.sort(key=lambda r: (r["image_sha256"], r["annotation_id"]))
    return day
