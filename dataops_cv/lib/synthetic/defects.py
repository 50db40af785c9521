"""Planted defects: which frame slot carries which defect, and the files each defect makes.

``DefectConfig`` says how many of each :class:`DefectKind` a day gets. Each one takes its own frame
slot (session, camera, index), chosen from a seed of (seed, date); the slot's file is replaced by
the defect, or, for ``not_an_image`` and the duplicates, a second file is written next to it. Every
planted defect is a :class:`PlantedDefect` on the frame that carries it, so tests know exactly what
to expect.

Pixel-level defects (dark, blurry, planted boxes) change what is rendered
(:func:`defect_frame_params`, :func:`planted_objects`); format-level ones (truncation, CMYK,
EXIF rotation, ...) change how the rendered frame is written (:func:`slot_file`,
:func:`extra_file`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from dataops_cv.lib.synthetic.config import CLASSES, DefectKind, SceneConfig
from dataops_cv.lib.synthetic.rendering import Box, FrameParams, Placed, Scene, SceneObject, encode
from dataops_cv.lib.synthetic.seeds import py_rng
from dataops_cv.lib.synthetic.street import CLOTHES, SIGNS, Track, sample_track

NEAR_DUPLICATE_JPEG_QUALITY = 70
NEAR_DUPLICATE_SCALE = 0.75
DARK_BRIGHTNESS = 0.07
TINY_BOX_MAX_PX = 4

# Defects that add a second file next to their slot; every other kind replaces the slot's file.
EXTRA_FILE_DEFECTS = frozenset(
    {DefectKind.NOT_AN_IMAGE, DefectKind.EXACT_DUPLICATE, DefectKind.NEAR_DUPLICATE})
NEAR_DUPLICATE_VARIANTS = ("reencode", "resize", "crop")
_BOX_DEFECTS = frozenset(
    {DefectKind.TINY_BOX, DefectKind.MISLABELED_BOX, DefectKind.BOX_OUT_OF_BOUNDS})

Slot = tuple[int, int, int]  # session, camera index, frame index


@dataclass(frozen=True)
class PlantedDefect:
    """Ground truth for one planted defect.

    ``path`` is the drop-relative file that holds it; ``source_path`` the frame a duplicate copies;
    ``box_index`` indexes the file's annotated boxes for box defects; ``params`` holds what a test
    needs (``orientation``, ``variant``, ``true_class``, ``kept_bytes``, ...).
    """

    kind: DefectKind
    path: str
    session_id: str
    device_id: str
    source_path: str | None = None
    box_index: int | None = None
    detail: str = ""
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotFile:
    """The bytes of one file a frame slot writes, what they show and what a defect made of them."""

    data: bytes
    format: str  # what the bytes are: png | jpeg | text | empty
    size: tuple[int, int]  # displayed size; (0, 0) for a file that never was an image
    objects: tuple[SceneObject, ...]
    detail: str = ""
    params: dict[str, object] = field(default_factory=dict)
    box_index: int | None = None
    copies_slot: bool = False  # a duplicate of the slot's frame file


@functools.lru_cache(maxsize=32)
def defect_plan(config: SceneConfig, date: str) -> dict[Slot, tuple[DefectKind, int]]:
    """Which slot carries which defect, and its ordinal among defects of that kind."""
    wanted = [(kind, n) for kind, count in config.defects.counts().items() for n in range(count)]
    slots = [(s, c, k) for s in range(config.sessions_per_day) for c in range(len(config.cameras))
             for k in range(config.frames_per_session)]
    chosen = py_rng(config.seed, date, "defects").sample(slots, len(wanted))
    return dict(zip(chosen, wanted, strict=True))


def _blurry_radius(config: SceneConfig) -> float:
    """Gaussian blur radius of a planted blurry frame (px)."""
    return max(3.0, 0.025 * max(config.width, config.height))


def defect_frame_params(config: SceneConfig, kind: DefectKind | None, params: FrameParams
                        ) -> FrameParams:
    """The frame's parameters as the slot's defect changes them (dark, blurry)."""
    if kind == DefectKind.DARK:
        return dataclasses.replace(params, brightness=DARK_BRIGHTNESS)
    if kind == DefectKind.BLURRY:
        return dataclasses.replace(params, blur_radius=_blurry_radius(config))
    return params


def planted_objects(config: SceneConfig, kind: DefectKind | None, key: tuple[object, ...]
                    ) -> list[Placed]:
    """The object a box defect adds on top of the slot's frame (none for other kinds)."""
    if kind not in _BOX_DEFECTS:
        return []
    r = py_rng(*key, "planted")
    w_img, h_img = config.width, config.height
    if kind == DefectKind.TINY_BOX:
        side_w, side_h = r.randint(2, TINY_BOX_MAX_PX), r.randint(2, TINY_BOX_MAX_PX)
        cls = r.choice(("pedestrian", "traffic_sign"))
        colour = (r.choice(CLOTHES),) if cls == "pedestrian" else (SIGNS[0][0],)
        track = Track(-1, "tiny", 0, side_w, side_h, 0.0, 0.0, 0.0, colour)
        return [Placed(track, r.randrange(w_img - side_w), r.randrange(h_img - side_h), cls)]
    track = sample_track(r, config, round(h_img * 0.45), -1)
    tw, th = min(track.width, w_img - 1), min(track.height, h_img - 1)
    track = Track(-1, track.cls, track.variant, max(tw, config.min_box_px),
                  max(th, config.min_box_px), 0.0, 0.0, 0.0, track.colours)
    if kind == DefectKind.MISLABELED_BOX:
        wrong = r.choice([c for c in CLASSES if c != track.cls])
        x = r.randrange(max(1, w_img - track.width + 1))
        y = r.randrange(max(1, h_img - track.height + 1))
        return [Placed(track, x, y, wrong)]
    # Out of bounds: 30-45 % of the object hangs over the right or bottom edge.
    if r.random() < 0.5:
        x = w_img - round(track.width * r.uniform(0.55, 0.7))
        y = r.randrange(max(1, h_img - track.height + 1))
    else:
        x = r.randrange(max(1, w_img - track.width + 1))
        y = h_img - round(track.height * r.uniform(0.55, 0.7))
    return [Placed(track, x, y, track.cls, unclipped_label=True)]


