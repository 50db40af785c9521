"""Running the pipeline from the command line: local services, a real Dagster instance, one
isolated run per partition, and publishing when the run succeeded."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from dataops_cv.defs.jobs import DATAOPS_JOB
from dataops_cv.defs.publishing.publish import (
    UnauditedRunError,
    publish_dagster_run,
    record_dagster_run_failure,
)
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.tags import BASE_COMMIT_TAG, LABELS_TARGET, PUBLISHES_TO_TAG, TAGS_TAG
from dataops_cv.lib.core.partitions import partition_key, split_key, validate_source_name
from dataops_cv.lib.lakefs.run_branch import run_branch_name
from dataops_cv.lib.lakefs.store import MergeConflictError
from dataops_cv.lib.services.lakefs_server import DEFAULT_PORT, DEFAULT_REPOSITORY, LocalLakeFS

COUNT_PREFIX = "count_"


def state_dir() -> Path:
    """Where local services keep their state: ``DATAOPS_CV_HOME``, else ``./.dataops-cv``."""
    return Path(os.environ.get("DATAOPS_CV_HOME") or Path.cwd() / ".dataops-cv").resolve()


def local_label_studio():
    from dataops_cv.lib.services.labelstudio_server import DEFAULT_PORT as LS_PORT
    from dataops_cv.lib.services.labelstudio_server import LocalLabelStudio

    return LocalLabelStudio(state_dir=state_dir() / "label-studio",
                            port=int(os.environ.get("DATAOPS_CV_LABEL_STUDIO_PORT", LS_PORT)))


def local_lakefs() -> LocalLakeFS:
    return LocalLakeFS(
        state_dir=state_dir() / "lakefs",
        port=int(os.environ.get("DATAOPS_CV_LAKEFS_PORT", DEFAULT_PORT)),
        repository=os.environ.get("LAKEFS_REPOSITORY", DEFAULT_REPOSITORY),
    )


def using_external_lakefs() -> bool:
    return bool(os.environ.get("LAKEFS_ENDPOINT"))


def ensure_lakefs() -> LakeFSResource:
    """Make lakeFS reachable and the repository present; export its client env vars.

    With ``LAKEFS_ENDPOINT`` set, that server is used as it is (no local server starts);
    otherwise the local server under the state dir is started if needed.
    """
    if using_external_lakefs():
        missing = [v for v in ("LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY")
                   if not os.environ.get(v)]
        if missing:
            raise SystemExit(f"LAKEFS_ENDPOINT is set but {', '.join(missing)} is not")
        os.environ.setdefault("LAKEFS_REPOSITORY", DEFAULT_REPOSITORY)
        namespace = os.environ.get("LAKEFS_STORAGE_NAMESPACE")
    else:
        server = local_lakefs()
        server.start()
        os.environ.update(server.client_env())
        namespace = f"local://{server.repository}"
    resource = lakefs_from_env()
    resource.store().ensure_repository(namespace, resource.main_branch)
    return resource


def lakefs_from_env() -> LakeFSResource:
    return LakeFSResource(
        endpoint=os.environ["LAKEFS_ENDPOINT"],
        access_key_id=os.environ["LAKEFS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["LAKEFS_SECRET_ACCESS_KEY"],
        repository=os.environ.get("LAKEFS_REPOSITORY", DEFAULT_REPOSITORY),
    )


def ensure_label_studio() -> str:
    """Make Label Studio reachable and export its client env vars; return its URL.

    With ``LABEL_STUDIO_URL`` set, that server is used (its token from ``LABEL_STUDIO_API_KEY``);
    otherwise the local server under the state dir is started if needed.
    """
    if os.environ.get("LABEL_STUDIO_URL"):
        if not os.environ.get("LABEL_STUDIO_API_KEY"):
            raise SystemExit("LABEL_STUDIO_URL is set but LABEL_STUDIO_API_KEY is not")
        return os.environ["LABEL_STUDIO_URL"]
    server = local_label_studio()
    server.start()
    os.environ.update(server.client_env())
    return server.url


EXECUTORS = ("multiprocess", "in_process")


def executor_config() -> dict[str, Any]:
    """Run config of the executor named by ``DATAOPS_CV_EXECUTOR`` (read when a run starts).

    ``multiprocess`` (default) runs every step in its own process, steps in parallel.
    ``in_process`` runs the steps one after another in the launching process: no per-step
    interpreter start (~5 s each on a small machine), so small days finish sooner, and a
    debugger sees every step. Branch isolation and publishing are the same in both.

    Raises:
        ValueError: any other value.
    """
    name = os.environ.get("DATAOPS_CV_EXECUTOR", "multiprocess") or "multiprocess"
    if name not in EXECUTORS:
        raise ValueError(f"DATAOPS_CV_EXECUTOR={name!r}: expected one of {', '.join(EXECUTORS)}")
    return {"config": {name: {}}}


def ensure_dagster_home() -> Path:
    """``DAGSTER_HOME`` if set, else one under the state dir (created with a dagster.yaml)."""
    home = os.environ.get("DAGSTER_HOME")
    path = Path(home) if home else state_dir() / "dagster_home"
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def job_by_name(name: str) -> dg.JobDefinition:
    """A job of the code location. The runner is an entry point like ``dagster job execute``:
    the one module of the package that loads the definitions (module-level, so Dagster can
    rebuild the job in each step process of the multiprocess run)."""
    from dataops_cv.definitions import defs

    return defs().resolve_job_def(name)


def location_asset_graph(job: dg.JobDefinition):
    """Every asset and check of the definitions ``job`` was made from (not only the job's
    selection): publishing asks which checks an asset declares as blocking."""
    graph = job.asset_layer.asset_graph
    return getattr(graph, "source_asset_graph", graph)


def _job() -> dg.JobDefinition:
    return job_by_name(DATAOPS_JOB)


def _reconstructable_job(name: str):
    return dg.build_reconstructable_job(__name__, "job_by_name", reconstructable_args=(name,))


@dataclass
class RunReport:
    run_id: str
    status: str
    partition: str | None
    run_branch: str
    main_before: str
    main_after: str
    counts: dict[str, int] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    publish_status: str | None = None
    lakefs_tags: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)


def _counts(result: dg.ExecuteJobResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        for key, value in mat.metadata.items():
            if key.startswith(COUNT_PREFIX) and isinstance(value.value, int):
                name = key[len(COUNT_PREFIX):]
                counts[name] = counts.get(name, 0) + value.value
    return counts


def _checks(result: dg.ExecuteJobResult) -> list[dict[str, Any]]:
    return [
        {
            "asset": ev.asset_key.to_user_string(),
            "name": ev.check_name,
            "passed": ev.passed,
            "severity": ev.severity.value.lower(),
        }
        for ev in result.get_asset_check_evaluations()
    ]


def _failure_text(event: dg.DagsterEvent) -> str:
    """The step and the first error under Dagster's wrappers (what a person needs first: ours
    names the system and the operation, while its own causes are library internals)."""
    error = event.step_failure_data.error if event.step_failure_data else None
    if error is None:
        return event.message or f"step {event.step_key} failed"
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return f"{event.step_key}: {error.message.strip()}"


def default_source_name(run_config: Mapping[str, Any] | None = None) -> str:
    """The name of the capture_source resource's own source, as the run config (else the
    environment: ``DATAOPS_CV_SOURCE_NAME``, ``DATAOPS_CV_SOURCE``) configures it."""
    from dataops_cv.lib.acquisition.sources import source_name

    config = ((run_config or {}).get("resources", {}).get("capture_source", {})
              .get("config", {}))
    name = config.get("name") or os.environ.get("DATAOPS_CV_SOURCE_NAME")
    if name:
        return validate_source_name(name)
    return source_name(config.get("uri") or os.environ.get("DATAOPS_CV_SOURCE")
                       or "synthetic://")


def partition_of(partition: str | None, run_config: Mapping[str, Any] | None = None
                 ) -> str | None:
    """The ``<day>|<source>`` key a run is for: a bare day is the day of the capture_source
    resource's own source.

    Raises:
        ValueError: not a day or a ``<day>|<source>`` key.
    """
    if partition is None:
        return None
    day, source = split_key(partition)
    return partition_key(day, source or default_source_name(run_config))


def partition_tags(partition: str) -> dict[str, str]:
    """The run tags of a ``<day>|<source>`` partition, as Dagster tags a multi-partition run."""
    from dataops_cv.defs.partitions import DATE_DIM, SOURCE_DIM

    day, source = split_key(partition)
    return {"dagster/partition": partition, f"dagster/partition/{DATE_DIM}": day,
            f"dagster/partition/{SOURCE_DIM}": source}


def ensure_source_partition(instance: dg.DagsterInstance, source: str) -> None:
    """Add ``source`` to the instance's dynamic ``source`` partitions if it is not there."""
    from dataops_cv.defs.partitions import SOURCES_PARTITIONS

    if not instance.has_dynamic_partition(SOURCES_PARTITIONS, source):
        instance.add_dynamic_partitions(SOURCES_PARTITIONS, [source])


