"""Diversity selection for curation: greedy k-center picks over the image embeddings of
:mod:`dataops_cv.lib.curation.features`, optionally balanced over the classes in each sample."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _class_members(classes: Sequence[Sequence[str]] | None, n: int
                   ) -> tuple[list[str], np.ndarray]:
    """The sorted class names of ``n`` samples and which samples hold each, ``bool (C, n)``;
    no classes (and a ``(0, n)`` matrix) without ``classes``."""
    if classes is None:
        return [], np.zeros((0, n), dtype=bool)
    names = sorted({c for sample in classes for c in sample})
    index = {c: k for k, c in enumerate(names)}
    members = np.zeros((len(names), n), dtype=bool)
    for row, sample in enumerate(classes):
        for c in sample:
            members[index[c], row] = True
    return names, members


def select_diverse(emb: np.ndarray, budget: int, classes: Sequence[Sequence[str]] | None = None,
                   class_balance: bool = True) -> list[int]:
    """Greedy k-center selection of ``budget`` rows of ``emb`` (each pick is the row farthest,
    in Euclidean distance, from all rows picked so far; the first pick is row 0 of those
    eligible). With ``classes`` (the class names in each sample) and ``class_balance``, each pick
    first chooses the class furthest below an equal share -- the present class with the fewest
    picks so far, then the one in the fewest samples, then by name -- and picks the farthest
    sample containing it, so rare classes are kept; once every class is exhausted the rest are
    picked by distance alone. Ties go to the lower index.

    Returns:
        Indices in selection order (all of them, ordered, when ``budget >= len(emb)``).

    Raises:
        ValueError: ``emb`` is not 2-D, ``budget`` is negative, or ``classes`` has a different
            length than ``emb``.
    """
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"emb must be 2-D (n, d), got shape {emb.shape}")
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    n = len(emb)
    if classes is not None and len(classes) != n:
        raise ValueError(f"classes must have one entry per row of emb ({n}), got {len(classes)}")
    budget = min(budget, n)
    names, members = _class_members(classes if class_balance else None, n)
    sizes = members.sum(axis=1)
    picks_per_class = np.zeros(len(names), dtype=np.int64)
    nearest = np.full(n, np.inf)
    available = np.ones(n, dtype=bool)
    sq_norms = np.einsum("ij,ij->i", emb, emb)
    chosen: list[int] = []
    while len(chosen) < budget:
        eligible = available
        if len(names):
            open_classes = (members & available).any(axis=1)
            if open_classes.any():
                # lexsort: the last key is primary -- fewest picks, then rarest, then name.
                order = np.lexsort((np.arange(len(names)), sizes, picks_per_class))
                serve = next(k for k in order if open_classes[k])
                eligible = available & members[serve]
        scores = np.where(eligible, nearest, -np.inf)
        pick = int(np.argmax(scores))  # argmax returns the first of equal maxima
        chosen.append(pick)
        available[pick] = False
        if len(names):
            picks_per_class += members[:, pick]
        dist = sq_norms + sq_norms[pick] - 2.0 * (emb @ emb[pick])
        nearest = np.minimum(nearest, np.maximum(dist, 0.0))
    return chosen
