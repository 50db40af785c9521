"""A day's features computed in worker processes equal the serial rows, cached rows are reused,
and an undecodable frame is named by its position and hash."""

import hashlib

import pytest

from dataops_cv.lib.curation.feature_cache import day_features
from dataops_cv.lib.curation.features import FEATURE_VERSION, ImageFeatureError
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day


@pytest.fixture(scope="module")
def store() -> dict[str, bytes]:
    config = SceneConfig(seed=3, sessions_per_day=1, frames_per_session=11, cameras=("cam",),
                         width=160, height=120, defects=DefectConfig.none())
    out = {f.sha256: f.data for f in generate_day(config, "2026-01-01")
           if f.format in ("png", "jpeg")}
    assert len(out) >= 9
    return out


def test_parallel_rows_equal_serial_rows(store):
    keys = {sha: sha for sha in store}
    serial, n_serial = day_features(store.__getitem__, keys, {}, batch=4, workers=1)
    parallel, n_parallel = day_features(store.__getitem__, keys, {}, batch=4, workers=2)
    assert n_serial == n_parallel == len(store)
    assert list(parallel) == list(serial) and parallel == serial


def test_cached_rows_are_reused_and_stale_ones_recomputed(store):
    keys = {sha: sha for sha in store}
    rows, _ = day_features(store.__getitem__, keys, {}, workers=1)
    first, second = sorted(keys)[:2]
    cached = {first: rows[first], second: {**rows[second], "feature_version": "old"}}
    again, computed = day_features(store.__getitem__, keys, cached, batch=4, workers=2)
    assert computed == len(keys) - 1 and again == rows


def test_an_undecodable_frame_is_named(store):
    bad = hashlib.sha256(b"not an image").hexdigest()
    data = {**store, bad: b"not an image"}
    keys = {sha: sha for sha in data}
    with pytest.raises(ImageFeatureError) as err:
        day_features(data.__getitem__, keys, {}, batch=3, workers=2)
    assert err.value.sha256 == bad and err.value.index == sorted(keys).index(bad)
    assert FEATURE_VERSION.startswith("cvfeat-")
