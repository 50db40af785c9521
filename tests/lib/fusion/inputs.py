"""Frame and sensor tables the fusion tests build their cases from."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from dataops_cv.lib.acquisition.sensor_logs.format import SENSOR_LOG_SCHEMA
from dataops_cv.lib.fusion.config import FusionConfig

T0 = 1_717_228_800_000_000_000  # 2024-06-01T00:00Z in ns
MS = 1_000_000
SENSOR_SCHEMA = SENSOR_LOG_SCHEMA.append(pa.field("log_path", pa.string())).append(
    pa.field("object_key", pa.string()))
IMU_ONLY = FusionConfig(tolerance_ms={"imu": 10.0})


def records(sensor: str, device: str, times_ns, session: str | None = "s1", **values
            ) -> list[dict]:
    """Rows of one device; ``values`` are per-row sequences or scalars."""
    out = []
    for i, t in enumerate(times_ns):
        row = {"timestamp_ns": int(t), "sensor": sensor, "device_id": device,
               "session_id": session, "firmware": f"{device}-fw", "log_path": f"{session}.pq"}
        for name, v in values.items():
            row[name] = v if np.isscalar(v) or v is None else float(v[i])
        out.append(row)
    return out


def sensor_table(*groups: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([r for g in groups for r in g], schema=SENSOR_SCHEMA)


def frame_table(times_ns, session: str = "s1", camera: str = "cam0") -> pa.Table:
    """Frames named like a rig names them; a None time is a frame without a capture time."""
    shas = [hashlib.sha256(f"{session}/{camera}/{i}".encode()).hexdigest()
            for i in range(len(times_ns))]
    return pa.table({
        "sha256": shas,
        "object_key": [f"frames/{s}.png" for s in shas],
        "rel_path": [f"images/{session}/{camera}/{i}.png" for i in range(len(times_ns))],
        "device_id": [camera] * len(times_ns),
        "capture_time": pa.array([None if t is None else int(t) // 1000 for t in times_ns],
                                 pa.timestamp("us", "UTC")),
    })


def rows_of(table: pa.Table, **where) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in where.items())]