def run_pipeline(
    partition: str | None,
    select: Sequence[str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
    extra_tags: Mapping[str, str] | None = None,
    job: Any = None,
    log_level: str = "INFO",
    job_name: str = DATAOPS_JOB,
) -> RunReport:
    """Run a job (the pipeline by default) for one partition on its own branch and publish it
    if it succeeded.

    ``job`` is a ``dg.reconstructable(...)`` job to run instead of ``job_name`` (tests use it
    to run assets that fail on purpose through the same isolation and publishing). Jobs of the
    labeling pull publish to the labels branch: ``main_before``/``main_after`` then name that
    branch's heads.

    ``partition`` is a ``<day>|<source>`` key, or a bare day for the capture_source
    resource's own source (:func:`partition_of`); the source is added to the instance's
    ``source`` partitions if needed.

    Returns a report whose ``status`` is SUCCESS only if the run and its blocking checks
    succeeded and the publish (merge into its target, or nothing to merge) went through.
    """
    partition = partition_of(partition, run_config)
    lakefs = lakefs_from_env()
    store = lakefs.store()
    target = lakefs.main_branch
    recon = job or _reconstructable_job(job_name)
    job_def = recon.get_definition()
    if job_def.tags.get(PUBLISHES_TO_TAG) == LABELS_TARGET:
        target = lakefs.labels_branch
        store.create_branch(target, source=lakefs.main_branch, exist_ok=True)
    main_before = store.head(target)
    instance = instance or dg.DagsterInstance.get()
    run_config = dict(run_config or {})
    # Step-by-step engine events go to the instance's event log (and the UI) either way; the
    # console gets INFO and above unless the caller asks for more.
    run_config.setdefault("loggers", {"console": {"config": {"log_level": log_level}}})
    run_config.setdefault("execution", executor_config())
    tags = {BASE_COMMIT_TAG: store.head(lakefs.main_branch), **(extra_tags or {})}
    if partition is not None:

        ensure_source_partition(instance, split_key(partition)[1])
        tags.update(partition_tags(partition))
    result = dg.execute_job(
        recon,
        instance=instance,
        run_config=run_config,
        tags=tags,
        asset_selection=[dg.AssetKey.from_user_string(s) for s in select] if select else None,
    )
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    report = RunReport(
        run_id=result.run_id,
        status="SUCCESS" if result.success else "FAILURE",
        partition=partition,
        run_branch=run_branch_name(result.run_id),
        main_before=main_before,
        main_after=main_before,
        counts=_counts(result),
        checks=_checks(result),
    )
    if result.success:
        try:
            published = publish_dagster_run(instance, run, lakefs,
                                            location_asset_graph(job_def))
        except MergeConflictError as exc:
            report.status, report.publish_status, report.error = "FAILURE", "conflict", str(exc)
        except UnauditedRunError as exc:
            report.status, report.publish_status, report.error = "FAILURE", "unaudited", str(exc)
        else:
            report.publish_status = published.status
            report.main_after = published.main_after
            tagged = instance.get_run_by_id(result.run_id)
            if tagged is not None and tagged.tags.get(TAGS_TAG):
                report.lakefs_tags = tagged.tags[TAGS_TAG].split(",")
    else:
        failures = [_failure_text(e) for e in result.get_step_failure_events()]
        report.error = "; ".join(failures) or f"run {run.status.value}"
        record_dagster_run_failure(instance, run, lakefs, report.error)
        report.publish_status = "not_published"
        report.main_after = store.head(target)
    return report
