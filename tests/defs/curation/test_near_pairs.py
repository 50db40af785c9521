"""A curation re-run searches only the near-duplicate pairs with a new frame, and finds exactly
the pairs of a full search."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pytest
from PIL import Image

from dataops_cv.defs.curation.assets import _near_pairs
from dataops_cv.lib.curation import near_duplicates, registration
from dataops_cv.lib.curation.feature_cache import Features
from dataops_cv.lib.curation.features import FEATURE_VERSION, image_features
from dataops_cv.lib.curation.near_duplicates import NearDupConfig
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day


def _cropped(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
        out = io.BytesIO()
        img.convert("RGB").crop((round(0.03 * w), round(0.03 * h), w, h)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def day():
    """Two sessions of video frames, with a copy under other bytes and a crop of every fifth."""
    config = SceneConfig(seed=5, sessions_per_day=2, frames_per_session=10,
                         defects=DefectConfig.none())
    datas = [f.data for f in generate_day(config, "2026-11-22")]
    datas += [d + b"\0" for d in datas[::5]] + [_cropped(d) for d in datas[2::5]]
    phash, emb = image_features(datas)
    shas = [hashlib.sha256(d).hexdigest() for d in datas]
    features = Features(shas, phash, emb, [FEATURE_VERSION] * len(shas))
    return sorted(shas), features


def test_a_re_run_keeps_the_last_pairs_and_searches_only_new_frames(day, monkeypatch):
    shas, features = day
    config = NearDupConfig()
    late = set(shas[1::6])  # new in this run
    gone = next(s for s in shas if s not in late)  # in the last run, not in this one
    last = [s for s in shas if s not in late]
    here = [s for s in shas if s != gone]
    full = _near_pairs(here, features, config, 1)
    assert len(full) >= 4
    earlier = (set(last), [dataclasses.asdict(p) for p in _near_pairs(last, features, config, 1)])
    registered: list[int] = []
    real = registration.register_pairs

    def counted(emb, i, *args):
        registered.append(len(i))
        return real(emb, i, *args)

    monkeypatch.setattr(near_duplicates, "register_pairs", counted)
    assert _near_pairs(here, features, config, 1, earlier) == full
    incremental, registered[:] = sum(registered), []
    _near_pairs(here, features, config, 1)
    assert 0 < incremental < sum(registered)
