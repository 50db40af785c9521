"""Inter-annotator agreement on tasks that two or more people labeled.

For each pair of annotators of one image, boxes are matched greedily by IoU (highest first,
IoU >= ``IOU_MATCH``). Two numbers per pair:

* ``box_f1`` = 2 * matched / (boxes of A + boxes of B): did they find the same objects;
* ``class_agreement`` = matched pairs with the same class / matched pairs: did they name them alike.

A task's ``agreement`` is the mean over its annotator pairs of ``box_f1 * class_agreement``
(1.0: every box found by both and named alike). Tasks below ``DISAGREEMENT_BELOW`` go to the
audit queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

IOU_MATCH = 0.5
DISAGREEMENT_BELOW = 0.8

Box = tuple[str, float, float, float, float]  # class, x_min, y_min, x_max, y_max


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(a: Sequence[Box], b: Sequence[Box],
                threshold: float = IOU_MATCH) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by IoU, highest first; pairs of indices into ``a`` and ``b``."""
    pairs = sorted(((iou(x[1:], y[1:]), i, j) for i, x in enumerate(a) for j, y in enumerate(b)),
                   reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return out


@dataclass(frozen=True)
class TaskAgreement:
    image_sha256: str
    annotators: tuple[str, ...]
    box_f1: float
    class_agreement: float
    agreement: float

    @property
    def disagreement(self) -> bool:
        return self.agreement < DISAGREEMENT_BELOW


def pair_scores(a: Sequence[Box], b: Sequence[Box]) -> tuple[float, float]:
    """(box_f1, class_agreement) of two annotators' boxes on one image."""
    if not a and not b:
        return 1.0, 1.0
    matched = match_boxes(a, b)
    box_f1 = 2 * len(matched) / (len(a) + len(b))
    same = sum(1 for i, j in matched if a[i][0] == b[j][0])
    return box_f1, (same / len(matched) if matched else 0.0)


def task_agreements(rows: Iterable[Mapping]) -> list[TaskAgreement]:
    """Agreement of every image labeled by two or more annotators (canonical rows)."""
    by_image: dict[str, dict[str, list[Box]]] = {}
    for r in rows:
        boxes = by_image.setdefault(str(r["image_sha256"]), {})
        boxes.setdefault(str(r["annotator"]), []).append(
            (str(r["class_name"]), float(r["x_min"]), float(r["y_min"]), float(r["x_max"]),
             float(r["y_max"])))
    out = []
    for sha, per in sorted(by_image.items()):
        if len(per) < 2:
            continue
        scores = [pair_scores(per[x], per[y]) for x, y in combinations(sorted(per), 2)]
        f1 = sum(s[0] for s in scores) / len(scores)
        cls = sum(s[1] for s in scores) / len(scores)
        both = sum(s[0] * s[1] for s in scores) / len(scores)
        out.append(TaskAgreement(sha, tuple(sorted(per)), round(f1, 6), round(cls, 6),
                                 round(both, 6)))
    return out


def agreement_summary(agreements: Sequence[TaskAgreement]) -> dict[str, float]:
    """Numbers for materialization metadata (plotted across runs)."""
    n = len(agreements)
    return {
        "multi_annotated_images": float(n),
        "mean_agreement": sum(a.agreement for a in agreements) / n if n else 1.0,
        "mean_box_f1": sum(a.box_f1 for a in agreements) / n if n else 1.0,
        "mean_class_agreement": sum(a.class_agreement for a in agreements) / n if n else 1.0,
        "disagreements": float(sum(a.disagreement for a in agreements)),
    }
