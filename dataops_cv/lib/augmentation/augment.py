"""Reproducible, box-aware image augmentation on torch.

Policy and parameters
---------------------
An :class:`AugmentationPolicy` (``data_contracts/augmentation_policy.yaml``) lists each transform
with a probability and ranges. Its :attr:`~AugmentationPolicy.version` is a hash of its canonical
content. For every (sample, variant) the parameters are sampled once — :func:`sample_params`,
from NumPy generators seeded by (policy version, sample sha256, variant, transform name) — into an
:class:`AugParams`, and then applied (:func:`apply_batch`, :func:`transform_boxes`). A row of
``augmented_samples`` records the parameters, so any variant can be rebuilt from its row alone.

Why our own kernels, and not torchvision.transforms.v2 or kornia
----------------------------------------------------------------
Both were considered. They draw their random parameters from torch's global generator (whose
stream differs between CPU and CUDA), and their kernels interpolate and blend in float with
reductions whose summation order depends on the device and the thread count, so a GPU and a CPU
(or two CPUs with different core counts) give different low bits — then different PNG bytes and
different content addresses. Here every pixel operation is either an integer operation or a
single IEEE-754 float64 operation per tensor op (no fused multiply-add, no reduction in float),
which gives the same result on any device:

- geometry (flips, crop, rotation, scale, translation) is one affine warp per image: the inverse
  matrix is computed in Python floats, source coordinates by separate elementwise float64 ops,
  and bilinear weights quantised to 1/256 and blended in int32;
- colour: brightness and contrast (about the mean grey level times the brightness factor) as
  one 256-entry integer table per image; saturation blends with integer luma; factors are
  fixed point (1/256) and the mean is an integer sum;
- blur is a separable binomial kernel (1-2-1, 1-4-6-4-1, ...) in integer arithmetic;
- noise is drawn on the CPU from the sample's own NumPy generator, then added as integers;
- cutout fills integer rectangles.

Images of a batch that share a size are warped together as one tensor, on CUDA when present.
Boxes are transformed on the CPU in float64 with plain arithmetic (no BLAS). The PNG encoder
(Pillow over the host's zlib) is the one outside dependency of the bytes, as for the synthetic
rig. torch is imported when a batch is first applied, not when this module is imported.

Boxes
-----
Boxes are ``x_min, y_min, x_max, y_max`` in pixel-edge coordinates of the displayed image. A box's
four corners are mapped by the warp and the new box is their enclosing axis-aligned box (so a
rotated box encloses the rotated corners). It is kept when at least ``min_visibility`` of that
box's area lies inside the frame and both sides of the clipped box are at least ``min_size_px``;
kept boxes are clipped to the frame. Cutout does not move boxes (the object is occluded, not gone).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml
from PIL import Image

from dataops_cv.lib.core.images import to_rgb

TRANSFORMS = ("hflip", "vflip", "crop", "rotate", "scale", "translate", "color", "blur", "noise",
              "cutout")
# What each transform takes besides ``p``: name -> (kind, lower bound, upper bound).
_RANGES: dict[str, dict[str, tuple[str, float, float]]] = {
    "hflip": {},
    "vflip": {},
    "crop": {"area": ("float", 0.05, 1.0), "aspect": ("float", 0.1, 10.0)},
    "rotate": {"degrees": ("float", -180.0, 180.0)},
    "scale": {"factor": ("float", 0.1, 10.0)},
    "translate": {"fraction": ("float", -1.0, 1.0)},
    "color": {"brightness": ("float", 0.0, 4.0), "contrast": ("float", 0.0, 4.0),
              "saturation": ("float", 0.0, 4.0)},
    "blur": {"kernel": ("odd", 3, 9)},
    "noise": {"std": ("float", 0.0, 64.0)},
    "cutout": {"count": ("int", 1, 16), "size": ("float", 0.0, 1.0)},
}
FIXED_POINT = 256  # colour factors and bilinear weights are multiples of 1/256
PNG_COMPRESS_LEVEL = 1
MAX_BATCH_PIXELS = 64 * 1024 * 1024  # bounds one warp's float64 grids (~8 B/px each)

Box = tuple[float, float, float, float]


class PolicyError(ValueError):
    """A malformed augmentation policy; the message names the file and the key."""


@dataclass(frozen=True)
class AugmentationPolicy:
    """Probabilities and ranges of every transform, plus the box rule (see the module docs)."""

    transforms: Mapping[str, Mapping[str, Any]]
    seed: int = 0
    variants_per_sample: int = 2
    fill: tuple[int, int, int] = (114, 114, 114)
    min_visibility: float = 0.35
    min_size_px: float = 2.0
    description: str = ""

    @property
    def version(self) -> str:
        """16 hex digits of the canonical policy: the same policy has the same version anywhere."""
        canonical = json.dumps(
            {"transforms": {k: dict(v) for k, v in sorted(self.transforms.items())},
             "seed": self.seed, "fill": list(self.fill), "min_visibility": self.min_visibility,
             "min_size_px": self.min_size_px},
            sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def probability(self, name: str) -> float:
        return float(self.transforms.get(name, {}).get("p", 0.0))

    def range(self, name: str, key: str) -> tuple[float, float]:
        lo, hi = self.transforms[name][key]
        return float(lo), float(hi)


def load_policy(path: Path) -> AugmentationPolicy:
    """Read and validate a policy YAML file.

    Raises:
        PolicyError: naming the file and key of the first problem (unknown transform or key, a
            probability outside [0, 1], a range that is not ``[lo, hi]`` with lo <= hi inside
            the transform's bounds, ...).
    """
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot read the augmentation policy: {exc}") from exc
    return policy_from_dict(doc, str(path))


def policy_from_dict(doc: object, where: str = "policy") -> AugmentationPolicy:
    """Validate a parsed policy document (the YAML's shape); see :func:`load_policy`."""

    def fail(key: str, message: str) -> PolicyError:
        return PolicyError(f"{where}: {key}: {message}")

    if not isinstance(doc, dict):
        raise fail("", f"expected a mapping, found {type(doc).__name__}")
    allowed = {"description", "seed", "variants_per_sample", "fill", "boxes", "transforms"}
    for key in doc:
        if key not in allowed:
            raise fail(str(key), f"unknown key; expected one of {sorted(allowed)}")
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise fail("seed", f"expected a non-negative integer, found {seed!r}")
    variants = doc.get("variants_per_sample", 2)
    if not isinstance(variants, int) or isinstance(variants, bool) or not 0 <= variants <= 64:
        raise fail("variants_per_sample", f"expected an integer in 0..64, found {variants!r}")
    fill = doc.get("fill", [114, 114, 114])
    if (not isinstance(fill, list) or len(fill) != 3
            or not all(isinstance(v, int) and 0 <= v <= 255 for v in fill)):
        raise fail("fill", f"expected three integers in 0..255 (RGB), found {fill!r}")
    boxes = doc.get("boxes", {}) or {}
    if not isinstance(boxes, dict) or set(boxes) - {"min_visibility", "min_size_px"}:
        raise fail("boxes", f"expected min_visibility and min_size_px, found {boxes!r}")
    min_vis = boxes.get("min_visibility", 0.35)
    if not isinstance(min_vis, (int, float)) or not 0.0 < min_vis <= 1.0:
        raise fail("boxes.min_visibility", f"expected a number in (0, 1], found {min_vis!r}")
    min_size = boxes.get("min_size_px", 2.0)
    if not isinstance(min_size, (int, float)) or min_size < 0:
        raise fail("boxes.min_size_px", f"expected a number >= 0, found {min_size!r}")
    transforms = doc.get("transforms", {}) or {}
    if not isinstance(transforms, dict):
        raise fail("transforms", f"expected a mapping, found {type(transforms).__name__}")
    clean: dict[str, dict[str, Any]] = {}
    for name, spec in transforms.items():
        if name not in _RANGES:
            raise fail(f"transforms.{name}", f"unknown transform; expected one of {TRANSFORMS}")
        if not isinstance(spec, dict) or "p" not in spec:
            raise fail(f"transforms.{name}", "expected a mapping with at least p")
        p = spec["p"]
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise fail(f"transforms.{name}.p", f"expected a probability in [0, 1], found {p!r}")
        entry: dict[str, Any] = {"p": float(p)}
        for key in spec:
            if key != "p" and key not in _RANGES[name]:
                raise fail(f"transforms.{name}.{key}",
                           f"unknown key; expected p and {sorted(_RANGES[name])}")
        for key, (kind, lo_bound, hi_bound) in _RANGES[name].items():
            value = spec.get(key)
            if (not isinstance(value, list) or len(value) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in value)):
                raise fail(f"transforms.{name}.{key}", f"expected [lo, hi], found {value!r}")
            lo, hi = value
            if not lo_bound <= lo <= hi <= hi_bound:
                raise fail(f"transforms.{name}.{key}",
                           f"expected {lo_bound} <= lo <= hi <= {hi_bound}, found {value!r}")
            if kind in ("int", "odd") and not (float(lo).is_integer() and float(hi).is_integer()):
                raise fail(f"transforms.{name}.{key}", f"expected integers, found {value!r}")
            if kind == "odd" and (int(lo) % 2 == 0 or int(hi) % 2 == 0):
                raise fail(f"transforms.{name}.{key}", f"expected odd sizes, found {value!r}")
            entry[key] = [int(lo), int(hi)] if kind in ("int", "odd") else [float(lo), float(hi)]
        clean[name] = entry
    return AugmentationPolicy(
        transforms=clean, seed=seed, variants_per_sample=variants, fill=tuple(fill),
        min_visibility=float(min_vis), min_size_px=float(min_size),
        description=str(doc.get("description", "")))


# ------------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class AugParams:
    """Everything one variant applies, sampled once. Identity values mean "not applied"."""

    width: int
    height: int
    hflip: bool = False
    vflip: bool = False
    crop: tuple[int, int, int, int] | None = None  # x, y, w, h of the region resized to full
    rotate_deg: float = 0.0
    scale: float = 1.0
    translate: tuple[float, float] = (0.0, 0.0)  # px
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    blur_kernel: int = 1
    noise_std: float = 0.0
    noise_seed: int = 0
    cutouts: tuple[tuple[int, int, int, int], ...] = ()  # x, y, w, h
    fill: tuple[int, int, int] = (114, 114, 114)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AugParams:
        d = json.loads(text)
        d["crop"] = tuple(d["crop"]) if d["crop"] is not None else None
        d["translate"] = tuple(d["translate"])
        d["cutouts"] = tuple(tuple(c) for c in d["cutouts"])
        d["fill"] = tuple(d["fill"])
        return cls(**d)

    @property
    def has_geometry(self) -> bool:
        return (self.hflip or self.vflip or self.crop is not None or self.rotate_deg != 0.0
                or self.scale != 1.0 or self.translate != (0.0, 0.0))


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from stable ids; the same ids give the same seed on every machine."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def sample_params(policy: AugmentationPolicy, sample_id: str, variant: int, width: int,
                  height: int) -> AugParams:
    """The parameters of one variant of one sample (``sample_id``: its content sha256).

    Each transform draws from its own generator, so changing one transform's probability or
    ranges leaves the others' draws as they were (the policy version still changes every seed).
    """
    version = policy.version

    def rng(name: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(version, policy.seed, sample_id, variant, name))

    def fires(r: np.random.Generator, name: str) -> bool:
        # Always draw the coin first, so a transform's ranges come from the same stream.
        return bool(r.random() < policy.probability(name))

    def uniform(r: np.random.Generator, name: str, key: str, digits: int) -> float:
        lo, hi = policy.range(name, key)
        return round(float(r.uniform(lo, hi)), digits)

    out: dict[str, Any] = {"width": width, "height": height, "fill": policy.fill}
    r = rng("hflip")
    out["hflip"] = fires(r, "hflip")
    r = rng("vflip")
    out["vflip"] = fires(r, "vflip")
    r = rng("crop")
    if fires(r, "crop"):
        lo, hi = policy.range("crop", "aspect")
        area = float(r.uniform(*policy.range("crop", "area")))
        aspect = math.exp(float(r.uniform(math.log(lo), math.log(hi))))
        cw = min(width, max(1, round(width * math.sqrt(area * aspect))))
        ch = min(height, max(1, round(height * math.sqrt(area / aspect))))
        x = int(r.integers(0, width - cw + 1))
        y = int(r.integers(0, height - ch + 1))
        if (x, y, cw, ch) != (0, 0, width, height):
            out["crop"] = (x, y, cw, ch)
    r = rng("rotate")
    if fires(r, "rotate"):
        out["rotate_deg"] = uniform(r, "rotate", "degrees", 4)
    r = rng("scale")
    if fires(r, "scale"):
        out["scale"] = uniform(r, "scale", "factor", 4)
    r = rng("translate")
    if fires(r, "translate"):
        lo, hi = policy.range("translate", "fraction")
        out["translate"] = (round(float(r.uniform(lo, hi)) * width, 2),
                            round(float(r.uniform(lo, hi)) * height, 2))
    r = rng("color")
    if fires(r, "color"):
        for key in ("brightness", "contrast", "saturation"):
            out[key] = _fixed(uniform(r, "color", key, 6), *policy.range("color", key))
    r = rng("blur")
    if fires(r, "blur"):
        lo, hi = policy.range("blur", "kernel")
        out["blur_kernel"] = int(r.choice(np.arange(int(lo), int(hi) + 1, 2)))
    r = rng("noise")
    if fires(r, "noise"):
        out["noise_std"] = uniform(r, "noise", "std", 3)
        out["noise_seed"] = int(r.integers(0, 2**62))
    r = rng("cutout")
    if fires(r, "cutout"):
        lo, hi = policy.range("cutout", "count")
        rects = []
        for _ in range(int(r.integers(int(lo), int(hi) + 1))):
            side = max(1, round(float(r.uniform(*policy.range("cutout", "size")))
                                * min(width, height)))
            cx, cy = int(r.integers(0, width)), int(r.integers(0, height))
            x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
            rects.append((x0, y0, min(width, x0 + side) - x0, min(height, y0 + side) - y0))
        out["cutouts"] = tuple(rects)
    return AugParams(**out)


