"""Label Studio tasks for the frames a capture day published on main."""

import dagster as dg
import pyarrow as pa

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LabelStudioResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.defs.tags import LABELS_TAGS
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.lakefs.run_branch import RefView

TASKS_TABLE = "labelstudio_tasks"
TASKS_SCHEMA = pa.schema([("sha256", pa.string()), ("ls_task_id", pa.int64()),
                          ("ls_project", pa.int64())])


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="labeling",
    kinds={"labelstudio", "lakefs"},
    deps=["raw_frames"],
    tags=LABELS_TAGS,
    code_version="1",
)
def labelstudio_tasks(
    context: dg.AssetExecutionContext, lakefs: LakeFSResource, label_studio: LabelStudioResource,
    contracts: ContractsResource,
) -> dg.MaterializeResult:
    """One Label Studio task per published frame of the day (images served from lakeFS), and the
    frame-to-task table on the labels branch."""
    partition = str(context.partition_key)
    store = lakefs.store()
    main = RefView(store, store.head(lakefs.main_branch))
    frames_path = table_key("raw_frames", partition)
    if not main.exists(frames_path):
        raise dg.Failure(f"no raw_frames for {partition} on {lakefs.main_branch}: materialize and "
                         "publish the day's frames before making its labeling tasks")
    frames = main.rows(frames_path)
    run = open_run_branch(context, lakefs)
    client = label_studio.client()
    try:
        project = client.ensure_project(label_studio.project_title, contracts.taxonomy())
        cfg = store.config
        client.ensure_lakefs_storage(project, store.repository, cfg.endpoint, cfg.access_key_id,
                                     cfg.secret_access_key)
        # Pinned to a commit: the bytes a task shows can never change under its labels.
        sync = client.sync_tasks(
            project, partition, frames,
            lambda f: f"s3://{store.repository}/{main.ref}/{f['object_key']}")
    finally:
        client.close()
    rows = [{"sha256": sha, "ls_task_id": tid, "ls_project": project}
            for sha, tid in sorted(sync.task_ids.items())]
    path = table_key(TASKS_TABLE, partition)
    run.put_rows(path, rows, TASKS_SCHEMA)
    commit = run.commit(f"{TASKS_TABLE} {partition}: {sync.created} new tasks, "
                        f"{sync.existing} already in project {project}",
                        {"labelstudio_url": label_studio.url,
                         "labelstudio_project": str(project), "frames_commit": main.ref})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "count_tasks_created": sync.created,
        "count_tasks_existing": sync.existing,
        "labelstudio_project": dg.MetadataValue.url(f"{label_studio.url}/projects/{project}"),
        **table_metadata(table=path),
    })
