"""Same seed, same bytes (frames, sensor logs, sweeps); another seed or date, other bytes."""

from __future__ import annotations

import dataclasses

from dataops_cv.lib.synthetic.frames import generate_day, synthetic_frame
from dataops_cv.lib.synthetic.sensors import generate_sensor_records
from tests.lib.synthetic.day import CONFIG, DATE


def test_same_seed_gives_identical_bytes_another_seed_different(day) -> None:
    again = list(generate_day(CONFIG, DATE, workers=3))  # the thread pool must not change output
    assert [(f.path, f.sha256, f.boxes, f.defects) for f in again] == \
        [(f.path, f.sha256, f.boxes, f.defects) for f in day]
    first = [s.table for s in generate_sensor_records(CONFIG, DATE)]
    second = [s.table for s in generate_sensor_records(CONFIG, DATE)]
    assert all(a.equals(b) for a, b in zip(first, second, strict=True))
    sweeps = [d for _, d in next(generate_sensor_records(CONFIG, DATE)).sweeps()]
    assert sweeps == [d for _, d in next(generate_sensor_records(CONFIG, DATE)).sweeps()]

    other = dataclasses.replace(CONFIG, seed=8)
    assert synthetic_frame(other, DATE, 0, "cam_front", 0).sha256 != day[0].sha256
    assert not next(generate_sensor_records(other, DATE)).table.equals(first[0])
    assert synthetic_frame(CONFIG, "2024-06-02", 0, "cam_front", 0).sha256 != day[0].sha256
