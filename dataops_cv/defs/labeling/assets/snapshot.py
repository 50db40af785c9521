"""The label snapshot: every annotator's boxes, pulled incrementally from Label Studio onto the
lakeFS labels branch."""

from dataclasses import dataclass

import dagster as dg

from dataops_cv.defs.resources import ContractsResource, LabelStudioResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.tags import LABELS_TAGS
from dataops_cv.lib.core.quarantine import QUARANTINE_SCHEMA
from dataops_cv.lib.labeling.labelstudio_client import parse_ls_time
from dataops_cv.lib.labeling.snapshot import (
    SNAPSHOT_SCHEMA,
    TASK_INDEX_SCHEMA,
    PullPlan,
    convert_task,
    merge_partition,
    plan_pull,
)
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.run_branch import RunBranch


@dataclass
class _Pull:
    project: int
    since: object
    pulled_now: object
    plan: PullPlan
    users: dict
    requests: int


def _pull(label_studio: LabelStudioResource, taxonomy, cursors: dict,
          index_rows: list[dict]) -> _Pull:
    """Ask Label Studio for the tasks changed since the project's cursor, and what was deleted."""
    client = label_studio.client()
    try:
        project = client.ensure_project(label_studio.project_title, taxonomy)
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
        return _Pull(project, since, pulled_now, plan, users, client.requests)
    finally:
        client.close()


def _write_days(run: RunBranch, pull: _Pull, converted: list, url: str) -> dict[str, int]:
    """Merge the changed and deleted tasks into each touched day's snapshot and quarantine."""
    by_partition: dict[str, list] = {}
    for t in converted:
        by_partition.setdefault(t.partition or "", []).append(t)
    counts = {"boxes": 0, "quarantined": 0}
    for partition in sorted(set(by_partition) | set(pull.plan.deleted.values())):
        deleted = [tid for tid, p in pull.plan.deleted.items() if p == partition]
        rows_path = layout.table_key(layout.SNAPSHOT_TABLE, partition) if partition else None
        q_path = (layout.quarantine_key(layout.SNAPSHOT_TABLE, partition) if partition
                  else layout.unlinked_quarantine_key())
        rows, quarantine = merge_partition(
            run.rows(rows_path) if rows_path else [], run.rows(q_path),
            by_partition.get(partition, []), deleted, url, pull.project)
        if rows_path:
            run.put_rows(rows_path, rows, SNAPSHOT_SCHEMA)
        run.put_rows(q_path, quarantine, QUARANTINE_SCHEMA)
        counts["boxes"] += sum(1 for t in by_partition.get(partition, []) for _ in t.rows)
        counts["quarantined"] += sum(len(t.quarantine) for t in by_partition.get(partition, []))
    return counts


@dg.asset(
    group_name="labeling",
    kinds={"labelstudio", "lakefs", "parquet"},
    deps=["labelstudio_tasks"],
    tags=LABELS_TAGS,
    code_version="1",
)
def label_snapshot(
    context: dg.AssetExecutionContext, lakefs: LakeFSResource, label_studio: LabelStudioResource,
    contracts: ContractsResource,
) -> dg.MaterializeResult:
    """Every annotator's boxes from Label Studio per capture day, pulled incrementally (only
    tasks changed since the stored cursor) and committed to the labels branch."""
    run = open_run_branch(context, lakefs)
    taxonomy = contracts.taxonomy()
    cursors = run.read_json(layout.snapshot_cursor_key(), {})
    index_rows = run.rows(layout.snapshot_index_key())
    pull = _pull(label_studio, taxonomy, cursors, index_rows)
    plan, project = pull.plan, pull.project
    base = {"count_tasks_fetched": plan.fetched, "count_tasks_changed": len(plan.changed),
            "count_tasks_deleted": len(plan.deleted), "labelstudio_requests": pull.requests,
            "labelstudio_project": dg.MetadataValue.url(f"{label_studio.url}/projects/{project}")}
    if plan.empty:
        context.log.info(f"Label Studio project {project}: nothing changed since {pull.since}")
        return dg.MaterializeResult(metadata={**base, "partitions": dg.MetadataValue.json([])})

    box_rules = contracts.contract("labeled_annotations").boxes
    converted = [convert_task(t, label_studio.url, project, pull.users, taxonomy, box_rules)
                 for t in plan.changed]
    counts = _write_days(run, pull, converted, label_studio.url)
    kept = {tid: row for tid, row in ((int(r["ls_task_id"]), r) for r in index_rows)
            if tid not in plan.deleted}
    for t in converted:
        kept[t.task_id] = {"ls_task_id": t.task_id, "partition": t.partition, "sha256": t.sha256,
                           "updated_at": t.updated_at}
    run.put_rows(layout.snapshot_index_key(),
                 sorted(kept.values(), key=lambda r: r["ls_task_id"]), TASK_INDEX_SCHEMA)
    cursor = plan.cursor.isoformat() if plan.cursor else None
    cursors[str(project)] = {"cursor": cursor, "labelstudio_url": label_studio.url,
                             "pulled_at": pull.pulled_now.isoformat() if pull.pulled_now else None}
    run.put_json(layout.snapshot_cursor_key(), cursors, indent=2)
    partitions = [p for p in plan.partitions if p]
    commit = run.commit(
        f"{layout.SNAPSHOT_TABLE}: {len(plan.changed)} changed and {len(plan.deleted)} deleted "
        f"tasks of Label Studio project {project} ({', '.join(partitions) or 'no capture day'})",
        {"labelstudio_url": label_studio.url, "labelstudio_project": str(project),
         "labelstudio_cursor": cursor or "", "partitions": ",".join(partitions)})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id), **base,
        "count_boxes": counts["boxes"], "count_quarantined": counts["quarantined"],
        "cursor": dg.MetadataValue.text(cursor or ""),
        "partitions": dg.MetadataValue.json(partitions),
    })
