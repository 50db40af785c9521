"""Geohash cells of positions."""

from __future__ import annotations

import numpy as np
import pytest

from dataops_cv.lib.fusion.geohash import geohash


def test_geohash_known_value_prefixes_and_nulls():
    lat, lon = np.array([57.64911, np.nan, 0.0, 95.0]), np.array([10.40744, 1.0, np.nan, 0.0])
    assert geohash(lat, lon, 11) == ["u4pruydqqvj", None, None, None]
    for p in range(1, 12):
        assert geohash(lat[:1], lon[:1], p) == ["u4pruydqqvj"[:p]]
    assert geohash(np.array([-90.0, 90.0]), np.array([-180.0, 180.0]), 3) == ["000", "zzz"]
    with pytest.raises(ValueError, match="precision"):
        geohash(lat, lon, 13)
