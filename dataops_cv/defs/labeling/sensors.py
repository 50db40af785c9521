"""The sensor that turns new commits on the labels branch into runs for the affected days."""

import re

import dagster as dg

from dataops_cv.defs.jobs import labeled_annotations_job
from dataops_cv.defs.partitions import daily_partitions, day_source_key
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.tags import LABELS_COMMIT_TAG
from dataops_cv.lib.lakefs.layout import DROPS, SNAPSHOT_TABLE, TABLES

# Paths on the labels branch that make a commit a labeled commit, and the partition they belong
# to (a bare day is the single-source layout: ignored with a warning, see `sources migrate`).
LABELED_PATH = re.compile(
    rf"^(?:{TABLES}{SNAPSHOT_TABLE}|{DROPS.rstrip('/')})/date=(\d{{4}}-\d{{2}}-\d{{2}})/"
    r"(?:source=([a-z0-9][a-z0-9_-]{0,62})/)?")


def labeled_partitions(paths: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """((day, source) partitions touched by label files, what is not a partition of this
    location: days outside the partitions, folders without a source)."""
    found = {(m.group(1), m.group(2)) for p in paths if (m := LABELED_PATH.match(p))}
    valid = set(daily_partitions.get_partition_keys())
    ok = sorted((d, s) for d, s in found if d in valid and s)
    return ok, sorted(f"{d}|{s}" if s else f"{d} (no source folder)"
                      for d, s in found if (d, s) not in set(ok))


@dg.sensor(
    job=labeled_annotations_job,
    name="labeled_commit_sensor",
    minimum_interval_seconds=30,
    description="Watches the lakeFS labels branch; for each new labeled commit, requests "
    "labeled_annotations (and what depends on it) for exactly the capture days it touched.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def labeled_commit_sensor(context: dg.SensorEvaluationContext, lakefs: LakeFSResource):
    store = lakefs.store()
    if not store.branch_exists(lakefs.labels_branch):
        return dg.SkipReason(f"no {lakefs.labels_branch} branch yet")
    head = store.head(lakefs.labels_branch)
    last = context.cursor
    if last == head:
        return dg.SkipReason(f"no new commits on {lakefs.labels_branch} since {head[:12]}")
    # First evaluation: everything the labels branch holds that main never had.
    diff = (store.diff(last, head) if last else
            store.diff(lakefs.main_branch, head, three_dot=True))
    days, foreign = labeled_partitions([d.path for d in diff])
    if foreign:
        context.log.warning(f"labels outside the partitions ignored: {foreign}")
    known = set(context.instance.get_dynamic_partitions("source"))
    unknown = sorted({s for _, s in days} - known)
    if unknown:
        context.log.warning(f"labels for sources this instance has no partitions of ignored: "
                            f"{unknown} (register them with `dataops-cv sources add`)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{head}:{day}|{source}",
                                    partition_key=day_source_key(day, source),
                                    tags={LABELS_COMMIT_TAG: head})
                      for day, source in days if source in known],
        cursor=head,
    )