def _fixed(x: float, lo: float, hi: float) -> float:
    """Round to the 1/256 fixed point the kernels use (so the row states what was applied),
    staying inside [lo, hi]."""
    q = round(x * FIXED_POINT)
    q = max(min(q, math.floor(hi * FIXED_POINT)), math.ceil(lo * FIXED_POINT))
    return q / FIXED_POINT


# -------------------------------------------------------------------------------------- geometry


Affine = tuple[float, float, float, float, float, float]  # x' = a x + b y + c; y' = d x + e y + f


def _compose(m: Affine, n: Affine) -> Affine:
    """m after n."""
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return (a * p + b * s, a * q + b * t, a * r + b * u + c,
            d * p + e * s, d * q + e * t, d * r + e * u + f)


def geometry_matrix(params: AugParams) -> Affine:
    """Forward map from source to output pixel-edge coordinates: flips, then the crop resized to
    the full frame, then rotation (counter-clockwise on screen) and scale about the centre, then
    translation."""
    w, h = float(params.width), float(params.height)
    m: Affine = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    if params.hflip:
        m = _compose((-1.0, 0.0, w, 0.0, 1.0, 0.0), m)
    if params.vflip:
        m = _compose((1.0, 0.0, 0.0, 0.0, -1.0, h), m)
    if params.crop is not None:
        x, y, cw, ch = params.crop
        sx, sy = w / cw, h / ch
        m = _compose((sx, 0.0, -x * sx, 0.0, sy, -y * sy), m)
    if params.rotate_deg != 0.0 or params.scale != 1.0 or params.translate != (0.0, 0.0):
        theta = math.radians(params.rotate_deg)
        # Rounded so a last-bit difference between two platforms' libm cannot reach a pixel.
        cos, sin = round(math.cos(theta), 12), round(math.sin(theta), 12)
        s = params.scale
        cx, cy = w / 2.0, h / 2.0
        tx, ty = params.translate
        # y points down, so a counter-clockwise turn on screen is x' = x cos + y sin.
        a, b, d, e = s * cos, s * sin, -s * sin, s * cos
        m = _compose((a, b, cx - a * cx - b * cy + tx, d, e, cy - d * cx - e * cy + ty), m)
    return m


