"""One frame's pixels: the street, the objects placed at the frame's instant (nearer ones drawn
over farther ones), exposure, sensor noise and blur; and the fixed PNG/JPEG encoding."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageFilter

from dataops_cv.lib.synthetic.config import SceneConfig
from dataops_cv.lib.synthetic.seeds import py_rng
from dataops_cv.lib.synthetic.shapes import object_mask
from dataops_cv.lib.synthetic.street import CameraScene, Track

PNG_COMPRESS_LEVEL = 1
# zlib Z_HUFFMAN_ONLY: sensor noise leaves LZ77 little to match, so Huffman coding alone is ~25 %
# faster and ~13 % smaller than the default strategy on these frames.
PNG_COMPRESS_TYPE = 2
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # 4:2:0

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: ``box`` is exact (its pixels, clipped to the frame, not to occluders)."""

    class_name: str  # what was drawn
    box: Box  # x1, y1, x2, y2 in pixel-edge coordinates of the displayed frame
    occluded: float  # share of the object's in-frame pixels hidden by nearer objects
    track_id: int  # stable within a (session, camera); planted objects are negative
    label: str  # class written to the annotations (differs for a mislabeled box)
    label_box: Box  # box written to the annotations (differs for a box out of bounds)


@dataclass
class Scene:
    """The displayed pixels of one frame before encoding, with what was drawn where."""

    image: Image.Image  # RGB
    instance_map: np.ndarray  # int32 H×W; 0 background, i + 1 where objects[i] is visible
    objects: tuple[SceneObject, ...]
    palettes: tuple[tuple[tuple[int, int, int], ...], ...]  # colours each object was drawn in
    masks: tuple[tuple[np.ndarray, int, int], ...]  # each object's full mask and its top-left


@dataclass(frozen=True)
class FrameParams:
    """What varies from frame to frame of a camera, sampled once per frame slot."""

    t: float  # seconds since the session start (reference clock)
    brightness: float
    blur_radius: float  # 0 = sharp
    noise_seed: int
    jitter_us: int


@dataclass(frozen=True)
class Placed:
    """A track at its position in one frame, with the class it is labelled as."""

    track: Track
    x: int
    y: int
    label: str
    unclipped_label: bool = False  # label the object's full extent even beyond the frame


@dataclass(frozen=True)
class _Drawn:
    item: Placed
    box: Box
    label_box: Box
    pixels: int  # in-frame pixels of the object's mask
    palette: tuple[tuple[int, int, int], ...]
    mask: np.ndarray


def frame_params(config: SceneConfig, scene: CameraScene, t: float, *key: object
                 ) -> FrameParams:
    """Sample a frame's exposure, blur, noise seed and clock jitter from the slot's ``key``."""
    r = py_rng(*key, "frame")
    lo, hi = config.brightness_range
    brightness = min(hi, max(lo, scene.brightness * r.uniform(0.98, 1.02)))
    blur = r.uniform(*config.blur_radius) if r.random() < config.blur_probability else 0.0
    noise_seed = r.getrandbits(63)
    jitter = round(r.gauss(0.0, config.clock_jitter_us)) if config.clock_jitter_us else 0
    return FrameParams(t=t, brightness=brightness, blur_radius=blur, noise_seed=noise_seed,
                       jitter_us=jitter)


def placements(scene: CameraScene, config: SceneConfig, t: float) -> list[Placed]:
    """Every track of the scene at ``t``, in drawing order."""
    placed = []
    for track in scene.tracks:
        span = config.width + track.width
        x = (track.x0 + track.speed * t) % span - track.width
        placed.append(Placed(track, round(x), round(track.bottom - track.height), track.cls))
    # Farther objects (higher on the road) first, so nearer ones occlude them.
    placed.sort(key=lambda p: (p.track.bottom, p.track.track_id))
    return placed


@functools.lru_cache(maxsize=64)
def _background(scene: CameraScene, width: int, height: int) -> np.ndarray:
    """The street without objects: sky and road gradients and lane markings (read-only, cached)."""
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    cols = np.arange(width, dtype=np.float32)[None, :, None]
    hz = np.float32(scene.horizon)
    t_sky = np.clip(rows / max(hz, np.float32(1)), 0, 1)
    t_road = np.clip((rows - hz) / max(np.float32(height) - hz, np.float32(1)), 0, 1)
    sky = np.array(scene.sky_top, np.float32) * (1 - t_sky) \
        + np.array(scene.sky_bottom, np.float32) * t_sky
    road = np.array(scene.road_far, np.float32) * (1 - t_road) \
        + np.array(scene.road_near, np.float32) * t_road
    img = np.where(rows < hz, sky, road) * np.ones((1, width, 1), np.float32)
    vx = np.float32(scene.vanish_x)
    below = rows[..., 0] >= hz
    t2 = t_road[..., 0]
    half = np.float32(0.6) + np.float32(2.0) * t2
    for x_bottom, dashed, colour in ((-0.2 * width, False, (200, 200, 190)),
                                     (1.2 * width, False, (200, 200, 190)),
                                     (0.5 * width, True, (235, 235, 225))):
        x_line = vx + (np.float32(x_bottom) - vx) * t2
        on = (np.abs(cols[..., 0] - x_line) <= half) & below
        if dashed:
            on &= (np.floor(np.float32(3.0) / (t2 + np.float32(0.08))) % 2) == 0
        img[on] = colour
    out = np.rint(np.clip(img, 0, 255)).astype(np.uint8)
    out.setflags(write=False)
    return out


