"""Schedules and sensors evaluated for real: run requests, cursors, and their effect on lakeFS."""

import datetime as dt
import json

import dagster as dg

from dataops_cv import runner
from dataops_cv.definitions import defs
from dataops_cv.defs.publishing.run_branch import MAIN_COMMIT_TAG, PUBLISH_STATUS_TAG
from dataops_cv.lib.lakefs.run_branch import run_branch_name


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


def _tick(sensor: dg.SensorDefinition, instance, lakefs, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  repository_def=defs().get_repository_def(),
                                  resources={"lakefs": lakefs})
    return sensor.evaluate_tick(ctx)


def _run_without_publishing(instance, monkeypatch, partition, run_config=None):
    """Execute a run the way the daemon would (nobody publishes inline), so the sensors must."""
    monkeypatch.setattr(runner, "publish_dagster_run", lambda *a, **k: None)
    monkeypatch.setattr(runner, "record_dagster_run_failure", lambda *a, **k: None)
    import dagster as dg_

    from dataops_cv.runner import _job
    result = dg_.execute_job(dg_.reconstructable(_job), instance=instance,
                             tags={"dagster/partition": partition}, run_config=run_config or {})
    return result


def test_publish_sensor_merges_a_succeeded_run_once(lakefs, store, dagster_instance, monkeypatch):
    sensor = defs().resolve_sensor_def("publish_run_sensor")
    start = _tick(sensor, dagster_instance, lakefs, None)  # first tick: starts from now
    main_before = store.head("main")
    result = _run_without_publishing(dagster_instance, monkeypatch, "2026-03-01")
    assert result.success
    assert store.head("main") == main_before  # nothing merged until the sensor runs

    tick = _tick(sensor, dagster_instance, lakefs, start.cursor)
    assert tick.run_requests == []  # it publishes; it never launches runs
    assert tick.cursor != start.cursor
    main_after = store.head("main")
    assert main_after != main_before
    merge = store.get_commit(main_after)
    assert merge.metadata["dagster_run_id"] == result.run_id
    assert merge.metadata["dagster_partition_key"] == "2026-03-01"
    run = dagster_instance.get_run_by_id(result.run_id)
    assert run.tags[MAIN_COMMIT_TAG] == main_after and run.tags[PUBLISH_STATUS_TAG] == "merged"

    again = _tick(sensor, dagster_instance, lakefs, tick.cursor)
    assert again.cursor == tick.cursor
    assert store.head("main") == main_after


def test_failed_run_sensor_keeps_and_marks_the_branch(lakefs, store, dagster_instance,
                                                      monkeypatch):
    sensor = defs().resolve_sensor_def("failed_run_sensor")
    start = _tick(sensor, dagster_instance, lakefs, None)
    main_before = store.head("main")
    bad = {"resources": {"capture_source": {"config": {"synthetic_width": 16,
                                                            "synthetic_height": 16}}}}
    result = _run_without_publishing(dagster_instance, monkeypatch, "2026-03-02", bad)
    assert not result.success

    tick = _tick(sensor, dagster_instance, lakefs, start.cursor)
    assert tick.cursor != start.cursor
    head = store.get_commit(run_branch_name(result.run_id))
    assert head.metadata["dagster_run_status"] == "FAILURE"
    assert store.head("main") == main_before


def test_new_drop_sensor_requests_new_and_changed_days_only(tmp_path):
    from dataops_cv.defs.resources import CaptureSourceResource

    for day in ("2026-02-01", "2026-02-02"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "a.jpg").write_bytes(b"x")
    (tmp_path / "README.txt").write_text("not a drop")
    d = defs()
    sensor = d.resolve_sensor_def("new_drop_sensor")
    resources = {"capture_source": CaptureSourceResource(uri=str(tmp_path)),
                 "s3": d.get_repository_def().get_top_level_resources()["s3"]}

    def tick(cursor):
        ctx = dg.build_sensor_context(cursor=cursor, resources=resources,
                                      repository_def=d.get_repository_def())
        return sensor.evaluate_tick(ctx)

    first = tick(None)
    assert [r.partition_key for r in first.run_requests] == ["2026-02-01", "2026-02-02"]
    assert json.loads(first.cursor).keys() == {"2026-02-01", "2026-02-02"}

    assert tick(first.cursor).run_requests == []  # nothing changed
    (tmp_path / "2026-02-02" / "b.jpg").write_bytes(b"y")
    (tmp_path / "2026-02-03").mkdir()
    (tmp_path / "2026-02-03" / "c.jpg").write_bytes(b"z")
    third = tick(first.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2026-02-02", "2026-02-03"]
    assert third.run_requests[0].run_key != first.run_requests[1].run_key
    assert json.loads(third.cursor)["2026-02-01"] == json.loads(first.cursor)["2026-02-01"]
