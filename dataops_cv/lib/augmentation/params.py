"""The parameters of one augmented variant, sampled once and reproducibly from the policy.

For every (sample, variant) the parameters are sampled once — :func:`sample_params`, from NumPy
generators seeded by (policy version, sample sha256, variant, transform name) — into an
:class:`AugParams`, and then applied (:func:`dataops_cv.lib.augmentation.kernels.apply_batch`,
:func:`dataops_cv.lib.augmentation.geometry.transform_boxes`). A row of ``augmented_samples``
records the parameters, so any variant can be rebuilt from its row alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dataops_cv.lib.augmentation.policy import AugmentationPolicy

FIXED_POINT = 256  # colour factors and bilinear weights are multiples of 1/256


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
        """Canonical JSON of every field (the ``params`` column of ``augmented_samples``)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AugParams:
        """The parameters :meth:`to_json` wrote."""
        d = json.loads(text)
        d["crop"] = tuple(d["crop"]) if d["crop"] is not None else None
        d["translate"] = tuple(d["translate"])
        d["cutouts"] = tuple(tuple(c) for c in d["cutouts"])
        d["fill"] = tuple(d["fill"])
        return cls(**d)

    @property
    def has_geometry(self) -> bool:
        """Whether the variant moves pixels (any flip, crop, rotation, scale or translation)."""
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

    out: dict[str, Any] = {"width": width, "height": height, "fill": policy.fill}
    out["hflip"] = _fires(rng("hflip"), policy, "hflip")
    out["vflip"] = _fires(rng("vflip"), policy, "vflip")
    r = rng("crop")
    if _fires(r, policy, "crop"):
        crop = _sample_crop(r, policy, width, height)
        if crop != (0, 0, width, height):
            out["crop"] = crop
    r = rng("rotate")
    if _fires(r, policy, "rotate"):
        out["rotate_deg"] = _uniform(r, policy, "rotate", "degrees", 4)
    r = rng("scale")
    if _fires(r, policy, "scale"):
        out["scale"] = _uniform(r, policy, "scale", "factor", 4)
    r = rng("translate")
    if _fires(r, policy, "translate"):
        lo, hi = policy.range("translate", "fraction")
        out["translate"] = (round(float(r.uniform(lo, hi)) * width, 2),
                            round(float(r.uniform(lo, hi)) * height, 2))
    r = rng("color")
    if _fires(r, policy, "color"):
        for key in ("brightness", "contrast", "saturation"):
            out[key] = _fixed(_uniform(r, policy, "color", key, 6), *policy.range("color", key))
    r = rng("blur")
    if _fires(r, policy, "blur"):
        lo, hi = policy.range("blur", "kernel")
        out["blur_kernel"] = int(r.choice(np.arange(int(lo), int(hi) + 1, 2)))
    r = rng("noise")
    if _fires(r, policy, "noise"):
        out["noise_std"] = _uniform(r, policy, "noise", "std", 3)
        out["noise_seed"] = int(r.integers(0, 2**62))
    r = rng("cutout")
    if _fires(r, policy, "cutout"):
        out["cutouts"] = _sample_cutouts(r, policy, width, height)
    return AugParams(**out)


def _fires(r: np.random.Generator, policy: AugmentationPolicy, name: str) -> bool:
    # Always draw the coin first, so a transform's ranges come from the same stream.
    return bool(r.random() < policy.probability(name))


def _uniform(r: np.random.Generator, policy: AugmentationPolicy, name: str, key: str,
             digits: int) -> float:
    lo, hi = policy.range(name, key)
    return round(float(r.uniform(lo, hi)), digits)


def _sample_crop(r: np.random.Generator, policy: AugmentationPolicy, width: int,
                 height: int) -> tuple[int, int, int, int]:
    """A crop ``x, y, w, h`` of the sampled area and (log-uniform) aspect, inside the frame."""
    lo, hi = policy.range("crop", "aspect")
    area = float(r.uniform(*policy.range("crop", "area")))
    aspect = math.exp(float(r.uniform(math.log(lo), math.log(hi))))
    cw = min(width, max(1, round(width * math.sqrt(area * aspect))))
    ch = min(height, max(1, round(height * math.sqrt(area / aspect))))
    x = int(r.integers(0, width - cw + 1))
    y = int(r.integers(0, height - ch + 1))
    return x, y, cw, ch


def _sample_cutouts(r: np.random.Generator, policy: AugmentationPolicy, width: int,
                    height: int) -> tuple[tuple[int, int, int, int], ...]:
    """Square cutouts ``x, y, w, h`` about random centres, clipped to the frame."""
    lo, hi = policy.range("cutout", "count")
    rects = []
    for _ in range(int(r.integers(int(lo), int(hi) + 1))):
        side = max(1, round(float(r.uniform(*policy.range("cutout", "size")))
                            * min(width, height)))
        cx, cy = int(r.integers(0, width)), int(r.integers(0, height))
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        rects.append((x0, y0, min(width, x0 + side) - x0, min(height, y0 + side) - y0))
    return tuple(rects)


def _fixed(x: float, lo: float, hi: float) -> float:
    """Round to the 1/256 fixed point the kernels use (so the row states what was applied),
    staying inside [lo, hi]."""
    q = round(x * FIXED_POINT)
    q = max(min(q, math.floor(hi * FIXED_POINT)), math.ceil(lo * FIXED_POINT))
    return q / FIXED_POINT
