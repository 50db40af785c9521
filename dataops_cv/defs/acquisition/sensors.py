"""Sensors of the capture sources: one that keeps the instance's ``source`` partitions in step
with the registry on lakeFS, and one that discovers new or changed daily drops in every source
and runs them."""

import json

import dagster as dg
from dagster_aws.s3 import S3Resource

from dataops_cv.defs.jobs import dataops_job
from dataops_cv.defs.partitions import SOURCES_PARTITIONS, daily_partitions, day_source_key
from dataops_cv.defs.resources import SYNTHETIC_SCHEME, CaptureSourceResource, LakeFSResource
from dataops_cv.lib.acquisition.drops import changed_drops, drop_fingerprints
from dataops_cv.lib.acquisition.registry import SourceEntry, registered_sources
from dataops_cv.lib.acquisition.sources import open_source
from dataops_cv.lib.lakefs.run_branch import RefView


def known_sources(lakefs: LakeFSResource, capture_source: CaptureSourceResource
                  ) -> dict[str, SourceEntry]:
    """The sources registered on main, and the capture_source resource's own."""
    sources = registered_sources(RefView(lakefs.store(), lakefs.main_branch))
    own = capture_source.entry()
    sources.setdefault(own.name, own)
    return sources


def _partition_requests(instance: dg.DagsterInstance, names) -> list:
    missing = sorted(set(names) - set(instance.get_dynamic_partitions(SOURCES_PARTITIONS)))
    return [dg.AddDynamicPartitionsRequest(SOURCES_PARTITIONS, missing)] if missing else []


@dg.sensor(
    name="source_registry_sensor",
    minimum_interval_seconds=30,
    description="Adds a `source` partition for every source registered on lakeFS main "
    "(`dataops-cv sources add` on any machine) and for the capture_source resource's own.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def source_registry_sensor(
    context: dg.SensorEvaluationContext, lakefs: LakeFSResource,
    capture_source: CaptureSourceResource,
) -> dg.SensorResult | dg.SkipReason:
    requests = _partition_requests(context.instance, known_sources(lakefs, capture_source))
    if not requests:
        return dg.SkipReason("every registered source has its partitions")
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.sensor(
    job=dataops_job,
    name="new_drop_sensor",
    minimum_interval_seconds=60,
    description="Watches every registered source for <YYYY-MM-DD>/ folders that are new or "
    "changed and requests one isolated run per such day and source.",
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def new_drop_sensor(
    context: dg.SensorEvaluationContext, capture_source: CaptureSourceResource, s3: S3Resource,
    lakefs: LakeFSResource,
) -> dg.SensorResult | dg.SkipReason:
    sources = {n: e for n, e in known_sources(lakefs, capture_source).items()
               if not e.uri.startswith(SYNTHETIC_SCHEME)}
    if not sources:
        return dg.SkipReason("no source with drops to discover (synthetic:// has none)")
    seen = json.loads(context.cursor) if context.cursor else {}
    valid = set(daily_partitions.get_partition_keys())
    requests, cursor = [], {}
    for name, entry in sources.items():
        before = seen.get(name, {})
        try:
            current = drop_fingerprints(open_source(entry.uri, s3.get_client))
        except Exception as exc:  # one unreachable source must not stop the others
            context.log.error(f"source {name} ({entry.uri}) could not be listed: {exc}")
            cursor[name] = before
            continue
        cursor[name] = current
        for date in changed_drops(current, before):
            if date not in valid:
                context.log.warning(f"drop {name}:{date}/ is outside the partitions "
                                    f"({daily_partitions.start:%Y-%m-%d} to yesterday); not run")
                continue
            # run_key = source + day + content fingerprint: a changed drop runs again, an
            # unchanged one never does.
            requests.append(dg.RunRequest(run_key=f"{name}:{date}:{current[date]}",
                                          partition_key=day_source_key(date, name)))
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(cursor, sort_keys=True),
        dynamic_partitions_requests=_partition_requests(context.instance, sources))
