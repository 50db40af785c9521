"""The nightly schedule evaluated for real: which day and sources it requests, under which run
keys."""

import datetime as dt

import dagster as dg

from dataops_cv.definitions import defs


def test_nightly_schedule_requests_the_day_that_just_ended_for_every_source():
    d = defs()
    schedule = d.resolve_schedule_def("nightly_schedule")
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.UTC),
            repository_def=d.get_repository_def())
        assert schedule.evaluate_tick(ctx).skip_message  # no source yet
        instance.add_dynamic_partitions("source", ["rig-a", "vendor"])
        result = schedule.evaluate_tick(ctx)
    assert [str(r.partition_key) for r in result.run_requests] == [
        "2026-03-09|rig-a", "2026-03-09|vendor"]
    assert [r.run_key for r in result.run_requests] == [
        "nightly-2026-03-09-rig-a", "nightly-2026-03-09-vendor"]
    assert schedule.cron_schedule == "0 2 * * *"
