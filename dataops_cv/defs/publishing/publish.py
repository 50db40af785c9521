"""Publishing a finished Dagster run: merge its branch into main, or record why it was not.

One function per outcome, used by the run-status sensors (daemon, `dagster dev`) and by the
`dataops-cv run` command; both may see the same run, so both functions are idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import publish_targets, run_metadata, target_branch
from dataops_cv.defs.tags import (
    MAIN_COMMIT_TAG,
    PUBLISH_STATUS_TAG,
    PUBLISH_TAG_METADATA,
    RUN_BRANCH_TAG,
    TAGS_TAG,
)
from dataops_cv.lib.lakefs.run_branch import run_branch_name
from dataops_cv.lib.lakefs.store import LakeFSError, LakeFSStore, MergeConflictError
from dataops_cv.lib.publishing.publish import (
    PublishResult,
    find_publish,
    publish_run,
    record_run_failure,
)


class UnauditedRunError(RuntimeError):
    """A run materialized assets whose blocking checks did not run (or did not pass) in it."""

    def __init__(self, missing: list[str]):
        super().__init__(
            "not published: blocking checks did not pass in this run for "
            + ", ".join(missing) + " (materialize the assets together with their checks)"
        )
        self.missing = missing


def blocking_checks_by_asset(asset_graph) -> Mapping[dg.AssetKey, frozenset[str]]:
    """The blocking checks ``asset_graph`` (the code location's, or a job's) declares, per asset."""
    found: dict[dg.AssetKey, set[str]] = {}
    for key in asset_graph.asset_check_keys:
        if asset_graph.get_check_spec(key).blocking:
            found.setdefault(key.asset_key, set()).add(key.name)
    return {k: frozenset(v) for k, v in found.items()}


def materialized_assets(instance: dg.DagsterInstance, run_id: str) -> set[dg.AssetKey]:
    return {entry.dagster_event.asset_key for entry in instance.all_logs(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)}


def unaudited(
    instance: dg.DagsterInstance, run_id: str,
    blocking: Mapping[dg.AssetKey, frozenset[str]],
) -> list[str]:
    """``asset:check`` for each blocking check of an asset materialized in the run that did not
    pass in that same run: a run succeeding is not enough when its checks were left out. A
    blocking check that ran and failed as a warning counts as run: its severity says it does
    not block (a day waiting for labels)."""
    materialized: set[dg.AssetKey] = set()
    passed: set[tuple[dg.AssetKey, str]] = set()
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                    dg.DagsterEventType.ASSET_CHECK_EVALUATION}):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialized.add(event.asset_key)
        else:
            evaluation = event.event_specific_data
            if evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN:
                passed.add((evaluation.asset_key, evaluation.check_name))
    return sorted(
        f"{key.to_user_string()}:{check}"
        for key in materialized for check in blocking.get(key, ())
        if (key, check) not in passed
    )


def requested_tags(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """lakeFS tags the run's materializations ask for on its merge commit (training sets)."""
    tags = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        value = entry.dagster_event.event_specific_data.materialization.metadata.get(
            PUBLISH_TAG_METADATA)
        if value is not None:
            tags.add(str(value.value))
    return sorted(tags)


def tag_publish(store: LakeFSStore, tags: list[str], result: PublishResult, run_id: str,
                target: str) -> dict[str, str]:
    """Put each tag on the commit that published the run (its merge commit; for a run whose
    writes were already on the target, the target's head, which holds the same bytes).

    Idempotent: a tag that already exists is left where it is. Its name is derived from the
    content's inputs, so an existing tag already names these bytes.
    """
    if not tags:
        return {}
    if result.status == "merged":
        commit = result.main_after
    else:
        done = find_publish(store, run_id, target)
        commit = done.id if done else store.head(target)
    out = {}
    for tag in tags:
        try:
            out[tag] = store.create_tag(tag, commit, exist_ok=True)
        except LakeFSError as exc:
            if exc.status != 409:
                raise
            out[tag] = store.head(tag)
    return out


def publish_dagster_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, lakefs: LakeFSResource, asset_graph,
) -> PublishResult:
    """Merge a succeeded run's branch into its target (main, or the labels branch for the
    labeling pull) once and record the target's new commit on the run.

    Args:
        asset_graph: the definitions the run was made from (the sensor's repository, or the
            launched job's): they say which checks block and where each asset publishes.

    Raises:
        UnauditedRunError: an asset was materialized without its blocking checks passing in the
            run; main is unchanged and the refusal is recorded on the kept branch.
        MergeConflictError: main is unchanged, the branch is kept, and the conflict is recorded on
            the run's tags before the error propagates.
    """
    store = lakefs.store()
    missing = unaudited(instance, run.run_id, blocking_checks_by_asset(asset_graph))
    if missing:
        error = UnauditedRunError(missing)
        instance.add_run_tags(run.run_id, {PUBLISH_STATUS_TAG: "unaudited",
                                           RUN_BRANCH_TAG: run_branch_name(run.run_id)})
        record_run_failure(store, run.run_id, "UNAUDITED", str(error), run_metadata(run))
        raise error
    try:
        target = target_branch(lakefs, publish_targets(
            asset_graph, materialized_assets(instance, run.run_id)))
        result = publish_run(store, run.run_id, run_metadata(run), target)
    except MergeConflictError as exc:
        instance.add_run_tags(run.run_id, {PUBLISH_STATUS_TAG: "conflict",
                                           RUN_BRANCH_TAG: run_branch_name(run.run_id)})
        record_run_failure(store, run.run_id, "PUBLISH_CONFLICT", str(exc), run_metadata(run))
        raise
    tagged = tag_publish(store, requested_tags(instance, run.run_id), result, run.run_id, target)
    instance.add_run_tags(
        run.run_id,
        {PUBLISH_STATUS_TAG: result.status, MAIN_COMMIT_TAG: result.main_after,
         RUN_BRANCH_TAG: result.run_branch,
         **({TAGS_TAG: ",".join(sorted(tagged))} if tagged else {})},
    )
    return result


def record_dagster_run_failure(
    instance: dg.DagsterInstance, run: dg.DagsterRun, lakefs: LakeFSResource, reason: str
) -> str | None:
    """Keep a failed or canceled run's branch, with the failure recorded on it; main untouched."""
    status = run.status.value
    commit = record_run_failure(lakefs.store(), run.run_id, status, reason, run_metadata(run))
    instance.add_run_tags(run.run_id, {PUBLISH_STATUS_TAG: f"not_published:{status.lower()}",
                                       RUN_BRANCH_TAG: run_branch_name(run.run_id)})
    return commit.id if commit else None
