"""The nightly run of the whole pipeline for the day that just ended, one run per source."""


import dagster as dg

from dataops_cv.defs.jobs import dataops_job
from dataops_cv.defs.partitions import SOURCES_PARTITIONS, daily_partitions, day_source_key


@dg.schedule(
    job=dataops_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    name="nightly_schedule",
    description="At 02:00 UTC, run the pipeline for the previous capture day of every source, "
    "each source in its own isolated run.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    keys = daily_partitions.get_partition_keys(current_time=context.scheduled_execution_time)
    if not keys:
        return dg.SkipReason("no complete capture day yet")
    sources = sorted(context.instance.get_dynamic_partitions(SOURCES_PARTITIONS))
    if not sources:
        return dg.SkipReason("no source registered yet (`dataops-cv sources add`)")
    latest = keys[-1]
    return [dg.RunRequest(run_key=f"nightly-{latest}-{s}", partition_key=day_source_key(latest, s))
            for s in sources]
