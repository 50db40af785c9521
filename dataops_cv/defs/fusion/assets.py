"""Fusion: every camera frame of a day with its nearest IMU / GPS / LiDAR / pose records."""

import dagster as dg
from pydantic import Field

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.lib.core.previews import markdown_table
from dataops_cv.lib.fusion.config import FusionConfig
from dataops_cv.lib.fusion.fuse import fuse
from dataops_cv.lib.lakefs.layout import side_key, table_key

FRAME_COLUMNS = ["sha256", "object_key", "rel_path", "device_id", "capture_time"]
PREVIEW_ROWS = 10
CLOCK_COLUMNS = ["session_id", "device_id", "sensor", "firmware", "rate_hz", "jitter_us", "gaps",
                 "duplicates", "out_of_order", "offset_us", "offset_method", "note"]
PREVIEW_COLUMNS = ["camera", "frame_time_ref_ns", "geo_cell", "gps_dt_us", "imu_dt_us",
                   "lidar_dt_us", "pose_method", "unmatched"]


class FusedSamplesConfig(dg.Config):
    imu_tolerance_ms: float = Field(default=10.0, description="Nearest IMU record within this.")
    gps_tolerance_ms: float = Field(default=60.0, description="Nearest GPS fix within this.")
    lidar_tolerance_ms: float = Field(default=30.0, description="Nearest sweep within this.")
    geo_precision: int = Field(default=7, description="Geohash characters of geo_cell.")
    estimate_offsets: bool = Field(
        default=True, description="Estimate device clock offsets from motion and apply confident "
        "ones before matching.")
    known_offsets_us: dict[str, int] = Field(
        default={}, description="device_id -> clock offset (device minus GPS time) in µs from the "
        "rig's calibration; wins over estimates.")

    def fusion(self) -> FusionConfig:
        return FusionConfig(
            tolerance_ms={"imu": self.imu_tolerance_ms, "gps": self.gps_tolerance_ms,
                          "lidar": self.lidar_tolerance_ms},
            geo_precision=self.geo_precision, estimate_offsets=self.estimate_offsets,
            known_offsets_us={str(k): int(v) for k, v in self.known_offsets_us.items()})


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="fusion",
    kinds={"lakefs", "parquet"},
    deps=["raw_frames", "sensor_logs"],
    code_version="1",
)
def fused_samples(
    context: dg.AssetExecutionContext, config: FusedSamplesConfig, lakefs: LakeFSResource,
) -> dg.MaterializeResult:
    """One day's camera frames, each with the nearest IMU, GPS, LiDAR and ego-pose records within
    per-sensor tolerances, a geohash cell and device firmware; plus the unmatched frames and
    records and a clock report per device."""
    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    fusion_config = config.fusion()
    frames_path = table_key("raw_frames", partition)
    sensors_path = table_key("sensor_logs", partition)
    table_path = table_key("fused_samples", partition)
    inputs_path = side_key("fused_samples", partition, "_inputs.json")
    unmatched_path = side_key("fused_samples", partition, "_unmatched.parquet")
    clocks_path = side_key("fused_samples", partition, "_clocks.parquet")

    # lakeFS checksums say whether the inputs changed: an unchanged day is not recomputed.
    inputs = {"config": fusion_config.version(), **run.checksums([frames_path, sensors_path])}
    if inputs[frames_path] is None:
        raise dg.Failure(f"fused_samples {partition}: no raw_frames table at {frames_path} on "
                         f"{run.branch}; materialize raw_frames for this day first")
    if run.unchanged(inputs_path, inputs, [table_path]):
        context.log.info(f"inputs of {partition} unchanged since the last fusion; nothing to do")
        commit = run.commit(f"fused_samples {partition}: inputs unchanged")
        return dg.MaterializeResult(metadata={
            **commit_metadata(run, commit.id), "unchanged": True,
            **table_metadata(table=table_path)})

    frames = run.table(frames_path, FRAME_COLUMNS)
    sensors = run.table(sensors_path)
    if sensors is None:
        from dataops_cv.lib.acquisition.sensor_ingest import empty_sensor_table

        sensors = empty_sensor_table()
    result = fuse(frames, sensors, fusion_config)
    run.put_table(table_path, result.fused)
    run.put_table(unmatched_path, result.unmatched)
    run.put_table(clocks_path, result.clocks)
    run.put_json(inputs_path, inputs)
    commit = run.commit(f"fused_samples {partition}: {result.fused.num_rows} frames fused, "
                        f"{result.unmatched.num_rows} unmatched frames/records",
                        {"fusion_config": fusion_config.version()})
    reasons: dict[str, int] = {}
    for reason in result.unmatched["reason"].to_pylist():
        reasons[reason] = reasons.get(reason, 0) + 1
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "unchanged": False,
            **{f"count_fusion_{k}": int(v) for k, v in result.counts.items()},
            "unmatched_reasons": dg.MetadataValue.json(reasons),
            "clocks": dg.MetadataValue.md(markdown_table(result.clocks.to_pylist(),
                                                         CLOCK_COLUMNS)),
            "preview": dg.MetadataValue.md(markdown_table(
                result.fused.slice(0, PREVIEW_ROWS).to_pylist(), PREVIEW_COLUMNS)),
            **table_metadata(table=table_path, unmatched_table=unmatched_path,
                             clocks_table=clocks_path),
        }
    )
