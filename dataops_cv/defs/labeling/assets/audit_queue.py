"""The audit queue: the day's frames ranked for human review."""

import dagster as dg

from dataops_cv.defs.labeling.assets.tasks import TASKS_TABLE
from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import LabelStudioResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.defs.tags import LABELS_TAGS
from dataops_cv.lib.labeling.audit import QUEUE_SCHEMA, audit_queue_rows
from dataops_cv.lib.labeling.qa import agreement_summary, task_agreements
from dataops_cv.lib.lakefs.layout import SNAPSHOT_TABLE, table_key


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="labeling",
    kinds={"labelstudio", "lakefs", "parquet"},
    deps=["prelabels", "label_snapshot"],
    tags=LABELS_TAGS,
    code_version="1",
)
def audit_queue(context: dg.AssetExecutionContext, lakefs: LakeFSResource,
                label_studio: LabelStudioResource) -> dg.MaterializeResult:
    """The day's frames ranked for human review: where the model is least sure, and where
    annotators disagree, most urgent first, with a link to each Label Studio task."""
    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    tasks = {str(r["sha256"]): (int(r["ls_task_id"]), int(r["ls_project"]))
             for r in run.day_rows(TASKS_TABLE, partition)}
    uncertain = {str(r["image_sha256"]): float(r["uncertainty"])
                 for r in run.day_rows("prelabels", partition)}
    agreements = {a.image_sha256: a
                  for a in task_agreements(run.day_rows(SNAPSHOT_TABLE, partition))}
    queue = audit_queue_rows(tasks, uncertain, agreements, label_studio.url)
    path = table_key("audit_queue", partition)
    run.put_rows(path, queue, QUEUE_SCHEMA)
    commit = run.commit(f"audit_queue {partition}: {len(queue)} frames to review")
    top = "\n".join(f"| {q['rank']} | [{q['ls_task_id']}]({q['url']}) | {q['priority']:.3f} | "
                    f"{q['reasons']} |" for q in queue[:10])
    summary = agreement_summary(list(agreements.values()))
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "count_queued": len(queue),
        "count_disagreements": int(summary["disagreements"]),
        **{f"qa_{k}": dg.MetadataValue.float(v) for k, v in summary.items()},
        **table_metadata(table=path),
        "top": dg.MetadataValue.md("| rank | task | priority | why |\n|---|---|---|---|\n" + top
                                   if queue else "_nothing to review_"),
    })