def slot_file(config: SceneConfig, kind: DefectKind | None, ordinal: int, scene: Scene
              ) -> SlotFile:
    """The file of a frame slot: its rendered frame in the configured format, or, for a
    format-level defect, the broken or unusual file that replaces it.

    Args:
        kind: the slot's defect, if any; ``ordinal`` counts defects of that kind and picks
            variants in turn (EXIF orientation 6 or 8).
    """
    replaced = _replaced_file(kind, ordinal, scene.image)
    if replaced is not None:
        data, fmt, params, detail = replaced
        return SlotFile(data, fmt, scene.image.size, scene.objects, detail, params)
    data = encode(scene.image, config.image_format)
    params, detail, box_index = _drawn_defect_truth(config, kind, scene)
    return SlotFile(data, config.image_format, scene.image.size, scene.objects, detail, params,
                    box_index)


def _replaced_file(kind: DefectKind | None, ordinal: int, image: Image.Image
                   ) -> tuple[bytes, str, dict[str, object], str] | None:
    """(bytes, format, params, detail) of a format-level defect; None for other kinds."""
    if kind == DefectKind.ZERO_BYTE:
        return b"", "empty", {}, "file of zero bytes"
    if kind in (DefectKind.TRUNCATED_PNG, DefectKind.TRUNCATED_JPEG):
        fmt = "png" if kind == DefectKind.TRUNCATED_PNG else "jpeg"
        full = encode(image, fmt)
        data = full[: len(full) // 2]
        return (data, fmt, {"full_bytes": len(full), "kept_bytes": len(data)},
                f"{fmt} cut after {len(data)} of {len(full)} bytes")
    if kind == DefectKind.CMYK_JPEG:
        return encode(image.convert("CMYK"), "jpeg"), "jpeg", {"mode": "CMYK"}, "JPEG in CMYK"
    if kind == DefectKind.PNG_16BIT:
        grey16 = np.asarray(image.convert("L"), dtype=np.uint16) * np.uint16(257)
        return (encode(Image.fromarray(grey16), "png"), "png", {"mode": "I;16", "bit_depth": 16},
                "16-bit grayscale PNG")
    if kind == DefectKind.PALETTE_PNG:
        quantised = image.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        return (encode(quantised, "png"), "png", {"mode": "P", "colors": 64},
                "palette PNG, 64 colours")
    if kind == DefectKind.RGBA_PNG:
        return encode(image.convert("RGBA"), "png"), "png", {"mode": "RGBA"}, "opaque RGBA PNG"
    if kind == DefectKind.EXIF_ROTATED:
        orientation = 6 if ordinal % 2 == 0 else 8
        # Stored sideways so that applying the orientation shows `image`: boxes stay as displayed.
        stored = image.transpose(Image.Transpose.ROTATE_90 if orientation == 6
                                 else Image.Transpose.ROTATE_270)
        exif = Image.Exif()
        exif[0x0112] = orientation
        return (encode(stored, "jpeg", exif=exif.tobytes()), "jpeg",
                {"orientation": orientation, "stored_size": list(stored.size)},
                f"JPEG stored sideways with EXIF orientation {orientation}")
    return None


def _drawn_defect_truth(config: SceneConfig, kind: DefectKind | None, scene: Scene
                        ) -> tuple[dict[str, object], str, int | None]:
    """(params, detail, box_index) of a pixel-level defect, read off the rendered frame."""
    if kind == DefectKind.DARK:
        return {"brightness": DARK_BRIGHTNESS}, "underexposed frame", None
    if kind == DefectKind.BLURRY:
        return {"radius": _blurry_radius(config)}, "Gaussian blur over the whole frame", None
    if kind not in _BOX_DEFECTS:
        return {}, "", None
    box_index = len(scene.objects) - 1  # the planted object is drawn last
    obj = scene.objects[box_index]
    if kind == DefectKind.TINY_BOX:
        return ({"box": list(obj.box)},
                f"{obj.label} box of {obj.box[2] - obj.box[0]:g}x{obj.box[3] - obj.box[1]:g} px",
                box_index)
    if kind == DefectKind.MISLABELED_BOX:
        return ({"true_class": obj.class_name, "labelled_class": obj.label},
                f"a {obj.class_name} labelled {obj.label}", box_index)
    width, height = scene.image.size
    return ({"labelled_box": list(obj.label_box), "visible_box": list(obj.box)},
            f"box {obj.label_box} reaches beyond the {width}x{height} frame", box_index)


def extra_file(config: SceneConfig, kind: DefectKind, ordinal: int, scene: Scene,
               main: SlotFile, *, session_id: str, camera: str, index: int) -> SlotFile:
    """The second file an :data:`EXTRA_FILE_DEFECTS` defect writes next to the slot's ``main``.

    Args:
        ordinal: counts defects of that kind; near duplicates cycle through
            :data:`NEAR_DUPLICATE_VARIANTS` by it.
    """
    if kind == DefectKind.NOT_AN_IMAGE:
        text = (f"capture-rig status log\nsession={session_id}\ncamera={camera}\n"
                f"frame={index}\nstatus=ok\n").encode()
        return SlotFile(text, "text", (0, 0), (), detail=f"UTF-8 text under a .{config.ext} name")
    if kind == DefectKind.EXACT_DUPLICATE:
        return SlotFile(main.data, main.format, main.size, scene.objects,
                        detail="byte-identical copy", copies_slot=True)
    return _near_duplicate(config, NEAR_DUPLICATE_VARIANTS[ordinal % len(NEAR_DUPLICATE_VARIANTS)],
                           scene)


def _near_duplicate(config: SceneConfig, variant: str, scene: Scene) -> SlotFile:
    """A re-encoded, resized or slightly cropped copy of the frame, with boxes to match."""
    image = scene.image
    size = image.size
    objects = scene.objects
    if variant == "reencode":
        near_fmt = "jpeg"
        near = encode(image, "jpeg", quality=NEAR_DUPLICATE_JPEG_QUALITY)
        near_size = size
        near_params: dict[str, object] = {"variant": variant,
                                          "quality": NEAR_DUPLICATE_JPEG_QUALITY}
    elif variant == "resize":
        near_fmt = config.image_format
        near_size = (round(size[0] * NEAR_DUPLICATE_SCALE), round(size[1] * NEAR_DUPLICATE_SCALE))
        near = encode(image.resize(near_size, Image.Resampling.BILINEAR), near_fmt)
        sx, sy = near_size[0] / size[0], near_size[1] / size[1]
        objects = tuple(_scaled(o, sx, sy) for o in objects)
        near_params = {"variant": variant, "size": list(near_size)}
    else:
        near_fmt = config.image_format
        dx, dy = max(1, round(0.03 * size[0])), max(1, round(0.03 * size[1]))
        near_size = (size[0] - dx, size[1] - dy)
        near = encode(image.crop((dx, dy, size[0], size[1])), near_fmt)
        objects = _cropped(scene, dx, dy, size)
        near_params = {"variant": variant, "crop": [dx, dy, size[0], size[1]]}
    return SlotFile(near, near_fmt, near_size, objects, detail=f"near duplicate ({variant})",
                    params=near_params, copies_slot=True)


def _scaled(obj: SceneObject, sx: float, sy: float) -> SceneObject:
    def scale(b: Box) -> Box:
        return (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)
    return SceneObject(obj.class_name, scale(obj.box), obj.occluded, obj.track_id, obj.label,
                       scale(obj.label_box))


def _cropped(scene: Scene, dx: int, dy: int, size: tuple[int, int]) -> tuple[SceneObject, ...]:
    """Objects of a frame cropped to (dx, dy, W, H): boxes recomputed from the objects' pixels."""
    out = []
    for obj, (mask, x, y) in zip(scene.objects, scene.masks, strict=True):
        mh, mw = mask.shape
        x0, y0 = max(x, dx), max(y, dy)
        x1, y1 = min(x + mw, size[0]), min(y + mh, size[1])
        if x1 <= x0 or y1 <= y0:
            continue
        sel = mask[y0 - y:y1 - y, x0 - x:x1 - x] > 0
        rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
        if rows.size == 0:
            continue
        box = (float(x0 + cols[0] - dx), float(y0 + rows[0] - dy), float(x0 + cols[-1] + 1 - dx),
               float(y0 + rows[-1] + 1 - dy))
        label_box = box if obj.label_box == obj.box else (
            obj.label_box[0] - dx, obj.label_box[1] - dy, obj.label_box[2] - dx,
            obj.label_box[3] - dy)
        out.append(SceneObject(obj.class_name, box, obj.occluded, obj.track_id, obj.label,
                               label_box))
    return tuple(out)
