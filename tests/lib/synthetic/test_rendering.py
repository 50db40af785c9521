"""Boxes are exact: each is the extent of its object's drawn mask, nearer objects occlude."""

from __future__ import annotations

import dataclasses

import numpy as np

from dataops_cv.lib.synthetic.frames import render_scene
from tests.lib.synthetic.day import CLEAN, DATE


def test_every_box_is_exactly_the_drawn_object() -> None:
    exact = dataclasses.replace(CLEAN, noise_std=0.0, brightness_range=(1.0, 1.0),
                                blur_probability=0.0, frames_per_session=8)
    checked = occluded = overlaps = 0
    for session in range(exact.sessions_per_day):
        for camera in exact.cameras:
            for index in range(exact.frames_per_session):
                scene = render_scene(exact, DATE, session, camera, index)
                pixels = np.asarray(scene.image)
                h, w = scene.instance_map.shape
                in_some_box = np.zeros((h, w), dtype=bool)
                fulls = []
                for i, obj in enumerate(scene.objects):
                    x1, y1, x2, y2 = map(int, obj.box)
                    assert obj.box == obj.label_box and obj.label == obj.class_name
                    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
                    # The box is the extent of the object's whole mask within the frame...
                    mask, mx, my = scene.masks[i]
                    full = np.zeros((h, w), dtype=bool)
                    ys, xs = np.nonzero(mask)
                    inside = (xs + mx >= 0) & (xs + mx < w) & (ys + my >= 0) & (ys + my < h)
                    full[ys[inside] + my, xs[inside] + mx] = True
                    rows, cols = np.flatnonzero(full.any(1)), np.flatnonzero(full.any(0))
                    assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (x1, y1, x2, y2)
                    # ...its visible pixels lie in the box and have the object's colours...
                    visible = scene.instance_map == i + 1
                    vy, vx = np.nonzero(visible)
                    assert ((vx >= x1) & (vx < x2) & (vy >= y1) & (vy < y2)).all()
                    colours = {tuple(c) for c in pixels[visible]}
                    assert colours <= set(scene.palettes[i])
                    # ...and an unoccluded object fills its box edge to edge.
                    if obj.occluded == 0:
                        assert (vx.min(), vy.min(), vx.max() + 1, vy.max() + 1) == (x1, y1, x2, y2)
                    else:
                        occluded += 1
                    in_some_box[y1:y2, x1:x2] = True
                    fulls.append(full)
                    checked += 1
                assert not (scene.instance_map > 0)[~in_some_box].any()
                # Where two objects overlap the farther one (higher up the road) is never seen.
                # Draw order follows the track's sub-pixel bottom, so ties within 3 px are skipped.
                for i, a in enumerate(fulls):
                    for j in range(i + 1, len(fulls)):
                        overlap = a & fulls[j]
                        bottoms = scene.objects[i].box[3], scene.objects[j].box[3]
                        if overlap.any() and abs(bottoms[0] - bottoms[1]) > 3:
                            far = i if bottoms[0] < bottoms[1] else j
                            assert (scene.instance_map[overlap] != far + 1).all()
                            overlaps += 1
    assert checked > 50 and occluded > 0 and overlaps > 0  # real, overlapping scenes
