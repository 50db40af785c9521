"""The source sensors evaluated for real: new_drop_sensor on folders of daily drops of two
sources (one registered on lakeFS, one the resource's own), and source_registry_sensor."""

import json

import dagster as dg

from dataops_cv.definitions import defs
from dataops_cv.defs.resources import CaptureSourceResource
from dataops_cv.lib.acquisition.registry import SourceEntry, register_source, unregister_source
from tests.conftest import new_repository


def _drop(root, day, name, data=b"x"):
    (root / day).mkdir(parents=True, exist_ok=True)
    (root / day / name).write_bytes(data)


def test_new_drop_sensor_requests_new_and_changed_days_of_every_source(tmp_path, lakefs_server):
    own, vendor = tmp_path / "rig", tmp_path / "vendor"
    for day in ("2026-02-01", "2026-02-02"):
        _drop(own, day, "a.jpg")
    _drop(vendor, "2026-02-02", "v.jpg")
    (own / "README.txt").write_text("not a drop")
    lakefs = new_repository(lakefs_server)
    register_source(lakefs.store(), "main", SourceEntry("vendor", str(vendor), "images"))
    d = defs()
    sensor = d.resolve_sensor_def("new_drop_sensor")
    resources = {"capture_source": CaptureSourceResource(uri=str(own)), "lakefs": lakefs,
                 "s3": d.get_repository_def().get_top_level_resources()["s3"]}

    with dg.instance_for_test() as instance:
        def tick(cursor):
            ctx = dg.build_sensor_context(cursor=cursor, resources=resources, instance=instance,
                                          instance_ref=instance.get_ref(),
                                          repository_def=d.get_repository_def())
            return sensor.evaluate_tick(ctx)

        first = tick(None)
        assert sorted(str(r.partition_key) for r in first.run_requests) == [
            "2026-02-01|rig", "2026-02-02|rig", "2026-02-02|vendor"]
        (added,) = first.dynamic_partitions_requests
        assert added.partitions_def_name == "source"
        assert sorted(added.partition_keys) == ["rig", "vendor"]
        assert json.loads(first.cursor)["rig"].keys() == {"2026-02-01", "2026-02-02"}
        instance.add_dynamic_partitions("source", ["rig", "vendor"])

        assert tick(first.cursor).run_requests == []  # nothing changed
        _drop(own, "2026-02-02", "b.jpg", b"y")
        _drop(vendor, "2026-02-03", "w.jpg", b"z")
        third = tick(first.cursor)
        assert sorted(str(r.partition_key) for r in third.run_requests) == [
            "2026-02-02|rig", "2026-02-03|vendor"]
        assert not third.dynamic_partitions_requests
        rig_02 = next(r for r in first.run_requests if str(r.partition_key) == "2026-02-02|rig")
        assert rig_02.run_key not in {r.run_key for r in third.run_requests}
        assert json.loads(third.cursor)["rig"]["2026-02-01"] == \
            json.loads(first.cursor)["rig"]["2026-02-01"]


def test_source_registry_sensor_adds_the_registered_sources_to_the_instance(lakefs_server):
    lakefs = new_repository(lakefs_server)
    store = lakefs.store()
    register_source(store, "main", SourceEntry("aerial", "s3://bucket/aerial", "voc"))
    d = defs()
    sensor = d.resolve_sensor_def("source_registry_sensor")
    resources = {"capture_source": CaptureSourceResource(), "lakefs": lakefs}
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(resources=resources, instance=instance,
                                      repository_def=d.get_repository_def())
        (added,) = sensor.evaluate_tick(ctx).dynamic_partitions_requests
        assert sorted(added.partition_keys) == ["aerial", "synthetic"]
        instance.add_dynamic_partitions("source", ["aerial", "synthetic"])
        assert sensor.evaluate_tick(ctx).skip_message
    assert unregister_source(store, "main", "aerial").uri == "s3://bucket/aerial"
    assert not list(store.list_objects("main", "sources/"))