def invert(m: Affine) -> Affine:
    a, b, c, d, e, f = m
    det = a * e - b * d
    if det == 0.0:
        raise ValueError(f"augmentation matrix {m} is singular")
    return (e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det)


@dataclass(frozen=True)
class BoxResult:
    boxes: np.ndarray  # K×4 kept boxes, clipped to the frame
    kept: np.ndarray  # N bool: which input boxes survived
    visibility: np.ndarray  # N: share of each transformed box inside the frame


def transform_boxes(boxes: np.ndarray, params: AugParams, min_visibility: float,
                    min_size_px: float) -> BoxResult:
    """Move ``boxes`` (N×4 xyxy) with the pixels and apply the visibility rule (module docs)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    a, b, c, d, e, f = geometry_matrix(params)
    xs = boxes[:, [0, 2, 2, 0]]
    ys = boxes[:, [1, 1, 3, 3]]
    nx = xs * a + ys * b + c
    ny = xs * d + ys * e + f
    out = np.stack([nx.min(axis=1), ny.min(axis=1), nx.max(axis=1), ny.max(axis=1)], axis=1)
    w, h = float(params.width), float(params.height)
    clipped = np.stack([np.clip(out[:, 0], 0, w), np.clip(out[:, 1], 0, h),
                        np.clip(out[:, 2], 0, w), np.clip(out[:, 3], 0, h)], axis=1)
    area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        visibility = np.where(area > 0, inside / area, 0.0)
    kept = ((visibility >= min_visibility)
            & (clipped[:, 2] - clipped[:, 0] >= min_size_px)
            & (clipped[:, 3] - clipped[:, 1] >= min_size_px)
            & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1]))
    return BoxResult(clipped[kept], kept, visibility)


# ---------------------------------------------------------------------------------------- pixels


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def apply_batch(images: Sequence[np.ndarray], params: Sequence[AugParams],
                device: str = "cpu") -> list[np.ndarray]:
    """Apply each variant's parameters to its H×W×3 uint8 image; same-size images go through the
    device as one batch. Returns H×W×3 uint8 arrays, byte-identical on any device."""
    if len(images) != len(params):
        raise ValueError(f"{len(images)} images but {len(params)} parameter sets")
    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (img, p) in enumerate(zip(images, params)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {i}: expected H×W×3 uint8, found {img.dtype} {img.shape}")
        if img.shape[:2] != (p.height, p.width):
            raise ValueError(f"image {i} is {img.shape[1]}x{img.shape[0]} but its parameters "
                             f"were sampled for {p.width}x{p.height}")
        groups.setdefault(img.shape[:2], []).append(i)
    for (h, w), idx in groups.items():
        per = max(1, MAX_BATCH_PIXELS // (h * w))
        for start in range(0, len(idx), per):
            chunk = idx[start:start + per]
            result = _apply_same_size([images[i] for i in chunk], [params[i] for i in chunk],
                                      device)
            for i, arr in zip(chunk, result):
                out[i] = arr
    return [o for o in out if o is not None]


def _apply_same_size(images: list[np.ndarray], params: list[AugParams], device: str
                     ) -> list[np.ndarray]:
    import torch

    dev = torch.device(device)
    x = torch.from_numpy(np.stack(images)).to(dev).permute(0, 3, 1, 2).to(torch.int32)
    x = _warp(x, params, dev)
    x = _color(x, params)
    x = _blur(x, params)
    x = _noise(x, params, dev)
    x = _cutout(x, params)
    return list(x.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy())


def _fill(params: list[AugParams], dev: Any) -> Any:
    import torch

    return torch.tensor([p.fill for p in params], dtype=torch.int32, device=dev)[:, :, None, None]


def _warp(x: Any, params: list[AugParams], dev: Any, separable: bool = True) -> Any:
    import torch

    fast = [i for i, p in enumerate(params)
            if separable and p.has_geometry and p.rotate_deg == 0.0]
    todo = [i for i, p in enumerate(params) if p.has_geometry and i not in fast]
    axis_aligned = fast
    if axis_aligned:
        x = _warp_axis_aligned(x, params, axis_aligned, dev)
    if not todo:
        return x
    n, (_, _, h, w) = len(todo), x.shape
    inv = torch.tensor([invert(geometry_matrix(params[i])) for i in todo], dtype=torch.float64)
    coef = [inv[:, k, None, None].to(torch.float32).to(dev) for k in range(6)]
    u = (torch.arange(w, dtype=torch.float32, device=dev) + 0.5)[None, None, :]
    v = (torch.arange(h, dtype=torch.float32, device=dev) + 0.5)[None, :, None]
    # One IEEE operation per step (no fused multiply-add, no reduction), so every device
    # computes the same coordinates bit for bit; float32 keeps 1e-4 px at 4k widths.
    sx = (u * coef[0]) + (v * coef[1])
    sx = sx + coef[2]
    sy = (u * coef[3]) + (v * coef[4])
    sy = sy + coef[5]
    inside = ((sx >= 0) & (sx <= w) & (sy >= 0) & (sy <= h))[:, None]
    px, py = sx - 0.5, sy - 0.5
    x0f, y0f = torch.floor(px), torch.floor(py)
    wx = torch.round((px - x0f) * FIXED_POINT).to(torch.int32)[:, None]
    wy = torch.round((py - y0f) * FIXED_POINT).to(torch.int32)[:, None]
    x0i, y0i = x0f.to(torch.int32), y0f.to(torch.int32)
    x0, x1 = x0i.clamp(0, w - 1), (x0i + 1).clamp(0, w - 1)
    y0, y1 = y0i.clamp(0, h - 1), (y0i + 1).clamp(0, h - 1)
    src = x[todo]
    # RGB packed in one int32: one gather per neighbour instead of three.
    packed = (src[:, 0] | (src[:, 1] << 8) | (src[:, 2] << 16)).reshape(-1)
    base = (torch.arange(n, device=dev, dtype=torch.int32) * (h * w))[:, None, None]
    row0, row1 = base + y0 * w, base + y1 * w

    def at(row: Any, col: Any) -> Any:
        q = torch.take(packed, (row + col).to(torch.int64))
        return torch.stack([q & 255, (q >> 8) & 255, q >> 16], dim=1)

    top = at(row0, x0) * (FIXED_POINT - wx) + at(row0, x1) * wx
    bottom = at(row1, x0) * (FIXED_POINT - wx) + at(row1, x1) * wx
    warped = (top * (FIXED_POINT - wy) + bottom * wy + FIXED_POINT * FIXED_POINT // 2) >> 16
    warped = torch.where(inside, warped, _fill([params[i] for i in todo], dev))
    x = x.clone()
    x[todo] = warped
    return x


def _warp_axis_aligned(x: Any, params: list[AugParams], todo: list[int], dev: Any) -> Any:
    """The warp of :func:`_warp` for matrices without rotation, where source x depends on the
    output column only and source y on the output row: the same arithmetic on 1-D coordinates,
    so the same bytes, at a fraction of the cost (row and column gathers instead of per-pixel)."""
    import torch

    _, _, h, w = x.shape
    u = torch.arange(w, dtype=torch.float32, device=dev) + 0.5
    v = torch.arange(h, dtype=torch.float32, device=dev) + 0.5
    x = x.clone()
    for i in todo:
        a, b, c, d, e, f = (torch.tensor(k, dtype=torch.float64).to(torch.float32).to(dev)
                            for k in invert(geometry_matrix(params[i])))
        # b and d are zero here; adding their (signed) zero products keeps the general path's
        # operation order, hence its bits.
        sx = ((u * a) + (v[:1] * b)) + c
        sy = ((u[:1] * d) + (v * e)) + f
        inside = (((sx >= 0) & (sx <= w))[None, :] & ((sy >= 0) & (sy <= h))[:, None])
        px, py = sx - 0.5, sy - 0.5
        x0f, y0f = torch.floor(px), torch.floor(py)
        wx = torch.round((px - x0f) * FIXED_POINT).to(torch.int32)[None, None, :]
        wy = torch.round((py - y0f) * FIXED_POINT).to(torch.int32)[None, :, None]
        x0i, y0i = x0f.to(torch.int64), y0f.to(torch.int64)
        x0, x1 = x0i.clamp(0, w - 1), (x0i + 1).clamp(0, w - 1)
        y0, y1 = y0i.clamp(0, h - 1), (y0i + 1).clamp(0, h - 1)
        src = x[i]
        cols = src.index_select(2, x0) * (FIXED_POINT - wx) + src.index_select(2, x1) * wx
        out = (cols.index_select(1, y0) * (FIXED_POINT - wy) + cols.index_select(1, y1) * wy
               + FIXED_POINT * FIXED_POINT // 2) >> 16
        fill = torch.tensor(params[i].fill, dtype=torch.int32, device=dev)[:, None, None]
        x[i] = torch.where(inside[None], out, fill)
    return x


def _gray(x: Any) -> Any:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    # BT.601 luma weights in 1/256 (77 + 150 + 29 = 256).
    return (r * 77 + g * 150 + b * 29 + 128) >> 8


def _scale_fixed(x: Any, factor: Any, center: Any) -> Any:
    # An arithmetic shift floors negative values too: round half up, the same on every device.
    return (((x - center) * factor + FIXED_POINT // 2) >> 8) + center


def _color(x: Any, params: list[AugParams]) -> Any:
    import torch

    todo = [i for i, p in enumerate(params)
            if p.brightness != 1.0 or p.contrast != 1.0 or p.saturation != 1.0]
    if not todo:
        return x
    dev = x.device
    n = len(todo)
    y = x[todo]
    # Brightness then contrast about the mean grey level (the original image's, times the
    # brightness factor) map each channel value alone: one 256-entry table per image.
    gray = _gray(y)
    pixels = gray.shape[1] * gray.shape[2]
    # An integer sum is exact in any order, so the mean is the same on every device.
    mean = torch.div(gray.to(torch.int64).sum(dim=(1, 2)) + pixels // 2, pixels,
                     rounding_mode="floor").to(torch.int32)
    fb = torch.tensor([round(params[i].brightness * FIXED_POINT) for i in todo],
                      dtype=torch.int32, device=dev)
    fc = torch.tensor([round(params[i].contrast * FIXED_POINT) for i in todo],
                      dtype=torch.int32, device=dev)
    zero = torch.zeros((), dtype=torch.int32, device=dev)
    levels = torch.arange(256, dtype=torch.int32, device=dev)[None, :]
    bright = _scale_fixed(levels, fb[:, None], zero).clamp(0, 255)
    center = _scale_fixed(mean, fb, zero).clamp(0, 255)[:, None]
    lut = _scale_fixed(bright, fc[:, None], center).clamp(0, 255)  # n x 256
    offset = (torch.arange(n, dtype=torch.int32, device=dev) * 256)[:, None, None, None]
    y = torch.take(lut.reshape(-1), (y + offset).to(torch.int64))
    sat = [j for j, i in enumerate(todo) if params[i].saturation != 1.0]
    if sat:
        z = y[sat]
        fs = torch.tensor([round(params[todo[j]].saturation * FIXED_POINT) for j in sat],
                          dtype=torch.int32, device=dev)[:, None, None, None]
        y[sat] = _scale_fixed(z, fs, _gray(z)[:, None]).clamp(0, 255)
    x = x.clone()
    x[todo] = y
    return x


def _binomial(k: int) -> list[int]:
    return [math.comb(k - 1, i) for i in range(k)]


def _blur(x: Any, params: list[AugParams]) -> Any:
    import torch

    sizes = sorted({p.blur_kernel for p in params if p.blur_kernel > 1})
    if not sizes:
        return x
    x = x.clone()
    for k in sizes:
        idx = [i for i, p in enumerate(params) if p.blur_kernel == k]
        y = x[idx]
        weights = _binomial(k)
        r = k // 2
        h, w = y.shape[2], y.shape[3]
        # Replicate the border, then sum shifted copies with integer weights: exact everywhere.
        padded = torch.cat([y[..., :1].expand(-1, -1, -1, r), y, y[..., -1:].expand(-1, -1, -1, r)],
                           dim=3)
        acc = sum(weights[i] * padded[..., i:i + w] for i in range(k))
        padded = torch.cat([acc[:, :, :1].expand(-1, -1, r, -1), acc,
                            acc[:, :, -1:].expand(-1, -1, r, -1)], dim=2)
        acc = sum(weights[i] * padded[:, :, i:i + h] for i in range(k))
        total = sum(weights) ** 2
        x[idx] = torch.div(acc + total // 2, total, rounding_mode="floor")
    return x


def _noise(x: Any, params: list[AugParams], dev: Any) -> Any:
    import torch

    if all(p.noise_std == 0.0 for p in params):
        return x
    x = x.clone()
    _, _, h, w = x.shape
    for i, p in enumerate(params):
        if p.noise_std == 0.0:
            continue
        # Drawn on the CPU from the variant's own generator: CUDA and CPU torch generators
        # give different streams.
        noise = np.rint(np.random.default_rng(p.noise_seed).normal(0.0, p.noise_std, (3, h, w)))
        x[i] = x[i] + torch.from_numpy(noise.astype(np.int32)).to(dev)
    return x.clamp(0, 255)


def _cutout(x: Any, params: list[AugParams]) -> Any:
    if not any(p.cutouts for p in params):
        return x
    x = x.clone()
    for i, p in enumerate(params):
        for cx, cy, cw, ch in p.cutouts:
            for channel in range(3):
                x[i, channel, cy:cy + ch, cx:cx + cw] = p.fill[channel]
    return x


# ---------------------------------------------------------------------------------------- tables

AUGMENTED_SCHEMA = pa.schema([
    ("sha256", pa.string()), ("object_key", pa.string()), ("source_sha256", pa.string()),
    ("source_object_key", pa.string()), ("variant", pa.int32()), ("input_key", pa.string()),
    ("policy_version", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("label_source", pa.string()), ("boxes", pa.int32()), ("boxes_dropped", pa.int32()),
    ("min_box_visibility", pa.float64()), ("hflip", pa.bool_()), ("vflip", pa.bool_()),
    ("crop_x", pa.int32()), ("crop_y", pa.int32()), ("crop_w", pa.int32()), ("crop_h", pa.int32()),
    ("rotate_deg", pa.float64()), ("scale", pa.float64()), ("translate_x", pa.float64()),
    ("translate_y", pa.float64()), ("brightness", pa.float64()), ("contrast", pa.float64()),
    ("saturation", pa.float64()), ("blur_kernel", pa.int32()), ("noise_std", pa.float64()),
    ("cutouts", pa.int32()), ("params", pa.string()),
])
# The boxes of every variant, in the canonical annotation columns plus where each came from.
AUGMENTED_BOXES_SCHEMA = pa.schema([
    ("image_sha256", pa.string()), ("annotation_id", pa.string()), ("input_key", pa.string()),
    ("source_sha256", pa.string()), ("source_annotation_id", pa.string()),
    ("class_name", pa.string()), ("class_id", pa.int32()), ("x_min", pa.float64()),
    ("y_min", pa.float64()), ("x_max", pa.float64()), ("y_max", pa.float64()),
    ("visibility", pa.float64()),
])


def augmented_key(sha256: str) -> str:
    return f"augmented/{sha256[:2]}/{sha256}.png"


def variant_row(v: AugmentedVariant, policy: AugmentationPolicy, source_object_key: str) -> dict:
    """The ``augmented_samples`` row of a variant (AUGMENTED_SCHEMA)."""
    p = v.params
    crop = p.crop or (None, None, None, None)
    return {
        "sha256": v.sha256, "object_key": augmented_key(v.sha256),
        "source_sha256": v.source.sha256, "source_object_key": source_object_key,
        "variant": v.variant, "input_key": v.input_key, "policy_version": policy.version,
        "width": p.width, "height": p.height, "label_source": v.source.label_source,
        "boxes": len(v.boxes), "boxes_dropped": v.boxes_dropped,
        "min_box_visibility": min((b["visibility"] for b in v.boxes), default=None),
        "hflip": p.hflip, "vflip": p.vflip, "crop_x": crop[0], "crop_y": crop[1],
        "crop_w": crop[2], "crop_h": crop[3], "rotate_deg": p.rotate_deg, "scale": p.scale,
        "translate_x": p.translate[0], "translate_y": p.translate[1],
        "brightness": p.brightness, "contrast": p.contrast, "saturation": p.saturation,
        "blur_kernel": p.blur_kernel, "noise_std": p.noise_std, "cutouts": len(p.cutouts),
        "params": p.to_json(),
    }


def variant_box_rows(v: AugmentedVariant) -> list[dict]:
    """The variant's kept boxes (AUGMENTED_BOXES_SCHEMA); ids are stable per (input, box)."""
    return [{"image_sha256": v.sha256,
             "annotation_id": hashlib.sha256(
                 f"{v.input_key}:{b['source_annotation_id']}".encode()).hexdigest()[:32],
             "input_key": v.input_key, "source_sha256": v.source.sha256, **b} for b in v.boxes]


