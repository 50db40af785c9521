"""Frame slots: any one regenerates alone, boxes stay in their image, JPEG days are JPEG."""

from __future__ import annotations

import dataclasses
import io

import pytest
from PIL import Image

from dataops_cv.lib.synthetic.config import CLASSES, DefectKind
from dataops_cv.lib.synthetic.frames import generate_day, synthetic_frame
from tests.lib.synthetic.day import CLEAN, CONFIG, DATE


def test_any_single_frame_regenerates_alone(day) -> None:
    for frame in day[::7] + [f for f in day if f.defects][:5]:
        alone = synthetic_frame(CONFIG, DATE, frame.session, frame.device_id, frame.index)
        slot_file = next(f for f in day if (f.session, f.device_id, f.index) ==
                         (frame.session, frame.device_id, frame.index))
        assert alone == slot_file


def test_annotated_boxes_stay_inside_their_image_except_the_planted_one(day) -> None:
    for frame in day:
        oob = {d.box_index for d in frame.defects if d.kind == DefectKind.BOX_OUT_OF_BOUNDS}
        for i, (cls, x1, y1, x2, y2) in enumerate(frame.boxes):
            assert cls in CLASSES and x1 < x2 and y1 < y2
            inside = 0 <= x1 and 0 <= y1 and x2 <= frame.width and y2 <= frame.height
            assert inside == (i not in oob), (frame.path, i)


def test_jpeg_drops_encode_frames_as_jpeg() -> None:
    config = dataclasses.replace(CLEAN, image_format="jpeg", frames_per_session=2)
    frame = next(generate_day(config, DATE))
    assert frame.path.endswith(".jpg") and frame.format == "jpeg"
    assert Image.open(io.BytesIO(frame.data)).format == "JPEG"


def test_slot_mistakes_are_named() -> None:
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        synthetic_frame(CONFIG, "June 1st", 0, "cam_front", 0)
    with pytest.raises(ValueError, match="not one of"):
        synthetic_frame(CONFIG, DATE, 0, "cam_rear", 0)
