"""A day's features computed in worker processes equal the serial rows, cached rows are reused,
and an undecodable frame is named by its position and hash."""

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from dataops_cv.lib.core.tables import table_to_parquet_bytes, to_parquet_bytes
from dataops_cv.lib.curation.feature_cache import Features, day_features
from dataops_cv.lib.curation.features import FEATURE_VERSION, ImageFeatureError
from dataops_cv.lib.curation.tables import FEATURES_SCHEMA
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
    serial, n_serial = day_features(store.__getitem__, keys, Features.empty(), batch=4,
                                    workers=1)
    parallel, n_parallel = day_features(store.__getitem__, keys, Features.empty(), batch=4,
                                        workers=2)
    assert n_serial == n_parallel == len(store)
    assert parallel.shas == serial.shas == sorted(keys)
    assert table_to_parquet_bytes(parallel.to_table()) == table_to_parquet_bytes(
        serial.to_table())


def test_cached_rows_are_reused_and_stale_ones_recomputed(store):
    keys = {sha: sha for sha in store}
    rows, _ = day_features(store.__getitem__, keys, Features.empty(), workers=1)
    first, second = sorted(keys)[:2]
    cached = rows.subset([first, second])
    cached.versions[1] = "old"
    again, computed = day_features(store.__getitem__, keys, cached, batch=4, workers=2)
    assert computed == len(keys) - 1
    assert table_to_parquet_bytes(again.to_table()) == table_to_parquet_bytes(rows.to_table())


def test_the_table_round_trips_and_matches_row_by_row_writing(store):
    """Arrays in, the same Parquet bytes as the rows of Python lists the table held before."""
    keys = {sha: sha for sha in store}
    features, _ = day_features(store.__getitem__, keys, Features.empty(), workers=1)
    rows = [{"sha256": s, "feature_version": FEATURE_VERSION, "phash": features.phash_hex(s),
             "embedding": features.embedding[k].tolist()} for k, s in enumerate(features.shas)]
    table = features.to_table()
    assert table_to_parquet_bytes(table) == to_parquet_bytes(rows, FEATURES_SCHEMA)
    back = Features.from_table(table)
    assert back.shas == features.shas and back.versions == features.versions
    assert (back.phash == features.phash).all() and (back.embedding == features.embedding).all()
    assert back.embedding.dtype == np.float16
    twice = Features.concat([back.subset(back.shas[:3]), back])
    assert twice.shas == back.shas[:3] + back.shas[3:]
    ragged = pa.Table.from_pylist([{**rows[0], "embedding": [1.0]}, rows[1]],
                                  schema=FEATURES_SCHEMA)
    with pytest.raises(ValueError, match="one length expected"):
        Features.from_table(ragged)


def test_an_undecodable_frame_is_named(store):
    bad = hashlib.sha256(b"not an image").hexdigest()
    data = {**store, bad: b"not an image"}
    keys = {sha: sha for sha in data}
    with pytest.raises(ImageFeatureError) as err:
        day_features(data.__getitem__, keys, Features.empty(), batch=3, workers=2)
    assert err.value.sha256 == bad and err.value.index == sorted(keys).index(bad)
    assert FEATURE_VERSION.startswith("cvfeat-")
