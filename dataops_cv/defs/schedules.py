"""The nightly run of the whole pipeline for the day that just ended."""


import dagster as dg

from dataops_cv.defs.jobs import dataops_job
from dataops_cv.defs.partitions import daily_partitions


@dg.schedule(
    job=dataops_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    name="nightly_schedule",
    description="At 02:00 UTC, run the pipeline for the previous capture day.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    keys = daily_partitions.get_partition_keys(current_time=context.scheduled_execution_time)
    if not keys:
        return dg.SkipReason("no complete capture day yet")
    latest = keys[-1]
    return dg.RunRequest(run_key=f"nightly-{latest}", partition_key=latest)
