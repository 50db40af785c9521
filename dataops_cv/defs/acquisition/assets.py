"""Acquisition: capture frames into content-addressed lakeFS objects plus a per-day table."""


import pyarrow as pa

import dagster as dg
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.layout import frame_key, table_key
from dataops_cv.lib.synthetic import generate_frames
from dataops_cv.lib.run_isolation import RunBranch
from dataops_cv.lib.tables import PARQUET_CONTENT_TYPE, from_parquet_bytes, to_parquet_bytes

RAW_FRAMES_SCHEMA = pa.schema(
    [
        ("sha256", pa.string()),
        ("object_key", pa.string()),
        ("source_uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("channels", pa.int8()),
        ("mode", pa.string()),
        ("format", pa.string()),
        ("bytes", pa.int64()),
        ("capture_time", pa.timestamp("ms", tz="UTC")),
        ("device_id", pa.string()),
    ]
)


def previous_hashes(run: RunBranch, table_path: str) -> set[str]:
    """Content hashes listed in this partition's table on the branch (empty if none yet)."""
    if not run.exists(table_path):
        return set()
    return set(from_parquet_bytes(run.read(table_path)).column("sha256").to_pylist())


class RawFramesConfig(dg.Config):
    """Synthetic capture settings (the demo source)."""

    frames: int = 24
    width: int = 320
    height: int = 240
    seed: int = 0


@dg.asset(
    partitions_def=daily_partitions,
    group_name="acquisition",
    kinds={"lakefs", "parquet", "image"},
    code_version="1",
)
def raw_frames(
    context: dg.AssetExecutionContext, config: RawFramesConfig, lakefs: LakeFSResource
) -> dg.MaterializeResult:
    """One capture day of frames: image bytes under frames/<sha256> and a metadata table."""
    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    table_path = table_key("raw_frames", partition)
    # Hashes this partition already stored (as of the run's base): skipped without a lakeFS call.
    known = previous_hashes(run, table_path)
    rows: list[dict] = []

    def uploads():
        for frame in generate_frames(
            config.seed, partition, config.frames, config.width, config.height
        ):
            key = frame_key(frame.sha256, "png")
            rows.append(
                {
                    "sha256": frame.sha256,
                    "object_key": key,
                    "source_uri": frame.source_uri,
                    "width": frame.width,
                    "height": frame.height,
                    "channels": 3,
                    "mode": "RGB",
                    "format": "png",
                    "bytes": len(frame.data),
                    "capture_time": frame.capture_time,
                    "device_id": frame.device_id,
                }
            )
            if frame.sha256 not in known:
                yield key, frame.data, "image/png"

    uploaded = run.put_content_addressed_many(uploads())
    run.put(table_path, to_parquet_bytes(rows, RAW_FRAMES_SCHEMA), PARQUET_CONTENT_TYPE)
    commit = run.commit(f"raw_frames {partition}: {len(rows)} frames")
    preview = "\n".join(
        ["| sha256 | size | capture_time |", "|---|---|---|"]
        + [f"| `{r['sha256'][:12]}` | {r['width']}x{r['height']} | {r['capture_time']:%H:%M:%S.%f} |"
           for r in rows[:10]]
    )
    return dg.MaterializeResult(
        metadata={
            **commit_metadata(run, commit.id),
            "count_ingested": len(rows),
            "count_uploaded": uploaded,
            "count_already_stored": len(rows) - uploaded,
            "table": dg.MetadataValue.path(table_path),
            "preview": dg.MetadataValue.md(preview),
        }
    )
