"""What one camera sees in a session: its street's look and the object tracks that cross it.

Both are sampled once per (seed, date, session, camera); a frame only places the tracks at its
instant (:mod:`.rendering`).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from dataops_cv.lib.synthetic.config import SceneConfig
from dataops_cv.lib.synthetic.seeds import py_rng

Colour = tuple[int, int, int]

_CAR_COLOURS = ((200, 30, 30), (30, 60, 170), (235, 235, 235), (160, 165, 170), (20, 90, 40),
                (230, 190, 20), (35, 35, 35))
CLOTHES = ((200, 60, 60), (40, 120, 200), (240, 200, 40), (60, 160, 80), (120, 60, 160),
           (240, 240, 240), (30, 30, 30))
_SKIN = ((255, 220, 180), (225, 180, 140), (180, 130, 90), (120, 80, 50))
SIGNS = (  # face, symbol
    ((200, 20, 20), (250, 250, 250)), ((20, 70, 190), (250, 250, 250)),
    ((210, 20, 20), (250, 250, 250)), ((250, 205, 0), (20, 20, 20)))


@dataclass(frozen=True)
class Track:
    """One object moving across a camera's view; its shape is :func:`.shapes.object_mask`."""

    track_id: int
    cls: str
    variant: int
    width: int  # px of the object's canvas
    height: int
    x0: float  # left edge at t = 0, px
    speed: float  # px/s, wraps around the frame
    bottom: float  # px
    colours: tuple[Colour, ...]  # colour of mask value 1, 2, ...


@dataclass(frozen=True)
class CameraScene:
    """A camera's street in one session: sky and road gradients, vanishing point, exposure."""

    horizon: int
    sky_top: tuple[float, float, float]
    sky_bottom: tuple[float, float, float]
    road_far: tuple[float, float, float]
    road_near: tuple[float, float, float]
    vanish_x: float
    brightness: float  # the camera's exposure in this session; frames vary a little around it
    tracks: tuple[Track, ...]


def sample_track(r: random.Random, config: SceneConfig, horizon: int, track_id: int) -> Track:
    """Draw one object track from ``r``: class by ``class_weights``, then size, speed, colours."""
    w_img, h_img = config.width, config.height
    names = [c for c, _ in config.class_weights]
    cls = r.choices(names, weights=[w for _, w in config.class_weights])[0]
    depth = r.uniform(0.35, 1.0)  # 1 = nearest
    size = depth * r.uniform(0.85, 1.15)
    direction = r.choice((-1.0, 1.0))
    if cls == "car":
        width = size * 0.34 * w_img
        height = width * r.uniform(0.5, 0.62)
        speed = r.uniform(0.15, 0.5) * w_img
        colours = (r.choice(_CAR_COLOURS), (60, 75, 95), (20, 20, 20))
        variant = r.randrange(2)
    elif cls == "pedestrian":
        height = size * 0.42 * h_img
        width = height * r.uniform(0.34, 0.42)
        speed = r.uniform(0.02, 0.06) * w_img
        colours = (r.choice(CLOTHES), r.choice(_SKIN), (40, 40, 60))
        variant = 0
    elif cls == "cyclist":
        height = size * 0.40 * h_img
        width = height * r.uniform(0.85, 1.0)
        speed = r.uniform(0.06, 0.18) * w_img
        colours = ((230, 120, 20), r.choice(_SKIN), (15, 15, 15), r.choice(CLOTHES))
        variant = 0
    else:
        width = size * 0.09 * w_img
        height = width * r.uniform(2.2, 3.0)
        speed = r.uniform(0.03, 0.1) * w_img
        variant = r.randrange(len(SIGNS))
        face, symbol = SIGNS[variant]
        colours = ((130, 130, 135), face, symbol)
    width_px, height_px = max(2, round(width)), max(2, round(height))
    bottom = horizon + (0.1 + 0.9 * depth) * (h_img - horizon) + r.uniform(-2, 2)
    return Track(track_id, cls, variant, width_px, height_px,
                 x0=r.uniform(0, w_img + width_px), speed=direction * speed, bottom=bottom,
                 colours=colours)


@functools.lru_cache(maxsize=256)
def camera_scene(config: SceneConfig, date: str, session: int, camera: str) -> CameraScene:
    """The street a camera films during a session, with its object tracks."""
    r = py_rng(config.seed, date, session, camera, "scene")
    h = config.height
    horizon = round(h * r.uniform(0.35, 0.55))
    sky_top = (r.uniform(60, 110), r.uniform(110, 160), r.uniform(190, 240))
    sky_bottom = (r.uniform(170, 215), r.uniform(195, 230), r.uniform(220, 250))
    grey = r.uniform(70, 110)
    road_far = (grey + 15, grey + 15, grey + 18)
    road_near = (grey - 20, grey - 20, grey - 16)
    lo, hi = config.objects_per_frame
    n_tracks = r.randint(lo, hi)
    tracks = tuple(sample_track(r, config, horizon, i) for i in range(n_tracks))
    return CameraScene(horizon, sky_top, sky_bottom, road_far, road_near,
                       vanish_x=config.width * r.uniform(0.35, 0.65),
                       brightness=r.uniform(*config.brightness_range), tracks=tracks)