def render(config: SceneConfig, scene: CameraScene, placed: list[Placed],
           planted: list[Placed], params: FrameParams) -> Scene:
    """Draw ``placed`` then ``planted`` over the street, then expose, add noise and blur.

    A placed object with less than ``min_box_px`` in view is left out, as the camera would not
    see it either; planted objects are always drawn.
    """
    arr = _background(scene, config.width, config.height).copy()
    inst = np.zeros((config.height, config.width), dtype=np.int32)
    drawn: list[_Drawn] = []
    for item, is_planted in [(p, False) for p in placed] + [(p, True) for p in planted]:
        done = _draw(config, arr, inst, item, is_planted, instance=len(drawn) + 1)
        if done is not None:
            drawn.append(done)
    visible = np.bincount(inst.ravel(), minlength=len(drawn) + 1)
    objects = tuple(
        SceneObject(class_name=d.item.track.cls if d.item.track.cls != "tiny" else d.item.label,
                    box=d.box, occluded=round(1.0 - visible[i + 1] / d.pixels, 4),
                    track_id=d.item.track.track_id, label=d.item.label, label_box=d.label_box)
        for i, d in enumerate(drawn)
    )
    return Scene(image=_expose(config, arr, params), instance_map=inst, objects=objects,
                 palettes=tuple(d.palette for d in drawn),
                 masks=tuple((d.mask, d.item.x, d.item.y) for d in drawn))


def _draw(config: SceneConfig, arr: np.ndarray, inst: np.ndarray, item: Placed,
          is_planted: bool, instance: int) -> _Drawn | None:
    """Paint one object into ``arr`` and ``inst`` (as ``instance``); None if it is not drawn."""
    w_img, h_img = config.width, config.height
    mask, palette = object_mask(item.track)
    mh, mw = mask.shape
    x0, y0 = max(item.x, 0), max(item.y, 0)
    x1, y1 = min(item.x + mw, w_img), min(item.y + mh, h_img)
    if x1 <= x0 or y1 <= y0:
        return None
    sub = mask[y0 - item.y:y1 - item.y, x0 - item.x:x1 - item.x]
    sel = sub > 0
    rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
    if rows.size == 0:
        return None
    box = (float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1),
           float(y0 + rows[-1] + 1))
    if not is_planted and min(box[2] - box[0], box[3] - box[1]) < config.min_box_px:
        return None
    region = arr[y0:y1, x0:x1]
    region[sel] = palette[sub[sel] - 1]
    inst[y0:y1, x0:x1][sel] = instance
    label_box = box
    if item.unclipped_label:
        full_rows = np.flatnonzero((mask > 0).any(axis=1))
        full_cols = np.flatnonzero((mask > 0).any(axis=0))
        label_box = (float(item.x + full_cols[0]), float(item.y + full_rows[0]),
                     float(item.x + full_cols[-1] + 1), float(item.y + full_rows[-1] + 1))
    return _Drawn(item, box, label_box, int(sel.sum()),
                  tuple(tuple(int(v) for v in c) for c in palette), mask)


def _expose(config: SceneConfig, arr: np.ndarray, params: FrameParams) -> Image.Image:
    """The camera's exposure gain, sensor noise and blur over the drawn pixels."""
    # Integer maths from here on: fast, and the same result on every CPU.
    gain = round(params.brightness * 256)
    if gain != 256 or config.noise_std > 0:
        work = arr.astype(np.int32)
        if gain != 256:
            work = (work * gain + 128) >> 8
        if config.noise_std > 0:
            noise = np.frombuffer(np.random.default_rng(params.noise_seed).bytes(work.size),
                                  np.uint8).reshape(work.shape)
            work += _noise_lut(config.noise_std)[noise]
        arr = np.clip(work, 0, 255).astype(np.uint8)
    image = Image.fromarray(arr, "RGB")
    if params.blur_radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(params.blur_radius))
    return image


@functools.lru_cache(maxsize=16)
def _noise_lut(std: float) -> np.ndarray:
    """Gaussian noise levels for the 256 values of a random byte (equal-probability quantiles):
    a byte per channel costs a fraction of a float normal draw."""
    dist = NormalDist(0.0, std)
    return np.array([round(dist.inv_cdf((i + 0.5) / 256)) for i in range(256)], dtype=np.int32)


def encode(image: Image.Image, fmt: str, **extra: object) -> bytes:
    """``image`` as PNG or JPEG bytes with the rig's fixed encoder settings.

    ``extra`` goes to ``Image.save`` (e.g. ``exif``); ``quality`` overrides the JPEG quality.
    """
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL,
                   compress_type=PNG_COMPRESS_TYPE, optimize=False, **extra)
    else:
        quality = extra.pop("quality", JPEG_QUALITY)
        image.save(buf, format="JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING,
                   optimize=False, progressive=False, **extra)
    return buf.getvalue()
