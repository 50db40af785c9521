"""The generic sensor-log format: the same readings from Parquet, CSV and JSONL give the same table;
bad rows are quarantined with their reason and good rows survive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataops_cv.lib.core.quarantine import Reason
from dataops_cv.lib.acquisition.sensor_logs import (
    DROPPED_COLUMNS_METADATA_KEY,
    KNOWN_VALUE_COLUMNS,
    SENSOR_LOG_SCHEMA,
    SensorLogError,
    read_sensor_log,
    write_sensor_log,
)

FORMATS = ("parquet", "csv", "jsonl")
T0_S = 1_717_228_800  # 2024-06-01T08:00:00Z


def _records() -> pa.Table:
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
    path = write_sensor_log(_records(), tmp_path / f"log.{fmt}")
    table, quarantined = read_sensor_log(path)
    assert quarantined == []
    assert table.schema.names == SENSOR_LOG_SCHEMA.names + ["temp_c"]
    assert table.schema.field("timestamp_ns").type == pa.int64()
    assert all(table.schema.field(c).type == pa.float64() for c in KNOWN_VALUE_COLUMNS)
    assert table.to_pylist() == _expected()


def test_the_three_formats_give_identical_tables(tmp_path: Path) -> None:
    tables = [read_sensor_log(write_sensor_log(_records(), tmp_path / f"log.{fmt}"))[0]
              for fmt in FORMATS]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def test_a_normalised_table_can_be_written_back_and_read_again(tmp_path: Path) -> None:
    table, _ = read_sensor_log(write_sensor_log(_records(), tmp_path / "a.parquet"))
    again, quarantined = read_sensor_log(write_sensor_log(table, tmp_path / "b.jsonl"))
    assert quarantined == [] and again.equals(table)


def test_writer_output_is_byte_stable(tmp_path: Path) -> None:
    for fmt in FORMATS:
        a = write_sensor_log(_records(), tmp_path / f"a.{fmt}").read_bytes()
        b = write_sensor_log(_records(), tmp_path / f"b.{fmt}").read_bytes()
        assert a == b, fmt


# One bad thing per row, each with a word its detail must contain; row 0 and the last are good.
MALFORMED_ROWS = [
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "imu", "device_id": "imu0",
      "ax": "0.5"}, None),
    ({"timestamp": "", "timestamp_unit": "ms", "sensor": "imu", "device_id": "imu0",
      "ax": "0.5"}, "timestamp is missing"),
    ({"timestamp": "12:00:01", "timestamp_unit": "ms", "sensor": "imu", "device_id": "imu0",
      "ax": "0.5"}, "is not a number"),
    ({"timestamp": "1000", "timestamp_unit": "min", "sensor": "imu", "device_id": "imu0",
      "ax": "0.5"}, "unknown timestamp unit 'min'"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "", "device_id": "imu0",
      "ax": "0.5"}, "sensor is missing"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "imu", "device_id": "",
      "ax": "0.5"}, "device_id is missing"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "imu", "device_id": "imu0",
      "ax": "0.5g"}, "ax value '0.5g' is not numeric"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "imu", "device_id": "imu0",
      "ax": "inf"}, "not finite"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "lidar", "device_id": "lidar0",
      "file": "/etc/passwd"}, "is absolute"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "lidar", "device_id": "lidar0",
      "file": "sweeps/../../secret.npy"}, "escapes the log's folder"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "lidar", "device_id": "lidar0",
      "file": "s3://bucket/x.npy"}, "is absolute"),
    ({"timestamp": "1000", "timestamp_unit": "ms", "sensor": "imu", "device_id": "imu0"},
     "no values and no file"),
    ({"timestamp": "2000", "timestamp_unit": "ms", "sensor": "LiDAR", "device_id": "lidar0",
      "file": "sweeps/./a.npy"}, None),
]
COLUMNS = ["timestamp", "timestamp_unit", "sensor", "device_id", "ax", "file"]


def _write_rows(path: Path, rows: list[dict]) -> None:
    fmt = path.suffix.lstrip(".")
    if fmt == "csv":
        lines = [",".join(COLUMNS)] + [",".join(r.get(c, "") for c in COLUMNS) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        def value(text: str) -> object:
            # Numbers as JSON numbers where they are numbers, so both JSON paths are exercised.
            for cast in (int, float):
                try:
                    return cast(text) if text not in ("inf",) else text
                except ValueError:
                    pass
            return text
        path.write_text("".join(json.dumps({k: value(v) for k, v in r.items() if v != ""}) + "\n"
                                for r in rows))
    else:
        pq.write_table(pa.table({c: pa.array([r.get(c) or None for r in rows], pa.string())
                                 for c in COLUMNS}), path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_malformed_row_is_quarantined_with_its_reason(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"log.{fmt}"
    _write_rows(path, [row for row, _ in MALFORMED_ROWS])
    table, quarantined = read_sensor_log(path)
    by_row = {q.source_uri: q for q in quarantined}
    expected_bad = {f"{path}#row={i}": why for i, (_, why) in enumerate(MALFORMED_ROWS) if why}
    assert set(by_row) == set(expected_bad)
    for uri, why in expected_bad.items():
        record = by_row[uri]
        assert record.reason == Reason.MALFORMED_SENSOR_RECORD
        assert record.kind == "sensor_record"
        assert why in record.detail, (uri, record.detail)
    assert table.select(["timestamp_ns", "sensor", "device_id", "ax", "file"]).to_pylist() == [
        {"timestamp_ns": 1_000_000_000, "sensor": "imu", "device_id": "imu0", "ax": 0.5,
         "file": None},
        {"timestamp_ns": 2_000_000_000, "sensor": "lidar", "device_id": "lidar0", "ax": None,
         "file": "sweeps/a.npy"},
    ]


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


@pytest.mark.parametrize(("text", "unit", "expected_ns"), [
    ("1717228800", "s", 1_717_228_800_000_000_000),
    ("1717228800.083217", "s", 1_717_228_800_083_217_000),
    ("1717228800083.217", "ms", 1_717_228_800_083_217_000),
    ("1717228800083217", "us", 1_717_228_800_083_217_000),
    ("1717228800083217123", "ns", 1_717_228_800_083_217_123),
    ("1717228800.0000000015", "s", 1_717_228_800_000_000_002),  # sub-ns halves round up
    ("1.7172288e9", "s", 1_717_228_800_000_000_000),
    ("-1.5", "s", -1_500_000_000),
    ("2.5", "us", 2_500),
    (" 42 ", "MS", 42_000_000),
])
def test_units_convert_exactly_to_nanoseconds(tmp_path: Path, text: str, unit: str,
                                              expected_ns: int) -> None:
    path = tmp_path / "log.csv"
    path.write_text(f"timestamp,timestamp_unit,sensor,device_id,ax\n{text},{unit},imu,a,1\n")
    table, quarantined = read_sensor_log(path)
    assert quarantined == []
    assert table["timestamp_ns"].to_pylist() == [expected_ns]


def test_typed_parquet_timestamps_convert_to_nanoseconds(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    floats = pa.table({"timestamp": pa.array([1717228800.083217, 12.5]),
                       "timestamp_unit": ["s", "ms"], "sensor": ["imu"] * 2,
                       "device_id": ["a", "b"], "ax": [1.0, 2.0]})
    pq.write_table(floats, path)
    table, _ = read_sensor_log(path)
    ns = table["timestamp_ns"].to_pylist()
    # A float64 holds epoch seconds to ~0.2 µs: that much, and no more, may be lost.
    assert abs(ns[0] - 1_717_228_800_083_217_000) < 500 and ns[1] == 12_500_000
    native = pa.table({"timestamp": pa.array([1_717_228_800_083_217], pa.timestamp("us")),
                       "sensor": ["imu"], "device_id": ["a"], "ax": [1.0]})
    pq.write_table(native, path)
    table, quarantined = read_sensor_log(path)
    assert quarantined == [] and table["timestamp_ns"].to_pylist() == [1_717_228_800_083_217_000]


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
    with pytest.raises(SensorLogError, match="no timestamp unit"):
        write_sensor_log(pa.table({"timestamp": [1], "sensor": ["imu"], "device_id": ["a"]}),
                         tmp_path / "x.csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_out_of_order_and_duplicate_timestamps_are_kept_and_sorted(tmp_path: Path,
                                                                   fmt: str) -> None:
    records = pa.table({
        "timestamp": [30, 10, 20, 20, 5, 10],
        "sensor": ["imu"] * 6,
        "device_id": ["b", "b", "b", "b", "a", "b"],
        "ax": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # says which input row ended where
    })
    table, quarantined = read_sensor_log(write_sensor_log(records, tmp_path / f"l.{fmt}",
                                                          unit="us"))
    assert quarantined == []
    assert table.select(["device_id", "timestamp_ns", "ax"]).to_pylist() == [
        {"device_id": "a", "timestamp_ns": 5_000, "ax": 5.0},
        {"device_id": "b", "timestamp_ns": 10_000, "ax": 2.0},
        {"device_id": "b", "timestamp_ns": 10_000, "ax": 6.0},
        {"device_id": "b", "timestamp_ns": 20_000, "ax": 3.0},
        {"device_id": "b", "timestamp_ns": 20_000, "ax": 4.0},
        {"device_id": "b", "timestamp_ns": 30_000, "ax": 1.0},
    ]


def test_extra_numeric_columns_are_kept_and_text_columns_dropped(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    lines = [{"timestamp": i, "sensor": "imu", "device_id": "a", "ax": 1.0, "note": "ok"}
             for i in range(4)]
    lines[3]["rpm"] = 1200  # an extra column that first appears late in the file
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table, quarantined = read_sensor_log(path, default_unit="s")
    assert quarantined == []
    assert "note" not in table.column_names
    assert table.schema.metadata[DROPPED_COLUMNS_METADATA_KEY] == b"note"
    assert table["rpm"].to_pylist() == [None, None, None, 1200.0]


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
