"""The canonical table of a day's human labels, pinned to one commit of the labels branch."""

import dagster as dg

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.defs.tags import LABELS_COMMIT_TAG
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.labeling.labeled import labeled_day
from dataops_cv.lib.lakefs.layout import table_key


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="labeling",
    kinds={"lakefs", "parquet"},
    deps=["raw_frames", "label_snapshot"],
    code_version="1",
)
def labeled_annotations(context: dg.AssetExecutionContext, lakefs: LakeFSResource,
                        contracts: ContractsResource) -> dg.MaterializeResult:
    """One day's human labels from the labels branch (Label Studio snapshots and vendor drops in
    COCO, VOC, YOLO or Label Studio JSON) as the canonical table, pinned to one labels commit."""
    partition = str(context.partition_key)
    store = lakefs.store()
    run = open_run_branch(context, lakefs)
    frames = run.day_rows("raw_frames", partition)
    revision = context.run.tags.get(LABELS_COMMIT_TAG)
    if revision is None and store.branch_exists(lakefs.labels_branch):
        revision = store.head(lakefs.labels_branch)
    day = labeled_day(run.at(revision) if revision is not None else None, partition, frames,
                      contracts.taxonomy(), contracts.contract("labeled_annotations").boxes)
    table_path = table_key("labeled_annotations", partition)
    run.put_rows(table_path, day.rows, ANNOTATION_SCHEMA)
    q_path = run.put_quarantine("labeled_annotations", partition, day.quarantine)
    commit = run.commit(f"labeled_annotations {partition}: {len(day.rows)} boxes from labels "
                        f"commit {revision or '(no labels branch)'}",
                        {"label_revision": revision or ""})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "count_annotations": len(day.rows),
        "count_annotations_quarantined": len(day.quarantine),
        "label_revision": dg.MetadataValue.text(revision or ""),
        "sources": dg.MetadataValue.json(day.sources),
        **table_metadata(table=table_path, quarantine_table=q_path),
    })
