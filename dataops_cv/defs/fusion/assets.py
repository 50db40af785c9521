"""Fusion: every camera frame of a day with its nearest IMU / GPS / LiDAR / pose records."""

import json

import dagster as dg
from pydantic import Field

from dataops_cv.defs.acquisition.assets import raw_frames, sensor_logs
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.fusion.fuse import FusionConfig, fuse
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE, from_parquet_bytes, table_to_parquet_bytes

FRAME_COLUMNS = ["sha256", "object_key", "rel_path", "device_id", "capture_time"]
PREVIEW_ROWS = 10


def fusion_side_key(partition: str, name: str) -> str:
    """``_unmatched``, ``_clocks`` and ``_inputs`` beside the day's fused table."""
    return f"tables/fused_samples/date={partition}/{name}"


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


def _markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float) else ("" if v is None else str(v))

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |"
                            for r in rows)


@dg.asset(
    partitions_def=daily_partitions,
    group_name="fusion",
    kinds={"lakefs", "parquet"},
    deps=[raw_frames, sensor_logs],
    code_version="1",
)
def fused_samples(
    context: dg.AssetExecutionContext, config: FusedSamplesConfig, lakefs: LakeFSResource,
) -> dg.MaterializeResult:
    """One day's camera frames, each with the nearest IMU, GPS, LiDAR and ego-pose records within
    per-sensor tolerances, a geohash cell and device firmware; plus the unmatched frames and
    records and a clock report per device."""
    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    fusion_config = config.fusion()
    frames_path = table_key("raw_frames", partition)
    sensors_path = table_key("sensor_logs", partition)
    table_path = table_key("fused_samples", partition)
    inputs_path = fusion_side_key(partition, "_inputs.json")
    unmatched_path = fusion_side_key(partition, "_unmatched.parquet")
    clocks_path = fusion_side_key(partition, "_clocks.parquet")

    # lakeFS checksums say whether the inputs changed: an unchanged day is not recomputed.
    stats = {p: run.store.stat_object(run.branch, p) for p in (frames_path, sensors_path)}
    if stats[frames_path] is None:
        raise dg.Failure(f"fused_samples {partition}: no raw_frames table at {frames_path} on "
                         f"{run.branch}; materialize raw_frames for this day first")
    inputs = {"config": fusion_config.version(),
              **{p: (s.checksum if s else None) for p, s in stats.items()}}
    if run.exists(inputs_path) and run.exists(table_path) and \
            json.loads(run.read(inputs_path)) == inputs:
        context.log.info(f"inputs of {partition} unchanged since the last fusion; nothing to do")
        commit = run.commit(f"fused_samples {partition}: inputs unchanged")
        return dg.MaterializeResult(metadata={
            **commit_metadata(run, commit.id), "unchanged": True,
            "table": dg.MetadataValue.path(table_path)})

    frames = from_parquet_bytes(run.read(frames_path), FRAME_COLUMNS)
    if stats[sensors_path] is not None:
        sensors = from_parquet_bytes(run.read(sensors_path))
    else:
        from dataops_cv.lib.acquisition.sensor_ingest import empty_sensor_table

        sensors = empty_sensor_table()
    result = fuse(frames, sensors, fusion_config)
    run.put(table_path, table_to_parquet_bytes(result.fused), PARQUET_CONTENT_TYPE)
    run.put(unmatched_path, table_to_parquet_bytes(result.unmatched), PARQUET_CONTENT_TYPE)
    run.put(clocks_path, table_to_parquet_bytes(result.clocks), PARQUET_CONTENT_TYPE)
    run.put(inputs_path, json.dumps(inputs, sort_keys=True).encode(), "application/json")
    c = result.counts
    commit = run.commit(f"fused_samples {partition}: {result.fused.num_rows} frames fused, "
                        f"{result.unmatched.num_rows} unmatched frames/records",
                        {"fusion_config": fusion_config.version()})
    reasons: dict[str, int] = {}
    for reason in result.unmatched["reason"].to_pylist():
        reasons[reason] = reasons.get(reason, 0) + 1
    clocks = result.clocks.to_pylist()
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "unchanged": False,
            **{f"count_fusion_{k}": int(v) for k, v in c.items()},
            "unmatched_reasons": dg.MetadataValue.json(reasons),
            "clocks": dg.MetadataValue.md(_markdown_table(clocks, [
                "session_id", "device_id", "sensor", "firmware", "rate_hz", "jitter_us", "gaps",
                "duplicates", "out_of_order", "offset_us", "offset_method", "note"])),
            "preview": dg.MetadataValue.md(_markdown_table(result.fused.slice(
                0, PREVIEW_ROWS).to_pylist(), ["camera", "frame_time_ref_ns", "geo_cell",
                                               "gps_dt_us", "imu_dt_us", "lidar_dt_us",
                                               "pose_method", "unmatched"])),
            "table": dg.MetadataValue.path(table_path),
            "unmatched_table": dg.MetadataValue.path(unmatched_path),
            "clocks_table": dg.MetadataValue.path(clocks_path),
        }
    )
