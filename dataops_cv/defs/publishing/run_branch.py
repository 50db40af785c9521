"""How assets write inside a run: on the run's own lakeFS branch, one commit per materialization."""

from __future__ import annotations

import dagster as dg

from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.run_isolation import RunBranch, ensure_run_branch
from dataops_cv.lib.versioning import code_version

# Set by whoever launches a run (CLI, tests) to main's commit at launch; absent for runs launched
# from the UI or the daemon, whose first step then fixes the base at main's head.
BASE_COMMIT_TAG = "dataops-cv/base-commit"
PUBLISH_STATUS_TAG = "dataops-cv/publish-status"
MAIN_COMMIT_TAG = "dataops-cv/main-commit"
RUN_BRANCH_TAG = "dataops-cv/run-branch"


def run_metadata(run: dg.DagsterRun) -> dict[str, str]:
    """What every lakeFS commit of a run says about the run that made it."""
    meta = {
        "dagster_run_id": run.run_id,
        "dagster_job": run.job_name,
        "code_version": code_version(),
    }
    partition = run.tags.get("dagster/partition")
    if partition:
        meta["dagster_partition_key"] = partition
    backfill = run.tags.get("dagster/backfill")
    if backfill:
        meta["dagster_backfill_id"] = backfill
    return meta


def open_run_branch(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    lakefs: LakeFSResource,
    asset_key: dg.AssetKey,
) -> RunBranch:
    """The run's branch (created on first use, from the run's base), ready for this step's writes."""
    store = lakefs.store()
    run = context.run
    base = run.tags.get(BASE_COMMIT_TAG) or lakefs.main_branch
    branch = ensure_run_branch(store, run.run_id, base, lakefs.main_branch)
    meta = {**run_metadata(run), "dagster_asset_key": asset_key.to_user_string()}
    if context.has_partition_key:
        meta["dagster_partition_key"] = context.partition_key
    return RunBranch(store, branch, meta)


def commit_metadata(run_branch: RunBranch, commit_id: str) -> dict[str, dg.MetadataValue]:
    """Materialization metadata pointing at the lakeFS commit the step made."""
    store = run_branch.store
    return {
        "lakefs_commit": dg.MetadataValue.text(commit_id),
        "lakefs_commit_url": dg.MetadataValue.url(store.commit_url(commit_id)),
        "lakefs_branch": dg.MetadataValue.text(run_branch.branch),
        "lakefs_repository": dg.MetadataValue.text(store.repository),
    }
