"""Normalising sensor-log rows: timestamps convert exactly to ns, bad rows are quarantined with
their reason and good rows survive, rows are sorted, extra numeric columns are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataops_cv.lib.acquisition.sensor_logs.format import DROPPED_COLUMNS_METADATA_KEY
from dataops_cv.lib.acquisition.sensor_logs.reader import read_sensor_log
from dataops_cv.lib.acquisition.sensor_logs.writer import write_sensor_log
from dataops_cv.lib.core.quarantine import Reason
from tests.lib.acquisition.sensor_logs.test_reader import FORMATS

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
