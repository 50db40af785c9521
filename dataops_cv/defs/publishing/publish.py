"""Publishing a finished Dagster run: merge its branch into main, or record why it was not.

One function per outcome, used by the run-status sensors (daemon, `dagster dev`) and by the
`dataops-cv run` command; both may see the same run, so both functions are idempotent.
"""

from __future__ import annotations

import dagster as dg

from dataops_cv.defs.publishing.run_branch import (
    MAIN_COMMIT_TAG,
    PUBLISH_STATUS_TAG,
    RUN_BRANCH_TAG,
    run_metadata,
)
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.lakefs_store import MergeConflictError
from dataops_cv.lib.run_isolation import (
    PublishResult,
    publish_run,
    record_run_failure,
    run_branch_name,
)


def publish_dagster_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, lakefs: LakeFSResource
) -> PublishResult:
    """Merge a succeeded run's branch into main once and record main's commit on the run.

    Raises:
        MergeConflictError: main is unchanged, the branch is kept, and the conflict is recorded on
            the run's tags before the error propagates.
    """
    store = lakefs.store()
    try:
        result = publish_run(store, run.run_id, run_metadata(run), lakefs.main_branch)
    except MergeConflictError as exc:
        instance.add_run_tags(run.run_id, {PUBLISH_STATUS_TAG: "conflict",
                                           RUN_BRANCH_TAG: run_branch_name(run.run_id)})
        record_run_failure(store, run.run_id, "PUBLISH_CONFLICT", str(exc), run_metadata(run))
        raise
    instance.add_run_tags(
        run.run_id,
        {PUBLISH_STATUS_TAG: result.status, MAIN_COMMIT_TAG: result.main_after,
         RUN_BRANCH_TAG: result.run_branch},
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