# ------------------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class SourceBox:
    annotation_id: str
    class_name: str
    class_id: int | None
    box: Box


@dataclass(frozen=True)
class SourceSample:
    """One sample to augment: its content hash, a loader for its bytes (called once, only when a
    variant must be computed) and its boxes in displayed pixels."""

    sha256: str
    load: Any  # Callable[[], bytes]
    boxes: tuple[SourceBox, ...] = ()
    label_source: str = "none"


@dataclass(frozen=True)
class AugmentedVariant:
    source: SourceSample
    variant: int
    input_key: str
    params: AugParams
    png: bytes
    sha256: str
    boxes: list[dict] = field(default_factory=list)  # kept boxes, with their source ids
    boxes_dropped: int = 0


def boxes_digest(boxes: Iterable[SourceBox]) -> str:
    """Hash of a sample's boxes: a changed label gives a new input key."""
    canon = sorted((b.annotation_id, b.class_name, b.class_id, *(round(v, 6) for v in b.box))
                   for b in boxes)
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()[:16]


def input_key(policy: AugmentationPolicy, sample: SourceSample, variant: int) -> str:
    """What a variant depends on: the policy, the source bytes, its boxes and the variant number.
    Equal keys give byte-identical outputs, so a row with a known key is reused, not recomputed."""
    text = f"{policy.version}:{sample.sha256}:{boxes_digest(sample.boxes)}:{variant}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def decode_rgb(data: bytes) -> np.ndarray:
    """Displayed (EXIF-oriented) 8-bit RGB pixels, the frame boxes refer to."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(to_rgb(img), dtype=np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def augment_stream(samples: Iterable[SourceSample], policy: AugmentationPolicy, *,
                   variants: int | None = None, skip: frozenset[str] = frozenset(),
                   batch_size: int = 16, device: str = "cpu") -> Iterator[AugmentedVariant]:
    """Yield every variant of every sample whose input key is not in ``skip``, in bounded batches
    of about ``batch_size`` variants (a sample's source image is decoded once per batch)."""
    k = policy.variants_per_sample if variants is None else variants
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[tuple[SourceSample, int, str]] = []

    def flush() -> Iterator[AugmentedVariant]:
        decoded: dict[str, np.ndarray] = {}
        images, plist = [], []
        for sample, variant, _ in pending:
            if sample.sha256 not in decoded:
                decoded[sample.sha256] = decode_rgb(sample.load())
            pixels = decoded[sample.sha256]
            images.append(pixels)
            plist.append(sample_params(policy, sample.sha256, variant, pixels.shape[1],
                                       pixels.shape[0]))
        outputs = apply_batch(images, plist, device)
        for (sample, variant, key), params, pixels in zip(pending, plist, outputs):
            png = encode_png(pixels)
            src = np.array([b.box for b in sample.boxes], dtype=np.float64).reshape(-1, 4)
            moved = transform_boxes(src, params, policy.min_visibility, policy.min_size_px)
            kept_boxes = []
            j = 0
            for i, b in enumerate(sample.boxes):
                if not moved.kept[i]:
                    continue
                x1, y1, x2, y2 = (float(v) for v in moved.boxes[j])
                j += 1
                kept_boxes.append({"source_annotation_id": b.annotation_id,
                                   "class_name": b.class_name, "class_id": b.class_id,
                                   "x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2,
                                   "visibility": float(moved.visibility[i])})
            yield AugmentedVariant(sample, variant, key, params, png,
                                   hashlib.sha256(png).hexdigest(), kept_boxes,
                                   int((~moved.kept).sum()))
        pending.clear()

    for sample in samples:
        for variant in range(k):
            key = input_key(policy, sample, variant)
            if key in skip:
                continue
            pending.append((sample, variant, key))
            if len(pending) >= batch_size:
                yield from flush()
    if pending:
        yield from flush()
