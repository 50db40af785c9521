"""A curated day that one reason empties is an error (harmful) or a warning (useless)."""

from __future__ import annotations

import pytest

from dataops_cv.lib.curation.collapse import ERROR, WARN, judge_collapse


def rows(**reasons: int) -> list[dict]:
    out = []
    for reason, n in reasons.items():
        decision = "useful" if reason == "useful" else (
            "harmful" if reason in ("blurry", "tiny_box") else "useless")
        out += [{"decision": decision, "reasons": "" if reason == "useful" else reason}] * n
    return out


@pytest.mark.parametrize("day, severity, says", [
    (rows(useful=30, blurry=10), None, ""),
    (rows(blurry=364), ERROR, "blurry excludes 364 of 364 frames (100% > max_excluded_share"),
    (rows(useful=10, blurry=30), ERROR, "curation.sources.<source>"),
    (rows(unlabeled=24), WARN, "label the day"),
    (rows(unlabeled=23, blurry=1), WARN, "no useful frame among 24"),
    (rows(useful=4, near_duplicate=20), WARN, "near_duplicate excludes 20 of 24"),
    ([], None, ""),
])
def test_collapse_severity_follows_what_emptied_the_day(day, severity, says):
    found = judge_collapse(day, 0.5)
    assert found.severity == severity
    assert says in "; ".join(found.problems)
    assert found.passed is (severity is None)


def test_the_histogram_counts_every_reason_of_a_frame():
    day = [{"decision": "harmful", "reasons": "tiny_box,blurry"},
           {"decision": "useless", "reasons": "unlabeled"}]
    assert judge_collapse(day, 0.9).histogram == {"tiny_box": 1, "blurry": 1, "unlabeled": 1}
