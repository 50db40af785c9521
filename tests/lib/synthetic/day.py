"""The capture day the synthetic generator's tests check, and helpers to read it."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image

from dataops_cv.lib.synthetic.config import DefectConfig, DefectKind, SceneConfig
from dataops_cv.lib.synthetic.frames import SyntheticFrame, render_scene

DATE = "2024-06-01"
# 2 sessions x 3 cameras x 20 frames = 120 slots for the 19 default defects.
CONFIG = SceneConfig(seed=7, frames_per_session=20)
CLEAN = dataclasses.replace(CONFIG, defects=DefectConfig.none())


def slot_frames(day: list[SyntheticFrame]) -> list[SyntheticFrame]:
    """The frame of every slot (not the extra files planted next to some)."""
    extra = {DefectKind.NOT_AN_IMAGE, DefectKind.EXACT_DUPLICATE, DefectKind.NEAR_DUPLICATE}
    return [f for f in day if not any(d.kind in extra for d in f.defects)]


def luma(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def clean_image(frame: SyntheticFrame) -> Image.Image:
    """The same slot rendered on a day without defects (same scene, same noise)."""
    return render_scene(CLEAN, DATE, frame.session, frame.device_id, frame.index).image
