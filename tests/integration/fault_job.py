"""A job whose asset fails half-way through its writes, run through the real isolation path."""

import dagster as dg

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import LakeFSResource, lakefs_resource_from_env, resources
from dataops_cv.defs.run_branch import open_run_branch
from dataops_cv.lib.core.partitions import folder

WRITES_BEFORE_FAILURE = 3


@dg.asset(partitions_def=day_source_partitions)
def half_written(context: dg.AssetExecutionContext, lakefs: LakeFSResource) -> None:
    run = open_run_branch(context, lakefs, context.asset_key)
    for i in range(WRITES_BEFORE_FAILURE):
        run.put(f"tables/half_written/{folder(str(context.partition_key))}/part-{i:05d}.bin", b"partial")
    raise RuntimeError(f"simulated crash after {WRITES_BEFORE_FAILURE} writes")


def fault_job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[half_written],
        jobs=[dg.define_asset_job("fault_job", selection=[half_written],
                                  partitions_def=day_source_partitions)],
        resources={"lakefs": lakefs_resource_from_env()},
    )
    return defs.resolve_job_def("fault_job")


def unchecked_job() -> dg.JobDefinition:
    """The real raw_frames asset, launched without its blocking check (as a UI user can)."""
    from dataops_cv.defs.acquisition.assets import raw_frames
    from dataops_cv.defs.acquisition.checks import acquisition_checks

    defs = dg.Definitions(
        assets=[raw_frames],
        asset_checks=acquisition_checks().asset_checks,
        jobs=[dg.define_asset_job("unchecked_job",
                                  selection=dg.AssetSelection.assets(raw_frames).without_checks(),
                                  partitions_def=day_source_partitions)],
        resources=resources().resources,
    )
    return defs.resolve_job_def("unchecked_job")


RETYPED_COLUMN = "score"
ADDED_COLUMN = "vendor_note"


def retyped_annotations_job() -> dg.JobDefinition:
    """The real raw_frames, then a vendor's annotation table whose schema changed (``score``
    as text, an extra column), checked by the real contract checks, and an asset downstream."""
    import pyarrow as pa

    from dataops_cv.defs.acquisition.assets import raw_frames
    from dataops_cv.defs.validation.checks import build_contract_check
    from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
    from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE, to_parquet_bytes
    from dataops_cv.lib.lakefs.layout import table_key
    from dataops_cv.lib.validation.contracts import load_contracts
    from dataops_cv.lib.validation.contracts.location import contracts_dir

    schema = pa.schema([
        *(pa.field(f.name, pa.string()) if f.name == RETYPED_COLUMN else f
          for f in ANNOTATION_SCHEMA), pa.field(ADDED_COLUMN, pa.string())])

    @dg.asset(name="imported_annotations", partitions_def=day_source_partitions, deps=[raw_frames])
    def vendor_annotations(context: dg.AssetExecutionContext, lakefs: LakeFSResource) -> None:
        run = open_run_branch(context, lakefs, context.asset_key)
        frames = run.day_rows("raw_frames", context.partition_key)
        rows = [{"image_sha256": f["sha256"], "annotation_id": f"{i:032x}", "class_name": "car",
                 "x_min": 1.0, "y_min": 1.0, "x_max": 9.0, "y_max": 9.0, "source": "coco",
                 "label_revision": "files-sha256:0", RETYPED_COLUMN: "0.9",
                 ADDED_COLUMN: "batch 7"} for i, f in enumerate(frames)]
        run.put(table_key("imported_annotations", context.partition_key),
                to_parquet_bytes(rows, schema), PARQUET_CONTENT_TYPE)
        run.commit("vendor annotations")

    @dg.asset(partitions_def=day_source_partitions, deps=[vendor_annotations])
    def downstream_of_annotations(context: dg.AssetExecutionContext,
                                  lakefs: LakeFSResource) -> None:
        run = open_run_branch(context, lakefs, context.asset_key)
        run.put(f"tables/downstream/{folder(str(context.partition_key))}/part-00000.bin", b"x")
        run.commit("downstream")

    contracts = load_contracts(contracts_dir())
    checks = [build_contract_check(contracts["raw_frames"]),
              build_contract_check(contracts["imported_annotations"], vendor_annotations.key)]
    defs = dg.Definitions(
        assets=[raw_frames, vendor_annotations, downstream_of_annotations],
        asset_checks=checks,
        jobs=[dg.define_asset_job("retyped_annotations_job", selection=dg.AssetSelection.all(),
                                  partitions_def=day_source_partitions)],
        resources=resources().resources,
    )
    return defs.resolve_job_def("retyped_annotations_job")
