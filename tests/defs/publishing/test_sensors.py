"""The run-status sensors evaluated for real: a succeeded run merged exactly once by the sensor,
a failed run's branch kept and marked, main untouched."""

import dagster as dg

from dataops_cv import runner
from dataops_cv.definitions import defs
from dataops_cv.defs.tags import MAIN_COMMIT_TAG, PUBLISH_STATUS_TAG
from dataops_cv.lib.lakefs.run_branch import run_branch_name


def _tick(sensor: dg.SensorDefinition, instance, lakefs, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  repository_def=defs().get_repository_def(),
                                  resources={"lakefs": lakefs})
    return sensor.evaluate_tick(ctx)


def _run_without_publishing(instance, monkeypatch, partition, run_config=None):
    """Execute a run the way the daemon would (nobody publishes inline), so the sensors must."""
    monkeypatch.setattr(runner, "publish_dagster_run", lambda *a, **k: None)
    monkeypatch.setattr(runner, "record_dagster_run_failure", lambda *a, **k: None)
    # The steps run in this process: what the sensors do does not depend on the executor.
    config = {**(run_config or {}), "execution": {"config": {"in_process": {}}}}
    runner.ensure_source_partition(instance, partition.split("|")[1])
    return dg.execute_job(dg.reconstructable(runner._job), instance=instance,
                          tags=runner.partition_tags(partition), run_config=config)


def test_publish_sensor_merges_a_succeeded_run_once(lakefs, store, dagster_instance, monkeypatch):
    sensor = defs().resolve_sensor_def("publish_run_sensor")
    start = _tick(sensor, dagster_instance, lakefs, None)  # first tick: starts from now
    main_before = store.head("main")
    result = _run_without_publishing(dagster_instance, monkeypatch, "2026-03-01|synthetic")
    assert result.success
    assert store.head("main") == main_before  # nothing merged until the sensor runs

    tick = _tick(sensor, dagster_instance, lakefs, start.cursor)
    assert tick.run_requests == []  # it publishes; it never launches runs
    assert tick.cursor != start.cursor
    main_after = store.head("main")
    assert main_after != main_before
    merge = store.get_commit(main_after)
    assert merge.metadata["dagster_run_id"] == result.run_id
    assert merge.metadata["dagster_partition_key"] == "2026-03-01|synthetic"
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
    result = _run_without_publishing(dagster_instance, monkeypatch, "2026-03-02|synthetic", bad)
    assert not result.success

    tick = _tick(sensor, dagster_instance, lakefs, start.cursor)
    assert tick.cursor != start.cursor
    head = store.get_commit(run_branch_name(result.run_id))
    assert head.metadata["dagster_run_status"] == "FAILURE"
    assert store.head("main") == main_before
