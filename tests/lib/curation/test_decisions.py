"""The curation decision rules: reasons, decisions, which copy is kept, budgets, and the check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dataops_cv.lib.curation.decisions import (
    BoxIssue,
    CurationSample,
    LabelBox,
    NearPair,
    check_rows,
    decide,
    sample_id,
    split_list,
    summary,
)
from dataops_cv.lib.validation.contracts import ContractError, CurationSpec, load_contract

SPEC = CurationSpec(min_laplacian_var=20, min_brightness=25, max_brightness=235, min_contrast=5,
                    min_box_side_px=5)


def box(aid: str, cls: str = "car", w: float = 20, h: float = 20) -> LabelBox:
    return LabelBox(aid, cls, 0, 10, 10, 10 + w, 10 + h)


def frame(name: str, sha: str | None = None, **kw) -> CurationSample:
    base = dict(sample_id=sample_id("2026-04-14", name), sha256=sha or name * 8,
                object_key=f"frames/xx/{name}.png", rel_path=name, session_id="s0", camera="c",
                width=320, height=240, brightness=120.0, contrast=40.0, laplacian_var=500.0,
                boxes=(box(f"{name}-a"),), label_source="imported", label_revision="r" * 64,
                phash="0" * 16)
    return CurationSample(**{**base, **kw})


def by_path(rows):
    return {r["rel_path"]: r for r in rows}


def test_clean_frames_are_useful_with_no_reason():
    rows = decide([frame("a"), frame("b")], SPEC)
    assert [r["decision"] for r in rows] == ["useful", "useful"]
    assert all(r["reason"] is None and r["reasons"] == "" for r in rows)
    assert check_rows(rows, [r["sample_id"] for r in rows]) == []


@pytest.mark.parametrize("changes, reason", [
    ({"laplacian_var": 3.0}, "blurry"),
    ({"brightness": 9.0}, "underexposed"),
    ({"brightness": 250.0}, "overexposed"),
    ({"contrast": 2.0}, "low_contrast"),
    ({"boxes": (box("t", w=3, h=30),)}, "tiny_box"),
])
def test_quality_thresholds_make_a_frame_harmful_and_name_the_threshold(changes, reason):
    row = decide([frame("a", **changes)], SPEC)[0]
    assert row["decision"] == "harmful" and row["reason"] == reason
    assert row["detail"]


def test_a_threshold_set_to_none_is_off():
    row = decide([frame("a", laplacian_var=3.0)], replace(SPEC, min_laplacian_var=None))[0]
    assert row["decision"] == "useful"


def test_exact_copies_keep_the_first_path_and_name_it():
    rows = by_path(decide([frame("b", sha="s" * 64), frame("a", sha="s" * 64)], SPEC))
    assert rows["a"]["decision"] == "useful"
    assert rows["b"]["reason"] == "exact_duplicate"
    assert rows["b"]["duplicate_of"] == rows["a"]["sample_id"]


def test_near_duplicates_keep_the_best_frame_not_the_harmful_one():
    samples = [frame("a", laplacian_var=3.0), frame("b", laplacian_var=300.0),
               frame("c", laplacian_var=900.0)]
    pairs = [NearPair("a" * 8, "b" * 8, 2, 0.99), NearPair("b" * 8, "c" * 8, 3, 0.98)]
    rows = by_path(decide(samples, SPEC, pairs))
    assert rows["c"]["decision"] == "useful"  # sharpest of the group
    assert rows["b"]["reason"] == "near_duplicate" and rows["b"]["duplicate_of"] == \
        rows["c"]["sample_id"]
    # The blurry frame is harmful first, and still in the group.
    assert split_list(rows["a"]["reasons"]) == ["blurry", "near_duplicate"]
    assert {r["near_dup_group"] for r in rows.values()} == {rows["c"]["sample_id"]}
    assert "phash distance 3" in rows["b"]["detail"]


def test_disputed_boxes_make_a_frame_harmful_with_the_models_opinion():
    issues = {"a-a": BoxIssue("car", "pedestrian", 0.05, 0.9)}
    row = decide([frame("a")], SPEC, issues=issues)[0]
    assert row["reason"] == "likely_mislabeled" and row["mislabeled_boxes"] == 1
    assert "model says pedestrian" in row["detail"]


def test_unlabeled_frames_are_useless():
    row = decide([frame("a", boxes=(), label_source="none", label_revision=None)], SPEC)[0]
    assert row["decision"] == "useless" and row["reason"] == "unlabeled"


def test_a_budget_keeps_the_selected_frames_and_says_why_the_rest_are_out():
    samples = [frame(n) for n in "abcd"]
    rows = decide(samples, SPEC, budget=2, select=lambda useful, k: [3, 1])
    got = by_path(rows)
    assert [got[n]["selection_rank"] for n in "abcd"] == [None, 1, None, 0]
    assert got["a"]["reason"] == got["c"]["reason"] == "not_selected"
    assert summary(rows)["useful"] == 2 and summary(rows)["reason_not_selected"] == 2
    with pytest.raises(ValueError, match="select"):
        decide(samples, SPEC, budget=2)


def test_counts_add_up():
    rows = decide([frame("a"), frame("b", brightness=1.0), frame("c", sha="a" * 8)], SPEC)
    s = summary(rows)
    assert s["useful"] + s["useless"] + s["harmful"] == s["samples"] == 3


def test_check_rows_finds_every_kind_of_inconsistency():
    rows = decide([frame("a"), frame("b", brightness=1.0)], SPEC)
    ids = [r["sample_id"] for r in rows]
    assert check_rows(rows, ids) == []
    assert "no decision" in check_rows(rows[:1], ids)[0]
    bad = [dict(rows[0], decision="harmful"), rows[1]]
    assert "reasons [] mean useful" in check_rows(bad, ids)[0]
    bad = [rows[0], dict(rows[1], reasons="")]
    assert "mean useful" in check_rows(bad, ids)[0]
    bad = [rows[0], dict(rows[1], reasons="sunburn")]
    assert "unknown reason" in check_rows(bad, ids)[0]
    bad = [rows[0], dict(rows[1], reasons="exact_duplicate", reason="exact_duplicate",
                         decision="useless", duplicate_of=None)]
    assert "must name the kept frame" in check_rows(bad, ids)[0]
    assert "more than once" in check_rows(rows + rows[:1], ids)[-1]


def test_the_shipped_contract_has_the_thresholds_curation_applies():
    path = Path(__file__).resolve().parents[3] / "data_contracts" / "curated_samples.yaml"
    spec = load_contract(path).curation
    assert spec is not None and spec.robust_z and spec.min_box_side_px
    # Floors only for what no domain can use; blur has none (a smooth domain is not bad data).
    assert spec.min_laplacian_var is None and spec.min_contrast <= 2
    assert spec.min_brightness <= 10 and spec.max_brightness >= 245


def test_a_bad_curation_section_names_the_key(tmp_path):
    path = tmp_path / "t.yaml"
    for body, key in (("  min_blur: 3\n", "curation.min_blur"),
                      ("  min_brightness: -1\n", "curation.min_brightness"),
                      ("  min_brightness: 200\n  max_brightness: 100\n",
                       "curation.max_brightness")):
        path.write_text("table: t\ncolumns:\n  a: {type: string, nullable: false}\n"
                        "curation:\n" + body)
        with pytest.raises(ContractError, match=key.replace(".", r"\.")):
            load_contract(path)


def test_one_bad_box_spoils_a_sparse_frame_but_not_a_dense_one():
    """A dense scene (tree crowns, cells, crowds) keeps its hundreds of good boxes when one is
    tiny or disputed; the disputed count is kept for the audit queue either way."""
    spec = replace(SPEC, max_bad_box_share=0.1)
    sparse = frame("s", boxes=(box("s-a"), box("s-t", w=3, h=30)))
    dense = frame("d", boxes=tuple(box(f"d-{i}") for i in range(30)) + (box("d-t", w=3),))
    issues = {"s-a": BoxIssue("car", "truck", 0.01, 0.97), "d-0": BoxIssue("car", "truck", 0.01,
                                                                            0.97)}
    rows = by_path(decide([sparse, dense], spec, issues=issues))
    assert split_list(rows["s"]["reasons"]) == ["likely_mislabeled", "tiny_box"]
    assert "1 of 2 box(es) disputed" in rows["s"]["detail"]
    assert rows["d"]["decision"] == "useful" and rows["d"]["mislabeled_boxes"] == 1
    four_bad = frame("d", boxes=dense.boxes, sha256="e" * 8)
    many = {f"d-{i}": BoxIssue("car", "truck", 0.01, 0.97) for i in range(4)}
    row = decide([four_bad], spec, issues=many)[0]
    assert row["reason"] == "likely_mislabeled" and "4 of 31 box(es) disputed" in row["detail"]
