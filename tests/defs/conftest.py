"""Stage tests: one asset at a time, materialized in-process with ``dg.materialize`` against the
real lakeFS, on top of one small capture day that the session publishes to main once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from dataops_cv.definitions import defs
from dataops_cv.defs.jobs import DATAOPS_JOB
from dataops_cv.defs.partitions import SOURCES_PARTITIONS, day_source_key
from dataops_cv.defs.resources import (
    CaptureSourceResource,
    ContractsResource,
    LabelStudioResource,
    LakeFSResource,
)
from dataops_cv.lib.lakefs.run_branch import RunBranch, run_branch_name
from dataops_cv.lib.lakefs.store import LakeFSStore
from dataops_cv.lib.publishing.publish import publish_run
from dataops_cv.lib.validation.contracts.location import contracts_dir
from tests.conftest import new_repository

SOURCE = "synthetic"  # the capture_source resource's own source (synthetic://)
DAY = f"2026-03-02|{SOURCE}"  # the partition: capture day | source
# 1 session x 2 cameras x 6 frames: 12 frames with exact boxes, IMU, GPS and LiDAR.
FRAMES_PER_CAMERA = 6


@dataclass
class PublishedDay:
    """A repository whose main holds the whole pipeline of :data:`DAY`."""

    lakefs: LakeFSResource
    resources: dict[str, Any]
    main: str  # main's commit after the publish

    @property
    def store(self) -> LakeFSStore:
        return self.lakefs.store()


@dataclass
class Materialized:
    result: dg.ExecuteInProcessResult
    run: RunBranch  # the run's own branch, where the asset wrote

    def metadata(self, asset: str) -> dict[str, Any]:
        (event,) = [e for e in self.result.get_asset_materialization_events()
                    if e.asset_key.to_user_string() == asset]
        return {k: v.value for k, v in
                event.event_specific_data.materialization.metadata.items()}

    def check(self, name: str) -> dg.AssetCheckEvaluation:
        (evaluation,) = [e for e in self.result.get_asset_check_evaluations()
                         if e.check_name == name]
        return evaluation


def stage_resources(lakefs: LakeFSResource, cache: Path, **source: Any) -> dict[str, Any]:
    return {
        "lakefs": lakefs,
        "contracts": ContractsResource(directory=str(contracts_dir())),
        "capture_source": CaptureSourceResource(
            cache_dir=str(cache), synthetic_sessions=1, synthetic_frames=FRAMES_PER_CAMERA,
            **source),
        "s3": S3Resource(),
        # Stages other than labeling never call it; labeling tests put the real server here.
        "label_studio": LabelStudioResource(url="http://127.0.0.1:9", api_key="none",
                                            max_attempts=1, timeout_s=1),
    }


def location_assets(partitioned: bool = True) -> list:
    """The code location's assets and checks; only the daily ones when ``partitioned`` (a run
    of checks alone takes its partitions from every asset it is given)."""
    d = defs()
    assets = [a for a in d.assets if not partitioned or getattr(a, "partitions_def", None)]
    return [*assets, *d.asset_checks]


def materialize(resources: Mapping[str, Any], selection: str | Sequence[str] | dg.AssetSelection,
                partition: str | None = DAY, run_config: Mapping[str, Any] | None = None,
                tags: Mapping[str, str] | None = None,
                raise_on_error: bool = True) -> Materialized:
    """Materialize ``selection`` (asset names, with their checks) of the real code location."""
    if isinstance(selection, str):
        selection = [selection]
    with source_instance(partition) as instance:
        result = dg.materialize(
            location_assets(partition is not None), selection=selection,
            partition_key=partition_key(partition),
            resources=dict(resources), instance=instance, run_config=dict(run_config or {}),
            tags=dict(tags or {}), raise_on_error=raise_on_error)
    lakefs: LakeFSResource = resources["lakefs"]
    return Materialized(result, RunBranch(lakefs.store(), run_branch_name(result.run_id)))


def partition_key(partition: str | None) -> dg.MultiPartitionKey | None:
    """The Dagster key of a ``<day>|<source>`` partition."""
    if partition is None:
        return None
    day, source = partition.split("|")
    return day_source_key(day, source)


@contextlib.contextmanager
def source_instance(partition: str | None = DAY) -> Iterator[dg.DagsterInstance]:
    """A test instance that has ``partition``'s source among its dynamic partitions."""
    with dg.instance_for_test() as instance:
        if partition is not None:
            instance.add_dynamic_partitions(SOURCES_PARTITIONS, [partition.split("|")[1]])
        yield instance


@pytest.fixture(scope="session")
def published_day(lakefs_server,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublishedDay]:
    """The pipeline of one small synthetic day, materialized with every check and merged into
    main the way a publish does: what every stage test reads its inputs from."""
    lakefs = new_repository(lakefs_server)
    resources = stage_resources(lakefs, tmp_path_factory.mktemp("drops"))
    pipeline = defs().resolve_job_def(DATAOPS_JOB).asset_layer.executable_asset_keys
    done = materialize(resources, dg.AssetSelection.assets(*pipeline))
    assert done.result.success
    published = publish_run(lakefs.store(), done.result.run_id, {"test": "published_day"})
    assert published.status == "merged"
    yield PublishedDay(lakefs, resources, published.main_after)
