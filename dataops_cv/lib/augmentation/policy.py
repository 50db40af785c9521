"""The augmentation policy: which transforms may fire, with what probability and ranges.

An :class:`AugmentationPolicy` (``data_contracts/augmentation_policy.yaml``) lists each transform
with a probability and ranges, plus the box rule (see :mod:`dataops_cv.lib.augmentation.geometry`).
Its :attr:`~AugmentationPolicy.version` is a hash of its canonical content, and seeds every
parameter draw (:mod:`dataops_cv.lib.augmentation.params`). Loading a policy needs neither torch
nor the kernels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
_TOP_LEVEL_KEYS = {"description", "seed", "variants_per_sample", "fill", "boxes", "transforms"}


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
        """The probability that transform ``name`` fires (0 when the policy omits it)."""
        return float(self.transforms.get(name, {}).get("p", 0.0))

    def range(self, name: str, key: str) -> tuple[float, float]:
        """The inclusive ``(lo, hi)`` range of ``key`` of transform ``name``."""
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
    if not isinstance(doc, dict):
        raise _error(where, "", f"expected a mapping, found {type(doc).__name__}")
    for key in doc:
        if key not in _TOP_LEVEL_KEYS:
            raise _error(where, str(key), f"unknown key; expected one of {sorted(_TOP_LEVEL_KEYS)}")
    seed, variants, fill = _settings(doc, where)
    min_vis, min_size = _box_rule(doc, where)
    transforms = doc.get("transforms", {}) or {}
    if not isinstance(transforms, dict):
        raise _error(where, "transforms", f"expected a mapping, found {type(transforms).__name__}")
    clean = {name: _transform_entry(name, spec, where) for name, spec in transforms.items()}
    return AugmentationPolicy(
        transforms=clean, seed=seed, variants_per_sample=variants, fill=tuple(fill),
        min_visibility=float(min_vis), min_size_px=float(min_size),
        description=str(doc.get("description", "")))


def _error(where: str, key: str, message: str) -> PolicyError:
    return PolicyError(f"{where}: {key}: {message}")


def _settings(doc: dict, where: str) -> tuple[int, int, list[int]]:
    """The validated ``seed``, ``variants_per_sample`` and ``fill`` of a policy document."""
    seed = doc.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _error(where, "seed", f"expected a non-negative integer, found {seed!r}")
    variants = doc.get("variants_per_sample", 2)
    if not isinstance(variants, int) or isinstance(variants, bool) or not 0 <= variants <= 64:
        raise _error(where, "variants_per_sample",
                     f"expected an integer in 0..64, found {variants!r}")
    fill = doc.get("fill", [114, 114, 114])
    if (not isinstance(fill, list) or len(fill) != 3
            or not all(isinstance(v, int) and 0 <= v <= 255 for v in fill)):
        raise _error(where, "fill", f"expected three integers in 0..255 (RGB), found {fill!r}")
    return seed, variants, fill


def _box_rule(doc: dict, where: str) -> tuple[float, float]:
    """The validated ``boxes.min_visibility`` and ``boxes.min_size_px`` of a policy document."""
    boxes = doc.get("boxes", {}) or {}
    if not isinstance(boxes, dict) or set(boxes) - {"min_visibility", "min_size_px"}:
        raise _error(where, "boxes", f"expected min_visibility and min_size_px, found {boxes!r}")
    min_vis = boxes.get("min_visibility", 0.35)
    if not isinstance(min_vis, (int, float)) or not 0.0 < min_vis <= 1.0:
        raise _error(where, "boxes.min_visibility",
                     f"expected a number in (0, 1], found {min_vis!r}")
    min_size = boxes.get("min_size_px", 2.0)
    if not isinstance(min_size, (int, float)) or min_size < 0:
        raise _error(where, "boxes.min_size_px", f"expected a number >= 0, found {min_size!r}")
    return min_vis, min_size


def _transform_entry(name: object, spec: object, where: str) -> dict[str, Any]:
    """One validated transform: ``p`` as a float, then each of its ranges as ``[lo, hi]``."""
    if name not in _RANGES:
        raise _error(where, f"transforms.{name}",
                     f"unknown transform; expected one of {TRANSFORMS}")
    if not isinstance(spec, dict) or "p" not in spec:
        raise _error(where, f"transforms.{name}", "expected a mapping with at least p")
    p = spec["p"]
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise _error(where, f"transforms.{name}.p",
                     f"expected a probability in [0, 1], found {p!r}")
    entry: dict[str, Any] = {"p": float(p)}
    for key in spec:
        if key != "p" and key not in _RANGES[name]:
            raise _error(where, f"transforms.{name}.{key}",
                         f"unknown key; expected p and {sorted(_RANGES[name])}")
    for key, bounds in _RANGES[name].items():
        entry[key] = _range_value(spec.get(key), bounds, f"transforms.{name}.{key}", where)
    return entry


def _range_value(value: object, bounds: tuple[str, float, float], key: str, where: str) -> list:
    """A validated ``[lo, hi]`` inside ``bounds`` (kind, lower, upper): ints for int/odd kinds."""
    kind, lo_bound, hi_bound = bounds
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise _error(where, key, f"expected [lo, hi], found {value!r}")
    lo, hi = value
    if not lo_bound <= lo <= hi <= hi_bound:
        raise _error(where, key, f"expected {lo_bound} <= lo <= hi <= {hi_bound}, found {value!r}")
    if kind in ("int", "odd") and not (float(lo).is_integer() and float(hi).is_integer()):
        raise _error(where, key, f"expected integers, found {value!r}")
    if kind == "odd" and (int(lo) % 2 == 0 or int(hi) % 2 == 0):
        raise _error(where, key, f"expected odd sizes, found {value!r}")
    return [int(lo), int(hi)] if kind in ("int", "odd") else [float(lo), float(hi)]
