"""Quality thresholds relative to the source's own frames, with absolute floors for frames no
domain can use.

A fixed blur or exposure threshold fits the data it was tuned on and nothing else: microscopy,
medical, aerial and night imagery are smooth or dark *everywhere*, and a constant set on street
scenes calls all of them blurry. So by default a frame is judged against the recent frames of its
own source (the day being curated plus ``history_days`` earlier curated days): it is blurry,
underexposed, overexposed or low in contrast when its metric lies more than ``robust_z`` robust
standard deviations (1.4826 x the median absolute deviation) beyond the source's median on the
bad side. Robust statistics, because the frames being judged are in the reference: a few bad
frames move neither the median nor the MAD, and a domain that is smooth throughout has a low
median, so its frames are not outliers of it.

Blur (variance of the Laplacian) and contrast (standard deviation of luma) are compared on a log
scale, where a change of focus or gain is a shift rather than a factor; brightness (mean luma) on
its own scale. The spread is floored (``MIN_SPREAD``) so that a reference of near-identical frames
(a parked rig) does not make sensor noise an outlier.

The absolute floors of the contract (``min_brightness``, ``max_brightness``, ``min_contrast``,
``min_laplacian_var``) stay for frames unusable in any domain: black, white or near-constant.
Each limit says how it was found, and a frame's detail quotes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dataops_cv.lib.validation.contracts import CurationSpec

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class Metric:
    reason: str
    column: str
    log: bool  # compare log(1 + value)
    side: str  # "low": bad below the limit; "high": bad above it
    min_spread: float  # floor of the robust SD, in the compared scale


METRICS = (
    Metric("blurry", "laplacian_var", True, "low", 0.1),
    Metric("underexposed", "brightness", False, "low", 3.0),
    Metric("overexposed", "brightness", False, "high", 3.0),
    Metric("low_contrast", "contrast", True, "low", 0.1),
)
FLOORS = {"blurry": "min_laplacian_var", "underexposed": "min_brightness",
          "overexposed": "max_brightness", "low_contrast": "min_contrast"}


@dataclass(frozen=True)
class Limit:
    """One threshold a frame's metric is held to, and how it was found."""

    reason: str
    column: str
    side: str
    value: float
    basis: str  # what a person reads: the statistic, or "absolute floor"

    def breached(self, x: float | None) -> bool:
        if x is None or not math.isfinite(x):
            return False
        return x < self.value if self.side == "low" else x > self.value

    def detail(self, x: float) -> str:
        op = "<" if self.side == "low" else ">"
        return f"{self.column} {x:.1f} {op} {self.value:.1f} ({self.basis})"


@dataclass(frozen=True)
class Reference:
    """The frames a source's thresholds are computed from: metric values by column, one per
    distinct content, and the days they come from."""

    values: Mapping[str, Sequence[float]]
    days: tuple[str, ...]

    @property
    def size(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)

    def describe(self) -> str:
        days = (self.days[0] if len(self.days) == 1 else
                f"{self.days[0]}..{self.days[-1]}" if self.days else "no day")
        return f"{self.size} frames of {days}"


def reference_from_rows(rows: Sequence[Mapping], days: Sequence[str]) -> Reference:
    """A reference from rows with the metric columns (frames or curated rows), one value per
    sha256: exact copies would otherwise weigh their content twice."""
    seen: set[str] = set()
    values: dict[str, list[float]] = {m.column: [] for m in METRICS}
    for r in rows:
        if r["sha256"] in seen:
            continue
        seen.add(r["sha256"])
        for column, out in values.items():
            v = r.get(column)
            if v is not None and math.isfinite(float(v)):
                out.append(float(v))
    return Reference(values, tuple(sorted(set(days))))


def _relative(metric: Metric, values: Sequence[float], z: float, ref: Reference) -> Limit:
    a = np.asarray(values, dtype=np.float64)
    if metric.log:
        a = np.log1p(np.maximum(a, 0.0))
    median = float(np.median(a))
    spread = max(MAD_TO_SD * float(np.median(np.abs(a - median))), metric.min_spread)
    t = median - z * spread if metric.side == "low" else median + z * spread
    value = float(np.expm1(t)) if metric.log else t
    shown_median = float(np.expm1(median)) if metric.log else median
    sign = "-" if metric.side == "low" else "+"
    scale = ", log scale" if metric.log else ""
    return Limit(metric.reason, metric.column, metric.side, value,
                 f"source median {shown_median:.1f} {sign} {z:g} robust SD{scale}, "
                 f"{ref.describe()}")


def limits(spec: CurationSpec, ref: Reference) -> tuple[list[Limit], str]:
    """The limits frames are held to, the stricter of the floor and the relative limit per
    reason; and a note on whether the relative limits apply (too small a reference: not)."""
    out: list[Limit] = []
    relative = spec.robust_z is not None and ref.size >= spec.min_reference_frames
    note = (f"relative thresholds from {ref.describe()}" if relative else
            "relative thresholds off (robust_z null)" if spec.robust_z is None else
            f"relative thresholds off: {ref.size} reference frames < "
            f"min_reference_frames {spec.min_reference_frames}; absolute floors only")
    for metric in METRICS:
        candidates: list[Limit] = []
        floor = getattr(spec, FLOORS[metric.reason])
        if floor is not None:
            candidates.append(Limit(metric.reason, metric.column, metric.side, float(floor),
                                    f"absolute floor {FLOORS[metric.reason]}"))
        values = ref.values.get(metric.column) or ()
        if relative and len(values) >= spec.min_reference_frames:
            assert spec.robust_z is not None
            candidates.append(_relative(metric, values, spec.robust_z, ref))
        if candidates:
            pick = max if metric.side == "low" else min
            out.append(pick(candidates, key=lambda c: c.value))
    return out, note
