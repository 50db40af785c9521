"""new_drop_sensor evaluated for real on a folder of daily drops: run requests and its cursor."""

import json

import dagster as dg

from dataops_cv.definitions import defs
from dataops_cv.defs.resources import CaptureSourceResource


def test_new_drop_sensor_requests_new_and_changed_days_only(tmp_path):
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
