"""Reading sensor logs: the same readings from Parquet, CSV and JSONL give the same table; a file
that is not a log at all is one quarantine record, and caller mistakes raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataops_cv.lib.acquisition.sensor_logs.format import (
    KNOWN_VALUE_COLUMNS,
    SENSOR_LOG_SCHEMA,
    SensorLogError,
)
from dataops_cv.lib.acquisition.sensor_logs.reader import read_sensor_log
from dataops_cv.lib.acquisition.sensor_logs.writer import write_sensor_log
from dataops_cv.lib.core.quarantine import Reason

FORMATS = ("parquet", "csv", "jsonl")
T0_S = 1_717_228_800  # 2024-06-01T08:00:00Z


def sample_records() -> pa.Table:
    """IMU, GPS and LiDAR readings in mixed units, with an extra numeric column."""
    return pa.table({
        "timestamp": pa.array([T0_S * 1000 + 20, T0_S * 1_000_000 + 10_000,
                               T0_S * 1_000_000_000 + 5, T0_S * 1000 + 100, T0_S * 1000 + 50],
                              pa.int64()),
        "timestamp_unit": ["ms", "us", "ns", "ms", "ms"],
        "sensor": ["imu", "imu", "imu", "gps", "lidar"],
        "device_id": ["imu0", "imu0", "imu0", "gps0", "lidar_top"],
        "session_id": ["s00"] * 5,
        "firmware": ["fw-1", "fw-1", "fw-1", None, "3.0"],
        "file": [None, None, None, None, "lidar/sweep_000.npy"],
        "ax": [0.125, -0.5, 1e-3, None, None],
        "az": [9.80665, 9.81, 9.79, None, None],
        "gz": [0.01, 0.02, 0.03, None, None],
        "lat": [None, None, None, 48.1372231, None],
        "lon": [None, None, None, 11.5754812, None],
        "speed": [None, None, None, 8.25, None],
        "pose_qw": [None, None, None, None, 0.7071068],
        "temp_c": [21.5, 21.5, 21.75, None, 40.0],
    })


def _expected() -> list[dict]:
    """The normalised rows, worked out by hand, in (device_id, timestamp_ns) order."""
    base = T0_S * 1_000_000_000
    rows = [
        ("gps0", "gps", base + 100_000_000, None, {"lat": 48.1372231, "lon": 11.5754812,
                                                   "speed": 8.25}, None, None),
        ("imu0", "imu", base + 5, "fw-1", {"ax": 1e-3, "az": 9.79, "gz": 0.03}, None, 21.75),
        ("imu0", "imu", base + 10_000_000, "fw-1", {"ax": -0.5, "az": 9.81, "gz": 0.02}, None,
         21.5),
        ("imu0", "imu", base + 20_000_000, "fw-1", {"ax": 0.125, "az": 9.80665, "gz": 0.01},
         None, 21.5),
        ("lidar_top", "lidar", base + 50_000_000, "3.0", {"pose_qw": 0.7071068},
         "lidar/sweep_000.npy", 40.0),
    ]
    out = []
    for device, sensor, ns, firmware, values, file, temp in rows:
        row = {"timestamp_ns": ns, "sensor": sensor, "device_id": device, "session_id": "s00",
               "firmware": firmware, "file": file}
        row.update({c: values.get(c) for c in KNOWN_VALUE_COLUMNS})
        row["temp_c"] = temp
        out.append(row)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_round_trip_through_each_format(tmp_path: Path, fmt: str) -> None:
    path = write_sensor_log(sample_records(), tmp_path / f"log.{fmt}")
    table, quarantined = read_sensor_log(path)
    assert quarantined == []
    assert table.schema.names == SENSOR_LOG_SCHEMA.names + ["temp_c"]
    assert table.schema.field("timestamp_ns").type == pa.int64()
    assert all(table.schema.field(c).type == pa.float64() for c in KNOWN_VALUE_COLUMNS)
    assert table.to_pylist() == _expected()


def test_the_three_formats_give_identical_tables(tmp_path: Path) -> None:
    tables = [read_sensor_log(write_sensor_log(sample_records(), tmp_path / f"log.{fmt}"))[0]
              for fmt in FORMATS]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_jsonl_lines_that_are_not_objects_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"timestamp": 1, "timestamp_unit": "s", "sensor": "imu", "device_id": "a",'
                    ' "ax": 1}\n{"timestamp": 2, oops\n\n[1, 2]\n'
                    '{"timestamp": 3, "timestamp_unit": "s", "sensor": "imu", "device_id": "a",'
                    ' "ax": true}\n')
    table, quarantined = read_sensor_log(path)
    assert [(q.source_uri.rsplit("#", 1)[1], q.detail.split(":")[0]) for q in quarantined] == [
        ("row=1", "line is not valid UTF-8 JSON"),
        ("row=2", "line is a JSON list, expected an object"),
        ("row=3", "ax value 'true' is not numeric"),
    ]
    assert table["timestamp_ns"].to_pylist() == [1_000_000_000]


def test_csv_rows_with_the_wrong_field_count_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("timestamp,timestamp_unit,sensor,device_id,ax\n1,s,imu,a,1\n2,s,imu\n"
                    "3,s,imu,a,3\n")
    table, quarantined = read_sensor_log(path)
    assert len(quarantined) == 1 and "expected 5" in quarantined[0].detail
    assert "'2,s,imu'" in quarantined[0].detail
    assert table["ax"].to_pylist() == [1.0, 3.0]


def test_row_unit_beats_file_metadata_beats_default_unit(tmp_path: Path) -> None:
    records = pa.table({"timestamp": [5, 5], "timestamp_unit": [None, "s"],
                        "sensor": ["imu", "imu"], "device_id": ["a", "b"], "ax": [1.0, 1.0]})
    path = write_sensor_log(records, tmp_path / "log.parquet", unit="ms")
    table, _ = read_sensor_log(path, default_unit="ns")
    assert table["timestamp_ns"].to_pylist() == [5_000_000, 5_000_000_000]
    bare = tmp_path / "bare.csv"
    bare.write_text("timestamp,sensor,device_id,ax\n5,imu,a,1\n")
    table, quarantined = read_sensor_log(bare, default_unit="us")
    assert quarantined == [] and table["timestamp_ns"].to_pylist() == [5_000]


def test_a_file_without_any_unit_is_quarantined_whole(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("timestamp,sensor,device_id,ax\n5,imu,a,1\n6,imu,a,1\n")
    table, quarantined = read_sensor_log(path)
    assert table.num_rows == 0 and table.schema == SENSOR_LOG_SCHEMA
    assert [(q.source_uri, q.reason) for q in quarantined] == [
        (str(path), Reason.MALFORMED_SENSOR_RECORD)]
    assert "no timestamp unit" in quarantined[0].detail


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_missing_a_required_column_is_quarantined_whole(tmp_path: Path, fmt: str) -> None:
    records = pa.table({"timestamp": [1], "timestamp_unit": ["s"], "sensor": ["imu"],
                        "ax": [1.0]})
    path = tmp_path / f"log.{fmt}"
    if fmt == "parquet":
        pq.write_table(records, path)
    else:
        path.write_text("timestamp,timestamp_unit,sensor,ax\n1,s,imu,1\n")
    table, quarantined = read_sensor_log(path)
    assert table.num_rows == 0 and len(quarantined) == 1
    assert quarantined[0].source_uri == str(path) and "device_id" in quarantined[0].detail


def test_a_corrupt_parquet_file_is_quarantined_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    table, quarantined = read_sensor_log(path)
    assert table.num_rows == 0 and "not a readable Parquet file" in quarantined[0].detail


def test_caller_mistakes_raise(tmp_path: Path) -> None:
    with pytest.raises(SensorLogError, match="unsupported sensor-log file type"):
        read_sensor_log(tmp_path / "log.xlsx")
    with pytest.raises(SensorLogError, match="'minutes' is not a timestamp unit"):
        read_sensor_log(tmp_path / "log.csv", default_unit="minutes")
    with pytest.raises(FileNotFoundError):
        read_sensor_log(tmp_path / "missing.csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_small_batches_give_the_same_table_as_one_batch(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    n = 257
    records = pa.table({
        "timestamp": rng.integers(0, 10**9, n),
        "timestamp_unit": rng.choice(["s", "ms", "us", "ns"], n),
        "sensor": ["imu"] * n,
        "device_id": rng.choice(["imu0", "imu1", "imu2"], n),
        "ax": rng.normal(0, 1, n).round(6),
        "rpm": [None] * 200 + list(range(57)),
    })
    path = write_sensor_log(records, tmp_path / f"log.{fmt}")
    whole, _ = read_sensor_log(path)
    streamed, _ = read_sensor_log(path, batch_rows=7)
    assert whole.num_rows == n and streamed.equals(whole)
