"""How a step reads and writes inside a run: on the run's own lakeFS branch, one commit per
materialization, with the run's metadata on every commit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.tags import BASE_COMMIT_TAG, LABELS_TARGET, PUBLISHES_TO_TAG
from dataops_cv.lib.core.versioning import code_version
from dataops_cv.lib.lakefs.run_branch import RunBranch, ensure_run_branch

StepContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def asset_tags(context: StepContext, asset_key: dg.AssetKey) -> Mapping[str, str]:
    """The tags of ``asset_key``'s own definition, as the step's job knows it: an asset step
    reads its assets definition, a check step the definition of the asset it checks."""
    if isinstance(context, dg.AssetExecutionContext):
        return context.assets_def.tags_by_key.get(asset_key, {})
    return context.job_def.asset_layer.asset_graph.get(asset_key).tags


def target_branch(lakefs: LakeFSResource, targets: Mapping[str, str | None]) -> str:
    """The one branch a run publishes to, from each asset's ``publishes-to`` tag value.

    Raises:
        ValueError: the assets publish to different branches (they belong in separate runs).
    """
    by_branch: dict[str, list[str]] = {}
    for asset, target in targets.items():
        branch = lakefs.labels_branch if target == LABELS_TARGET else lakefs.main_branch
        by_branch.setdefault(branch, []).append(asset)
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


def open_run_branch(context: StepContext, lakefs: LakeFSResource,
                    asset_key: dg.AssetKey | None = None) -> RunBranch:
    """The run's branch (created on first use, from the run's base), ready for this step's
    writes to ``asset_key`` (default: the step's asset)."""
    key = asset_key or context.asset_key
    store = lakefs.store()
    run = context.run
    target = target_branch(lakefs, {key.to_user_string(): asset_tags(context, key).get(
        PUBLISHES_TO_TAG)})
    if target == lakefs.main_branch:
        base = run.tags.get(BASE_COMMIT_TAG) or target
    else:
        # The base tag records main; a run publishing elsewhere starts from that branch's head.
        store.create_branch(target, source=lakefs.main_branch, exist_ok=True)
        base = target
    branch = ensure_run_branch(store, run.run_id, base, target)
    meta = {**run_metadata(run), "dagster_asset_key": key.to_user_string()}
    if context.has_partition_key:
        meta["dagster_partition_key"] = str(context.partition_key)
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


def table_metadata(**paths: str) -> dict[str, dg.MetadataValue]:
    """Metadata entries pointing at the tables a step wrote (``table=..., quarantine_table=...``)."""
    return {name: dg.MetadataValue.path(path) for name, path in paths.items()}


def publish_targets(asset_graph, keys: Iterable[dg.AssetKey]) -> dict[str, str | None]:
    """The ``publishes-to`` tag of each asset's definition in ``asset_graph``."""
    return {k.to_user_string(): asset_graph.get(k).tags.get(PUBLISHES_TO_TAG) for k in keys}
