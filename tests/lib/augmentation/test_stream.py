"""Streaming: every variant once, keyed by its inputs, skipping the keys it is told to skip;
recipes without pixels, rendered later to the same bytes."""

from __future__ import annotations

import hashlib

import pytest

from dataops_cv.lib.augmentation.stream import (
    SourceBox,
    SourceSample,
    augment_stream,
    encode_png,
    render_png,
)
from tests.lib.augmentation.conftest import H, W, scene


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


def test_a_recipe_is_the_rendered_variant_without_pixels_and_renders_to_its_bytes(policy):
    data = encode_png(scene())
    box = SourceBox("ann1", "car", 1, (40.0, 30.0, 90.0, 70.0))
    loads = []

    def load() -> bytes:
        loads.append(1)
        return data

    rendered = list(augment_stream([SourceSample("abc", lambda: data, (box,), "imported")],
                                   policy, variants=4))
    # The frame's size is known, so recipes never read its bytes.
    recipes = list(augment_stream([SourceSample("abc", load, (box,), "imported", (W, H))],
                                  policy, variants=4, render=False))
    assert not loads
    assert [(v.input_key, v.params, v.boxes, v.boxes_dropped) for v in recipes] == \
        [(v.input_key, v.params, v.boxes, v.boxes_dropped) for v in rendered]
    assert all(v.png is None and v.sha256 is None for v in recipes)
    for v in rendered:
        assert render_png(data, v.params) == v.png
        assert hashlib.sha256(v.png).hexdigest() == v.sha256
    some = frozenset({rendered[1].input_key})
    mixed = list(augment_stream([SourceSample("abc", load, (box,), "imported", (W, H))],
                                policy, variants=4, render=some.__contains__))
    assert [v.png is not None for v in mixed] == [False, True, False, False]
    assert mixed[1].png == rendered[1].png


def test_rendering_a_recipe_for_another_size_fails_loudly(policy):
    data = encode_png(scene())
    (v,) = augment_stream([SourceSample("abc", lambda: data, (), "none", (W + 1, H))], policy,
                          variants=1, render=False)
    with pytest.raises(ValueError, match="parameters were sampled for"):
        render_png(data, v.params)
