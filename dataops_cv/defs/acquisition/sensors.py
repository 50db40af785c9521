"""A sensor that discovers new or changed daily drops in the capture source and runs them."""

import json

import dagster as dg
from dagster_aws.s3 import S3Resource

from dataops_cv.defs.jobs import dataops_job
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.resources import CaptureSourceResource
from dataops_cv.lib.acquisition.drops import changed_drops, drop_fingerprints
from dataops_cv.lib.acquisition.sources import open_source


@dg.sensor(
    job=dataops_job,
    name="new_drop_sensor",
    minimum_interval_seconds=60,
    description="Watches the capture source for <YYYY-MM-DD>/ folders that are new or changed and "
    "requests one isolated run per such day.",
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_drop_sensor(
    context: dg.SensorEvaluationContext, capture_source: CaptureSourceResource, s3: S3Resource
) -> dg.SensorResult | dg.SkipReason:
    if capture_source.is_synthetic:
        return dg.SkipReason("the capture source is synthetic://: there are no drops to discover")
    source = open_source(capture_source.uri, s3.get_client)
    seen = json.loads(context.cursor) if context.cursor else {}
    current = drop_fingerprints(source)
    valid = set(daily_partitions.get_partition_keys())
    requests = []
    for date in changed_drops(current, seen):
        if date not in valid:
            context.log.warning(f"drop {date}/ is outside the partitions "
                                f"({daily_partitions.start:%Y-%m-%d} to yesterday); not run")
            continue
        # run_key = day + content fingerprint: a changed drop runs again, an unchanged never does.
        requests.append(dg.RunRequest(run_key=f"{date}:{current[date]}", partition_key=date))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))
