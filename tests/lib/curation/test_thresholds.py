"""Quality thresholds relative to the source's own frames, with floors for unusable frames."""

from __future__ import annotations

import numpy as np
import pytest

from dataops_cv.lib.curation.decisions import day_reference, decide, split_list
from dataops_cv.lib.curation.thresholds import limits, reference_from_rows
from dataops_cv.lib.validation.contracts import CurationSpec, load_contract
from tests.lib.curation.test_decisions import frame

SPEC = CurationSpec(min_brightness=10, max_brightness=245, min_contrast=2, min_box_side_px=5,
                    robust_z=3.5, min_reference_frames=20)


def day(n: int, seed: int = 0, **metrics: tuple[float, float]) -> list:
    """n frames whose metrics are drawn around (centre, relative spread)."""
    rng = np.random.default_rng(seed)
    base = {"laplacian_var": (500.0, 0.3), "brightness": (120.0, 0.1), "contrast": (40.0, 0.2)}
    base.update(metrics)
    out = []
    for i in range(n):
        values = {k: float(c * np.exp(rng.normal(0, s))) for k, (c, s) in base.items()}
        out.append(frame(f"f{i:03d}", **values))
    return out


def reasons(rows) -> dict[str, list[str]]:
    return {r["rel_path"]: split_list(r["reasons"]) for r in rows if r["reasons"]}


def test_a_domain_smooth_everywhere_is_not_blurry_but_its_blurred_frames_are():
    """Microscopy-like: Laplacian variance ~8 on every frame (a street-tuned constant of 20
    would call them all blurry); 3 frames blurred further stand out and only they."""
    frames = day(60, laplacian_var=(8.0, 0.3))
    frames[:3] = [f.__class__(**{**f.__dict__, "laplacian_var": 0.4}) for f in frames[:3]]
    rows = decide(frames, SPEC)
    assert reasons(rows) == {f.rel_path: ["blurry"] for f in frames[:3]}
    detail = rows[0]["detail"]
    assert detail.startswith("laplacian_var 0.4 < ") and "source median" in detail
    assert "robust SD, log scale, 60 frames" in detail


def test_a_dark_domain_is_not_underexposed_but_a_black_frame_is_by_the_floor():
    frames = day(40, brightness=(30.0, 0.15))
    frames[0] = frames[0].__class__(**{**frames[0].__dict__, "brightness": 4.0})
    rows = decide(frames, SPEC)
    assert reasons(rows) == {frames[0].rel_path: ["underexposed"]}
    assert "brightness 4.0 <" in rows[0]["detail"]


def test_the_floor_decides_when_it_is_stricter_and_says_so():
    frames = day(40, contrast=(2.5, 0.05))  # near-constant everywhere: the floor still holds
    frames[0] = frames[0].__class__(**{**frames[0].__dict__, "contrast": 1.5})
    rows = decide(frames, SPEC)
    assert "low_contrast" in reasons(rows)[frames[0].rel_path]
    assert "contrast 1.5 < 2.0 (absolute floor min_contrast)" in rows[0]["detail"]


def test_near_identical_frames_do_not_make_sensor_noise_an_outlier():
    frames = day(30, laplacian_var=(300.0, 0.001), brightness=(100.0, 0.001))
    frames[0] = frames[0].__class__(**{**frames[0].__dict__, "laplacian_var": 250.0,
                                       "brightness": 92.0})
    assert reasons(decide(frames, SPEC)) == {}


def test_too_small_a_reference_leaves_only_the_floors():
    frames = day(10, laplacian_var=(500.0, 0.3))
    frames[0] = frames[0].__class__(**{**frames[0].__dict__, "laplacian_var": 1.0})
    found, note = limits(SPEC, day_reference(frames, ["2026-04-14"]))
    assert "10 reference frames < min_reference_frames 20" in note
    assert {q.reason for q in found} == {"underexposed", "overexposed", "low_contrast"}
    assert reasons(decide(frames, SPEC)) == {}


def test_history_of_the_source_makes_a_wholly_blurred_day_blurry():
    """A fogged lens blurs the whole day: against the source's sharp history every frame is an
    outlier; judged on itself alone, none is."""
    foggy = day(24, seed=1, laplacian_var=(15.0, 0.3))
    history = [{"sha256": f.sha256 + "h", "laplacian_var": f.laplacian_var,
                "brightness": f.brightness, "contrast": f.contrast}
               for f in day(100, seed=2)]
    alone = decide(foggy, SPEC)
    assert reasons(alone) == {}
    found, note = limits(SPEC, day_reference(foggy, ["2026-04-13", "2026-04-14"], history))
    assert "124 frames of 2026-04-13..2026-04-14" in note
    rows = decide(foggy, SPEC, quality_limits=found)
    assert all(split_list(r["reasons"]) == ["blurry"] for r in rows)


def test_exact_copies_count_once_in_the_reference():
    rows = [{"sha256": "a", "laplacian_var": 1.0, "brightness": 1.0, "contrast": 1.0}] * 5
    assert reference_from_rows(rows, []).size == 1


def test_sources_override_the_thresholds_and_bad_keys_are_named(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("table: t\ncolumns:\n  a: {type: string, nullable: false}\n"
                    "curation:\n  robust_z: 3.5\n  min_contrast: 2\n"
                    "  sources:\n    microscope: {robust_z: 6, min_contrast: null}\n")
    spec = load_contract(path).curation
    assert spec.for_source("microscope").robust_z == 6
    assert spec.for_source("microscope").min_contrast is None
    assert spec.for_source("rig-7") is spec and spec.robust_z == 3.5
    path.write_text(path.read_text().replace("robust_z: 6", "robust: 6"))
    with pytest.raises(Exception, match=r"curation\.sources\.microscope\.robust"):
        load_contract(path)
