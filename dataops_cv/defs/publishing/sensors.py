"""Run-status sensors that publish succeeded runs and mark failed ones (run by the daemon)."""


import dagster as dg

from dataops_cv.defs.publishing.publish import (
    UnauditedRunError,
    publish_dagster_run,
    record_dagster_run_failure,
)
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.lakefs.store import MergeConflictError


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="publish_run_sensor",
    description="Merges each succeeded run's lakeFS branch into main, exactly once.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def publish_run_sensor(context: dg.RunStatusSensorContext, lakefs: LakeFSResource):
    # A conflict or a missing blocking check will not heal by retrying: it is recorded on the run
    # (publish-status tag) and on its kept branch, logged as an error, and the sensor moves on.
    # Anything else (lakeFS unreachable) raises, so the daemon retries this run on the next tick.
    try:
        result = publish_dagster_run(context.instance, context.dagster_run, lakefs,
                                     context.repository_def.asset_graph)
    except (MergeConflictError, UnauditedRunError) as exc:
        context.log.error(f"run {context.dagster_run.run_id} NOT published: {exc}")
        return dg.SkipReason(f"run {context.dagster_run.run_id} not published: {exc}")
    context.log.info(
        f"run {context.dagster_run.run_id}: {result.status}, main {result.main_before[:12]} -> "
        f"{result.main_after[:12]} ({result.changed_paths} paths)"
    )


def _failure_reason(context: dg.RunStatusSensorContext) -> str:
    event = context.dagster_event
    message = getattr(event, "message", None) if event is not None else None
    return message or f"run ended with status {context.dagster_run.status.value}"


def _unpublished_run_sensor(status: dg.DagsterRunStatus, name: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=name,
        description=f"Keeps a {status.value.lower()} run's lakeFS branch for inspection and "
        "records why on it; main is never touched.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
    )
    def _sensor(context: dg.RunStatusSensorContext, lakefs: LakeFSResource):
        record_dagster_run_failure(context.instance, context.dagster_run, lakefs,
                                   _failure_reason(context))

    return _sensor


failed_run_sensor = _unpublished_run_sensor(dg.DagsterRunStatus.FAILURE, "failed_run_sensor")
canceled_run_sensor = _unpublished_run_sensor(dg.DagsterRunStatus.CANCELED, "canceled_run_sensor")
