"""A SceneConfig names what is wrong with it."""

from __future__ import annotations

import pytest

from dataops_cv.lib.synthetic.config import SceneConfig


def test_config_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match="need as many frame slots"):
        SceneConfig(frames_per_session=2, cameras=("a",), sessions_per_day=1)
    with pytest.raises(ValueError, match="image_format"):
        SceneConfig(image_format="webp")
    with pytest.raises(ValueError, match="class_weights"):
        SceneConfig(class_weights=(("truck", 1.0),))
