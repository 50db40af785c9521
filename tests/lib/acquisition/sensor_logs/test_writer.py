"""Writing sensor logs: byte-stable output, normalised tables written back, no unit refused."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from dataops_cv.lib.acquisition.sensor_logs.format import SensorLogError
from dataops_cv.lib.acquisition.sensor_logs.reader import read_sensor_log
from dataops_cv.lib.acquisition.sensor_logs.writer import write_sensor_log
from tests.lib.acquisition.sensor_logs.test_reader import FORMATS, sample_records


def test_a_normalised_table_can_be_written_back_and_read_again(tmp_path: Path) -> None:
    table, _ = read_sensor_log(write_sensor_log(sample_records(), tmp_path / "a.parquet"))
    again, quarantined = read_sensor_log(write_sensor_log(table, tmp_path / "b.jsonl"))
    assert quarantined == [] and again.equals(table)


def test_writer_output_is_byte_stable(tmp_path: Path) -> None:
    for fmt in FORMATS:
        a = write_sensor_log(sample_records(), tmp_path / f"a.{fmt}").read_bytes()
        b = write_sensor_log(sample_records(), tmp_path / f"b.{fmt}").read_bytes()
        assert a == b, fmt


def test_writing_without_any_unit_raises(tmp_path: Path) -> None:
    with pytest.raises(SensorLogError, match="no timestamp unit"):
        write_sensor_log(pa.table({"timestamp": [1], "sensor": ["imu"], "device_id": ["a"]}),
                         tmp_path / "x.csv")
