"""Streaming: every variant once, keyed by its inputs, skipping the keys it is told to skip."""

from __future__ import annotations

from dataops_cv.lib.augmentation.stream import SourceBox, SourceSample, augment_stream, encode_png
from tests.lib.augmentation.conftest import scene


def test_stream_reuses_nothing_it_is_told_to_skip_and_reports_dropped_boxes(policy):
    img = scene()
    data = encode_png(img)
    box = SourceBox("ann1", "car", 1, (40.0, 30.0, 90.0, 70.0))
    edge = SourceBox("ann2", "car", 1, (0.0, 0.0, 3.0, 3.0))
    sample = SourceSample("abc", lambda: data, (box, edge), "imported")
    out = list(augment_stream([sample], policy, variants=3, batch_size=2))
    assert [v.variant for v in out] == [0, 1, 2]
    assert len({v.input_key for v in out}) == 3
    for v in out:
        assert len(v.boxes) + v.boxes_dropped == 2
        assert all(b["source_annotation_id"] in ("ann1", "ann2") for b in v.boxes)
    skip = frozenset({out[0].input_key, out[2].input_key})
    assert [v.variant for v in augment_stream([sample], policy, variants=3, skip=skip)] == [1]
