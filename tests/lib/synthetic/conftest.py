"""The day under test, generated once for every test of the synthetic generator."""

from __future__ import annotations

import pytest

from dataops_cv.lib.synthetic.drops import DropManifest, write_drop
from dataops_cv.lib.synthetic.frames import SyntheticFrame, generate_day
from tests.lib.synthetic.day import CONFIG, DATE


@pytest.fixture(scope="session")
def day() -> list[SyntheticFrame]:
    return list(generate_day(CONFIG, DATE))


@pytest.fixture(scope="session")
def by_path(day: list[SyntheticFrame]) -> dict[str, SyntheticFrame]:
    return {f.path: f for f in day}


@pytest.fixture(scope="session")
def drop(tmp_path_factory: pytest.TempPathFactory) -> DropManifest:
    return write_drop(CONFIG, DATE, tmp_path_factory.mktemp("drop") / "drop", workers=2)
