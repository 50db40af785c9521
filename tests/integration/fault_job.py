"""A job whose asset fails half-way through its writes, run through the real isolation path."""

import dagster as dg

from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import open_run_branch
from dataops_cv.defs.resources import LakeFSResource, lakefs_resource_from_env, resources

WRITES_BEFORE_FAILURE = 3


@dg.asset(partitions_def=daily_partitions)
def half_written(context: dg.AssetExecutionContext, lakefs: LakeFSResource) -> None:
    run = open_run_branch(context, lakefs, context.asset_key)
    for i in range(WRITES_BEFORE_FAILURE):
        run.put(f"tables/half_written/date={context.partition_key}/part-{i:05d}.bin", b"partial")
    raise RuntimeError(f"simulated crash after {WRITES_BEFORE_FAILURE} writes")


def fault_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[half_written],
        jobs=[dg.define_asset_job("fault_job", selection=[half_written],
                                  partitions_def=daily_partitions)],
        resources={"lakefs": lakefs_resource_from_env()},
    )
    return defs.resolve_job_def("fault_job")


def unchecked_job() -> dg.JobDefinition:
    """The real raw_frames asset, launched without its blocking check (as a UI user can)."""
    from dataops_cv.defs.acquisition.assets import raw_frames
    from dataops_cv.defs.acquisition.checks import raw_frames_resolution

    defs = dg.Definitions(
        assets=[raw_frames],
        asset_checks=[raw_frames_resolution],
        jobs=[dg.define_asset_job("unchecked_job",
                                  selection=dg.AssetSelection.assets(raw_frames).without_checks(),
                                  partitions_def=daily_partitions)],
        resources=resources().resources,
    )
    return defs.resolve_job_def("unchecked_job")
