"""Distribution drift of one partition against a reference (the partitions before it).

Numeric columns: population stability index over the reference's deciles, and the two-sample
Kolmogorov-Smirnov test. String columns (e.g. ``class_name``): PSI over the categories and a
chi-square test of the 2 x k contingency table. The rule that flags a column lives in
:class:`dataops_cv.lib.validation.contracts.DriftSpec`; thresholds come from the table's contract.

PSI reading (the usual convention): < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from dataops_cv.lib.validation.contracts import Contract, DriftSpec

PSI_BINS = 10
# A share of 0 would make PSI infinite; a bin empty on one side counts as this share instead.
_EPS = 1e-4


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric | categorical
    reference_rows: int
    current_rows: int
    psi: float | None = None
    test: str | None = None  # ks | chi2
    statistic: float | None = None
    p_value: float | None = None
    effect: float | None = None  # KS D, or the largest change of a category's share
    reference_summary: dict = field(default_factory=dict)
    current_summary: dict = field(default_factory=dict)
    drifted: bool = False
    reasons: tuple[str, ...] = ()
    skipped: str | None = None  # why the column was not compared


@dataclass(frozen=True)
class DriftReport:
    table: str
    partition: str
    reference_partitions: tuple[str, ...]
    columns: tuple[ColumnDrift, ...]
    thresholds: dict

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.maximum(counts / total if total else counts, _EPS)


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two histograms over the same bins: sum((c - r) * ln(c / r)) of their shares."""
    r, c = _shares(np.asarray(reference, float)), _shares(np.asarray(current, float))
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI with bin edges at the reference's quantiles (ties merged, open outer bins)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    def histogram(values: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)

    return psi_from_counts(histogram(reference), histogram(current))


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "p05": float(np.percentile(values, 5)),
            "p50": float(np.median(values)), "p95": float(np.percentile(values, 95))}


def _verdict(spec: DriftSpec, psi: float, p: float, effect: float, effect_text: str) -> tuple:
    """Why the column drifted (empty: it did not): every threshold the contract sets is crossed."""
    crossed = [effect >= spec.min_effect]
    reasons = [f"{effect_text} >= {spec.min_effect}"]
    if spec.psi_max is not None:
        crossed.append(psi > spec.psi_max)
        reasons.append(f"PSI {psi:.3f} > {spec.psi_max}")
    if spec.p_min is not None:
        crossed.append(p < spec.p_min)
        reasons.append(f"p={p:.2g} < {spec.p_min}")
    return tuple(reasons) if all(crossed) else ()


def _numeric(column: str, ref: pd.Series, cur: pd.Series, spec: DriftSpec) -> ColumnDrift:
    r = ref.dropna().to_numpy(dtype=np.float64)
    c = cur.dropna().to_numpy(dtype=np.float64)
    if min(r.size, c.size) < spec.min_rows:
        return ColumnDrift(column, "numeric", int(r.size), int(c.size),
                           skipped=f"fewer than {spec.min_rows} values on one side")
    psi = numeric_psi(r, c)
    ks = stats.ks_2samp(r, c)
    d, p = float(ks.statistic), float(ks.pvalue)
    reasons = _verdict(spec, psi, p, d, f"KS D={d:.3f}")
    return ColumnDrift(column, "numeric", int(r.size), int(c.size), psi=psi, test="ks",
                       statistic=d, p_value=p, effect=d, reference_summary=_summary(r),
                       current_summary=_summary(c), drifted=bool(reasons),
                       reasons=tuple(reasons))


def _categorical(column: str, ref: pd.Series, cur: pd.Series, spec: DriftSpec) -> ColumnDrift:
    r = ref.dropna().astype(str).value_counts()
    c = cur.dropna().astype(str).value_counts()
    n_r, n_c = int(r.sum()), int(c.sum())
    if min(n_r, n_c) < spec.min_rows:
        return ColumnDrift(column, "categorical", n_r, n_c,
                           skipped=f"fewer than {spec.min_rows} values on one side")
    cats = sorted(set(r.index) | set(c.index))
    rc = np.array([r.get(k, 0) for k in cats], dtype=np.float64)
    cc = np.array([c.get(k, 0) for k in cats], dtype=np.float64)
    psi = psi_from_counts(rc, cc)
    share_r, share_c = rc / n_r, cc / n_c
    effect = float(np.max(np.abs(share_c - share_r)))
    if len(cats) > 1:
        chi = stats.chi2_contingency(np.vstack([rc, cc]))
        statistic, p = float(chi.statistic), float(chi.pvalue)
    else:
        statistic, p = 0.0, 1.0
    reasons = _verdict(spec, psi, p, effect, f"largest class-share change {effect:.3f}")
    return ColumnDrift(
        column, "categorical", n_r, n_c, psi=psi, test="chi2", statistic=statistic, p_value=p,
        effect=effect,
        reference_summary={k: round(float(v), 4) for k, v in zip(cats, share_r, strict=True)},
        current_summary={k: round(float(v), 4) for k, v in zip(cats, share_c, strict=True)},
        drifted=bool(reasons), reasons=tuple(reasons))


def compare(
    contract: Contract, partition: str, current: pd.DataFrame, reference: pd.DataFrame,
    reference_partitions: tuple[str, ...],
) -> DriftReport:
    """Compare ``current`` with ``reference`` on the contract's drift columns.

    Raises:
        ValueError: the contract has no ``drift`` section.
    """
    spec = contract.drift
    if spec is None:
        raise ValueError(f"{contract.path}: no 'drift' section, nothing to compare")
    results = []
    for name in spec.columns:
        kind = "categorical" if contract.column(name).type == "string" else "numeric"
        if name not in current.columns or name not in reference.columns:
            results.append(ColumnDrift(name, kind, len(reference), len(current),
                                       skipped="column missing on one side (see the contract "
                                               "check's schema result)"))
            continue
        compare_one = _categorical if kind == "categorical" else _numeric
        results.append(compare_one(name, reference[name], current[name], spec))
    return DriftReport(
        table=contract.table, partition=partition,
        reference_partitions=tuple(reference_partitions), columns=tuple(results),
        thresholds={"psi_max": spec.psi_max, "p_min": spec.p_min,
                    "min_effect": spec.min_effect, "min_rows": spec.min_rows,
                    "reference_partitions": spec.reference_partitions},
    )
