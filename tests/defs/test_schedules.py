"""The nightly schedule evaluated for real: which day it requests, under which run key."""

import datetime as dt

import dagster as dg

from dataops_cv.definitions import defs


def test_nightly_schedule_requests_the_day_that_just_ended():
    d = defs()
    schedule = d.resolve_schedule_def("nightly_schedule")
    ctx = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.UTC),
        repository_def=d.get_repository_def())
    result = schedule.evaluate_tick(ctx)
    assert [r.partition_key for r in result.run_requests] == ["2026-03-09"]
    assert result.run_requests[0].run_key == "nightly-2026-03-09"
    assert schedule.cron_schedule == "0 2 * * *"
