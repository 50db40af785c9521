"""The sensor-log format: file types by suffix, timestamp units, the normalised schema."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from dataops_cv.lib.acquisition.sensor_logs.format import (
    KNOWN_VALUE_COLUMNS,
    SENSOR_LOG_SCHEMA,
    SensorLogError,
    check_unit,
    log_format,
)


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.csv", "csv"), ("a.jsonl", "jsonl"),
    ("dir.v2/a.NDJSON", "jsonl"),
])
def test_the_file_type_follows_the_suffix(name: str, fmt: str) -> None:
    assert log_format(Path(name)) == fmt


def test_other_suffixes_and_units_are_caller_mistakes() -> None:
    with pytest.raises(SensorLogError, match="unsupported sensor-log file type"):
        log_format(Path("log.csv.gz"))
    check_unit(None, "unit")
    check_unit("us", "unit")
    with pytest.raises(SensorLogError, match="unit 'sec' is not a timestamp unit"):
        check_unit("sec", "unit")


def test_the_schema_starts_with_the_reading_then_every_known_value() -> None:
    assert SENSOR_LOG_SCHEMA.names[:6] == ["timestamp_ns", "sensor", "device_id", "session_id",
                                           "firmware", "file"]
    assert SENSOR_LOG_SCHEMA.names[6:] == list(KNOWN_VALUE_COLUMNS)
    assert len(set(KNOWN_VALUE_COLUMNS)) == len(KNOWN_VALUE_COLUMNS)
    assert SENSOR_LOG_SCHEMA.field("timestamp_ns").type == pa.int64()
