"""The pipeline job: every asset of the location for one capture day, in one isolated run."""

import dagster as dg

from dataops_cv.defs.partitions import daily_partitions

DATAOPS_JOB = "dataops_job"

dataops_job = dg.define_asset_job(
    name=DATAOPS_JOB,
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Materialize one capture day end to end on its own lakeFS branch; publish on success.",
)
