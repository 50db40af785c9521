"""Interpolation between two bracketing records: linear, on the circle (headings) and spherical
(quaternions)."""

from __future__ import annotations

import numpy as np


def lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a`` moved a share ``w`` of the way to ``b``."""
    return a + w * (b - a)


def lerp_degrees(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`lerp` of angles in degrees the short way round, in [0, 360)."""
    delta = (b - a + 180.0) % 360.0 - 180.0  # the short way round: 359 -> 1 passes 0
    return (a + w * delta) % 360.0


def slerp(qa: np.ndarray, qb: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of N×4 quaternions, taking the short arc (q and -q agree)."""
    qa = qa / np.linalg.norm(qa, axis=1, keepdims=True)
    qb = qb / np.linalg.norm(qb, axis=1, keepdims=True)
    dot = np.sum(qa * qb, axis=1)
    qb = np.where(dot[:, None] < 0, -qb, qb)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        sin_t = np.sin(theta)
        wa = np.where(dot > 0.9995, 1 - w, np.sin((1 - w) * theta) / sin_t)
        wb = np.where(dot > 0.9995, w, np.sin(w * theta) / sin_t)
    q = wa[:, None] * qa + wb[:, None] * qb
    # A unit quaternion's component can land one ulp past 1 after normalising; consumers check.
    return np.clip(q / np.linalg.norm(q, axis=1, keepdims=True), -1.0, 1.0)
