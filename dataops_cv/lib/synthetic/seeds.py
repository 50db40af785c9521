"""Stable seeds: every random choice of the generator, and why its bytes do not drift.

Every random choice comes from a ``random.Random`` or ``numpy.random.Generator`` seeded by
:func:`stable_seed` of the ids it belongs to (seed, date, session, device, index), sampled once
into a parameter object and then applied. Any single frame, sensor reading or sweep can be
regenerated alone (``synthetic_frame``, ``render_scene``, ``lidar_sweep``), and the same config
gives the same bytes on every run and machine with the pinned Python, NumPy and Pillow
(``random``'s ``sample``/``gauss`` and NumPy's distributions may change between their versions).
Images are encoded with fixed PNG/JPEG parameters; pixel maths after drawing is integer; sensor
values are quantised to the sensor's resolution, so a last-bit difference in a platform's ``sin``
cannot change a stored value in practice. One outside dependency remains: Pillow deflates PNGs
through the host's ``libz``. A whole drop hashed the same on a zlib 1.3 host and a zlib-ng 2.3.3
host, but another deflate implementation could change PNG bytes (never pixels); JPEG uses the
libjpeg-turbo inside the Pillow wheel.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def stable_seed(*parts: object) -> int:
    """64-bit seed from stable ids: the same ids give the same seed on every machine."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def py_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded by :func:`stable_seed` of ``parts``."""
    return random.Random(stable_seed(*parts))


def np_rng(*parts: object) -> np.random.Generator:
    """A NumPy generator seeded by :func:`stable_seed` of ``parts``."""
    return np.random.default_rng(stable_seed(*parts))
