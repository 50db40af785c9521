"""Whether a curated day collapsed: one reason excluding most of it, or nothing left to train on.

A rule that misfires on a new domain (a blur threshold that calls a whole smooth dataset blurry)
looks, downstream, exactly like a quiet day: no training set, no tag, a successful run. So the
curated day is judged as a whole. A *harmful* reason (the data judged bad) excluding more than
``max_excluded_share`` of the frames, or no useful frame left while harmful frames are more than
that share, is an error: publishing would record a collapsed curation as the truth. A *useless* reason
doing so (frames waiting for labels, a parked rig's near-duplicates) is a warning: nothing wrong
is published, but a person should know. Either way the message carries the reasons histogram and
what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dataops_cv.lib.curation.decisions import (
    HARMFUL,
    HARMFUL_REASONS,
    REASONS,
    USEFUL,
    split_list,
)

ERROR, WARN = "error", "warn"
_ADVICE = {
    "harmful": ("if this source really looks like this, give it its own thresholds under "
                "curation.sources.<source> in data_contracts/curated_samples.yaml (robust_z, the "
                "floors) or raise max_excluded_share; if it does not, the capture or the labels "
                "are broken: look at the frames in the excluded preview"),
    "unlabeled": "label the day (Label Studio) or import its labels; the frames stay on main",
    "useless": "a parked rig or a re-delivered drop; raise max_excluded_share if expected",
}


@dataclass(frozen=True)
class Collapse:
    severity: str | None  # None: the day did not collapse
    problems: tuple[str, ...]
    histogram: dict[str, int]  # frames per reason (a frame counts once per reason)
    frames: int
    useful: int

    @property
    def passed(self) -> bool:
        return self.severity is None


def reasons_histogram(rows: Sequence[Mapping]) -> dict[str, int]:
    """Frames per exclusion reason, in REASONS order, only reasons that occur."""
    counts = {r: 0 for r in REASONS}
    for row in rows:
        for reason in split_list(row["reasons"]):
            counts[reason] = counts.get(reason, 0) + 1
    return {r: n for r, n in counts.items() if n}


def _kind(reason: str) -> str:
    return "harmful" if reason in HARMFUL_REASONS else (
        "unlabeled" if reason == "unlabeled" else "useless")


def judge_collapse(rows: Sequence[Mapping], max_excluded_share: float) -> Collapse:
    """Judge a curated day (``CURATED_SCHEMA`` rows) against ``max_excluded_share``."""
    n = len(rows)
    useful = sum(r["decision"] == USEFUL for r in rows)
    histogram = reasons_histogram(rows)
    if n == 0:
        return Collapse(None, (), histogram, 0, 0)
    problems: list[tuple[str, str]] = []
    for reason, count in histogram.items():
        if count / n > max_excluded_share:
            kind = _kind(reason)
            problems.append((ERROR if kind == "harmful" else WARN,
                             f"{reason} excludes {count} of {n} frames ({count / n:.0%} > "
                             f"max_excluded_share {max_excluded_share:.0%}): {_ADVICE[kind]}"))
    if useful == 0:
        # An error when judging the data bad is what emptied the day; a day waiting for its
        # labels with a blurry frame among them is not a collapse.
        harmful = sum(r["decision"] == HARMFUL for r in rows)
        problems.append((ERROR if harmful / n > max_excluded_share else WARN,
                         f"no useful frame among {n}: no training sample comes from this day "
                         f"(reasons: {', '.join(f'{r} {c}' for r, c in histogram.items())})"))
    if not problems:
        return Collapse(None, (), histogram, n, useful)
    severity = ERROR if any(s == ERROR for s, _ in problems) else WARN
    return Collapse(severity, tuple(p for _, p in problems), histogram, n, useful)
