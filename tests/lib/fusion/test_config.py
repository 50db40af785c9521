"""FusionConfig: hashable, versioned and validated; inputs that cannot be fused."""

from __future__ import annotations

import pytest

from dataops_cv.lib.fusion.config import FusionConfig, FusionError
from dataops_cv.lib.fusion.fuse import fuse
from tests.lib.fusion.inputs import T0, frame_table, sensor_table


def test_config_is_hashable_versioned_and_validated():
    assert hash(FusionConfig()) == hash(FusionConfig())
    assert FusionConfig().version() == FusionConfig().version()
    assert FusionConfig(tolerance_ms={"imu": 10.0, "gps": 60.0, "lidar": 30.0}).version() \
        == FusionConfig().version()
    assert FusionConfig(geo_precision=8).version() != FusionConfig().version()
    assert FusionConfig().tolerance_ms == {"imu": 10.0, "gps": 60.0, "lidar": 30.0}
    with pytest.raises(ValueError, match="tolerance_ms"):
        FusionConfig(tolerance_ms={"imu": -1.0})
    with pytest.raises(FusionError, match="capture_time"):
        fuse(frame_table([T0]).drop_columns(["capture_time"]), sensor_table())
