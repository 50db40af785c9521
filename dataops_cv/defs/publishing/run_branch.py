"""How assets write inside a run: on the run's own lakeFS branch, one commit per materialization."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import dagster as dg

from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.lakefs.run_branch import RunBranch, ensure_run_branch
from dataops_cv.lib.core.versioning import code_version

# Set by whoever launches a run (CLI, tests) to main's commit at launch; absent for runs launched
# from the UI or the daemon, whose first step then fixes the base at main's head.
BASE_COMMIT_TAG = "dataops-cv/base-commit"
PUBLISH_STATUS_TAG = "dataops-cv/publish-status"
MAIN_COMMIT_TAG = "dataops-cv/main-commit"
RUN_BRANCH_TAG = "dataops-cv/run-branch"
# Asset tag naming the branch an asset's runs publish to: "labels" (the resource's labels branch)
# for the labeling pull; absent means main.
PUBLISHES_TO_TAG = "dataops-cv/publishes-to"
LABELS_TARGET = "labels"
# Materialization metadata naming the lakeFS tag to put on the run's merge commit (training sets).
PUBLISH_TAG_METADATA = "trainset_tag"
TAGS_TAG = "dataops-cv/lakefs-tags"


@functools.cache
def publish_targets_by_asset() -> Mapping[dg.AssetKey, str]:
    """Assets that publish somewhere other than main, and where (``labels``)."""
    from dataops_cv.definitions import defs  # the location imports this module: import lazily

    graph = defs().resolve_asset_graph()
    return {key: graph.get(key).tags[PUBLISHES_TO_TAG] for key in graph.get_all_asset_keys()
            if PUBLISHES_TO_TAG in graph.get(key).tags}


def target_branch(lakefs: LakeFSResource, asset_keys: Iterable[dg.AssetKey]) -> str:
    """The one branch the run that materializes ``asset_keys`` publishes to.

    Raises:
        ValueError: the assets publish to different branches (they belong in separate runs).
    """
    targets = publish_targets_by_asset()
    by_branch: dict[str, list[str]] = {}
    for key in asset_keys:
        branch = lakefs.labels_branch if targets.get(key) == LABELS_TARGET else lakefs.main_branch
        by_branch.setdefault(branch, []).append(key.to_user_string())
    if len(by_branch) > 1:
        raise ValueError("one run publishes to one branch, but these assets publish to "
                         + "; ".join(f"{b}: {', '.join(sorted(k))}" for b, k in by_branch.items())
                         + " - materialize them in separate runs")
    return next(iter(by_branch), lakefs.main_branch)


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
    target = target_branch(lakefs, [asset_key])
    if target == lakefs.main_branch:
        base = run.tags.get(BASE_COMMIT_TAG) or target
    else:
        # The base tag records main; a run publishing elsewhere starts from that branch's head.
        store.create_branch(target, source=lakefs.main_branch, exist_ok=True)
        base = target
    branch = ensure_run_branch(store, run.run_id, base, target)
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
