"""Drift statistics and the contract's rule that turns them into a warning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataops_cv.lib.validation.contracts import load_contracts
from dataops_cv.lib.validation.drift import compare, numeric_psi, psi_from_counts

CONTRACTS = load_contracts(Path(__file__).resolve().parents[3] / "data_contracts")


def frames(brightness: np.ndarray) -> pd.DataFrame:
    n = len(brightness)
    return pd.DataFrame({"brightness": brightness, "contrast": np.full(n, 40.0),
                         "laplacian_var": np.full(n, 300.0), "width": np.full(n, 320),
                         "height": np.full(n, 240)})


def boxes(shares: dict[str, float], n: int) -> pd.DataFrame:
    names = [name for name, share in shares.items() for _ in range(round(share * n))]
    return pd.DataFrame({"class_name": names})


def test_psi_is_zero_for_identical_histograms_and_grows_with_the_shift():
    assert psi_from_counts(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0)
    rng = np.random.default_rng(0)
    ref = rng.normal(120, 20, 5000)
    small = numeric_psi(ref, rng.normal(125, 20, 5000))
    large = numeric_psi(ref, rng.normal(160, 20, 5000))
    assert 0 < small < 0.1 < 0.25 < large


def test_psi_of_a_constant_reference_is_finite():
    assert np.isfinite(numeric_psi(np.full(100, 7.0), np.full(100, 9.0)))


def test_shifted_brightness_drifts_and_an_unshifted_sample_does_not():
    rng = np.random.default_rng(1)
    contract = CONTRACTS["raw_frames"]
    reference = frames(rng.normal(120, 25, 700))
    same = compare(contract, "d", frames(rng.normal(120, 25, 100)), reference, ("a",))
    dark = compare(contract, "d", frames(rng.normal(60, 25, 100)), reference, ("a",))
    assert same.drifted == []
    assert [c.column for c in dark.drifted] == ["brightness"]
    b = dark.drifted[0]
    assert b.test == "ks" and b.effect > 0.4 and b.p_value < 0.01 and b.psi > 0.2
    assert b.current_summary["mean"] < b.reference_summary["mean"] - 40
    assert any("PSI" in r for r in b.reasons) and any("p=" in r for r in b.reasons)


def test_class_mix_shift_drifts_by_chi_square_and_psi():
    contract = CONTRACTS["imported_annotations"]
    base = {"car": 0.45, "pedestrian": 0.25, "cyclist": 0.15, "traffic_sign": 0.15}
    reference = boxes(base, 1000)
    same = compare(contract, "d", boxes(base, 200), reference, ("a",))
    shifted = compare(contract, "d", boxes({"car": 0.1, "pedestrian": 0.7, "cyclist": 0.1,
                                            "traffic_sign": 0.1}, 200), reference, ("a",))
    assert same.drifted == [] and same.columns[0].psi == pytest.approx(0, abs=1e-6)
    (c,) = shifted.drifted
    assert c.column == "class_name" and c.test == "chi2" and c.effect == pytest.approx(0.45)
    assert c.current_summary["pedestrian"] == pytest.approx(0.7)


def test_a_new_class_counts_as_a_share_change():
    contract = CONTRACTS["imported_annotations"]
    report = compare(contract, "d", boxes({"car": 0.5, "bus": 0.5}, 200),
                     boxes({"car": 1.0}, 500), ("a",))
    assert report.drifted and report.columns[0].current_summary["bus"] == 0.5


def test_every_threshold_must_be_crossed():
    """A large, significant shift below min_effect is reported, not flagged."""
    contract = CONTRACTS["raw_frames"]
    lenient = dataclasses.replace(
        contract, drift=dataclasses.replace(contract.drift, min_effect=1.0))
    rng = np.random.default_rng(2)
    report = compare(lenient, "d", frames(rng.normal(90, 25, 200)),
                     frames(rng.normal(120, 25, 500)), ("a",))
    col = next(c for c in report.columns if c.column == "brightness")
    assert col.p_value < 1e-6 and col.psi > 0.2 and not col.drifted


def test_too_few_rows_are_skipped_with_the_reason():
    contract = CONTRACTS["raw_frames"]
    report = compare(contract, "d", frames(np.full(5, 10.0)), frames(np.full(500, 200.0)), ())
    assert report.drifted == []
    assert all(c.skipped and "fewer than 30" in c.skipped for c in report.columns)


def test_a_column_missing_on_one_side_is_skipped_not_crashed():
    contract = CONTRACTS["raw_frames"]
    cur = frames(np.full(50, 100.0)).drop(columns=["contrast"])
    report = compare(contract, "d", cur, frames(np.full(50, 100.0)), ("a",))
    assert "missing" in next(c for c in report.columns if c.column == "contrast").skipped


def test_report_json_names_thresholds_and_reference():
    contract = CONTRACTS["raw_frames"]
    report = compare(contract, "2026-03-02", frames(np.full(50, 100.0)),
                     frames(np.full(50, 100.0)), ("2026-03-01",))
    text = report.to_json()
    assert '"reference_partitions": [\n    "2026-03-01"' in text and '"psi_max": 0.2' in text


def test_compare_needs_a_drift_section():
    contract = dataclasses.replace(CONTRACTS["raw_frames"], drift=None)
    with pytest.raises(ValueError, match="no 'drift' section"):
        compare(contract, "d", frames(np.ones(40)), frames(np.ones(40)), ())
