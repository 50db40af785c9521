"""Data contracts: the YAML files load and match the real tables; bad contracts fail with the file
and key; real Great Expectations validation reports what failed, with severity and a sample."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from dataops_cv.lib.acquisition.ingest import FRAMES_SCHEMA, ingest_images
from dataops_cv.lib.acquisition.labels import import_annotations
from dataops_cv.lib.acquisition.sensor_ingest import empty_sensor_table, ingest_sensor_logs
from dataops_cv.lib.acquisition.sensor_logs.format import SENSOR_LOG_SCHEMA
from dataops_cv.lib.acquisition.sources import LocalSource
from dataops_cv.lib.core.annotations import ANNOTATION_SCHEMA
from dataops_cv.lib.synthetic.config import CLASSES, SceneConfig
from dataops_cv.lib.synthetic.drops import write_drop
from dataops_cv.lib.validation.contracts import (
    SCHEMA_RESULT,
    Contract,
    ContractError,
    ExpectationResult,
    ValidationReport,
    build_suite,
    load_contract,
    load_contracts,
    load_taxonomy,
    schema_changes,
    validate,
)
from tests.lib.acquisition.test_ingest import Store

CONTRACTS = Path(__file__).resolve().parents[3] / "data_contracts"


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts(CONTRACTS)


def sha(i: int) -> str:
    return f"{i:064x}"


def frames(n: int = 5, **columns: list) -> pd.DataFrame:
    """``n`` valid frames through FRAMES_SCHEMA (Arrow) → pandas; ``columns`` override values."""
    rows = [{
        "sha256": sha(i), "object_key": f"frames/00/{sha(i)}.png",
        "source_uri": f"file:///drop/cam0/{i}.png", "source": "rig-a", "rel_path": f"cam0/{i}.png",
        "size": 1000 + i,
        "fingerprint": f"mtime_ns={i}", "format": "PNG", "mode": "RGB", "channels": 3,
        "width": 320, "height": 240, "stored_width": 320, "stored_height": 240,
        "exif_orientation": 1, "capture_time": pd.Timestamp("2026-03-01T08:00:00Z") if i else None,
        "device_id": "cam0", "gps_lat": 48.1 if i % 2 else None, "gps_lon": 11.5 if i % 2 else None,
        "duplicate_of": None, "brightness": 120.0 + i, "contrast": 40.0, "laplacian_var": 300.0,
    } for i in range(n)]
    for name, values in columns.items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    return pa.Table.from_pylist(rows, FRAMES_SCHEMA).to_pandas()


def boxes(images: list[str], per_image: int = 2, **columns: list) -> pd.DataFrame:
    """``per_image`` valid boxes on each image hash, through ANNOTATION_SCHEMA → pandas."""
    rows = [{
        "image_sha256": image, "annotation_id": f"{k * 1000 + j:032x}",
        "class_name": CLASSES[j % len(CLASSES)], "class_id": j % len(CLASSES) if j else None,
        "x_min": 10.0 + j, "y_min": 20.0, "x_max": 50.0 + j, "y_max": 60.0, "source": "coco",
        "annotator": None, "label_revision": "files-sha256:0123456789abcdef", "created_at": None,
        "updated_at": None, "score": None, "review_state": None,
    } for k, image in enumerate(images) for j in range(per_image)]
    for name, values in columns.items():
        for row, value in zip(rows, values, strict=True):
            row[name] = value
    return pa.Table.from_pylist(rows, ANNOTATION_SCHEMA).to_pandas()


def result(report: ValidationReport, name: str, column: str | None = None) -> ExpectationResult:
    found = [r for r in report.results if r.name == name and (column is None or r.column == column)]
    assert len(found) == 1, f"expected one result {name}/{column}, found {found}"
    return found[0]


# ------------------------------------------------------------------------------ loading


def test_every_contract_loads_and_matches_the_real_schemas(contracts):
    from dataops_cv.lib.augmentation.tables import AUGMENTED_SCHEMA
    from dataops_cv.lib.curation.decisions import CURATED_SCHEMA
    from dataops_cv.lib.fusion.config import FUSED_SCHEMA

    assert set(contracts) == {"raw_frames", "imported_annotations", "sensor_logs",
                              "labeled_annotations", "fused_samples", "augmented_samples",
                              "curated_samples"}
    assert schema_changes(contracts["curated_samples"], CURATED_SCHEMA) == []
    assert schema_changes(contracts["fused_samples"], FUSED_SCHEMA) == []
    assert schema_changes(contracts["augmented_samples"], AUGMENTED_SCHEMA) == []
    assert schema_changes(contracts["raw_frames"], FRAMES_SCHEMA) == []
    assert schema_changes(contracts["imported_annotations"], ANNOTATION_SCHEMA) == []
    assert schema_changes(contracts["labeled_annotations"], ANNOTATION_SCHEMA) == []
    assert schema_changes(contracts["sensor_logs"], empty_sensor_table().schema) == []
    for contract in contracts.values():
        assert len(contract.sha256) == 64 and contract.path.endswith(f"{contract.table}.yaml")


def test_sensor_logs_allow_extra_numeric_columns_only(contracts):
    schema = empty_sensor_table().schema
    assert schema_changes(contracts["sensor_logs"],
                          schema.append(pa.field("n_points", pa.float64()))) == []
    assert schema_changes(contracts["sensor_logs"],
                          schema.append(pa.field("operator", pa.string()))) == [
        "column 'operator' added with type string: the contract allows extra columns of type "
        "float64 only"]
    assert schema_changes(contracts["sensor_logs"], SENSOR_LOG_SCHEMA) == [
        "column 'log_path' dropped: contract string, not found",
        "column 'object_key' dropped: contract string, not found"]


def test_taxonomy_holds_every_synthetic_class_and_feeds_the_annotation_contract(contracts):
    taxonomy = load_taxonomy(CONTRACTS / "taxonomy.yaml")
    assert set(CLASSES) <= set(taxonomy)
    assert {"truck", "bus", "traffic_light"} <= set(taxonomy)
    column = contracts["imported_annotations"].column("class_name")
    assert column.in_set == taxonomy and column.in_set_from == "taxonomy"


def test_taxonomy_override_relaxes_the_class_set_for_one_run(contracts):
    voc = ["Alive", "Dead", "Tree"]
    relaxed = load_contract(CONTRACTS / "imported_annotations.yaml", taxonomy=voc)
    frame_df = frames(2)
    trees = boxes(list(frame_df["sha256"]), class_name=["Tree", "Alive", "Dead", "Tree"])
    kw = {"related": {"raw_frames": frame_df}, "quarantined": 0}
    strict = validate(contracts["imported_annotations"], trees, **kw)
    # Outside the taxonomy is a warning for imported labels (the contract says why): reported,
    # not blocking.
    assert strict.success
    in_set = result(strict, "in_set", "class_name")
    assert not in_set.passed and in_set.severity == "warn" and in_set.unexpected_count == 4
    relaxed_report = validate(relaxed, trees, **kw)
    assert relaxed_report.success and not relaxed_report.failed("warn")


def base_contract() -> dict:
    return {
        "table": "t",
        "description": "a test table",
        "columns": {
            "width": {"type": "int32", "nullable": False, "min": 1, "max": 100},
            "cls": {"type": "string", "nullable": False, "in_set_from": "taxonomy"},
        },
        "expectations": [{"name": "non_empty", "rule": "row_count", "min": 1}],
    }


def _del(d: dict, *path: str) -> None:
    for p in path[:-1]:
        d = d[p]
    del d[path[-1]]


def _set(d: dict, value: object, *path: str | int) -> None:
    for p in path[:-1]:
        d = d[p]
    d[path[-1]] = value


BAD_CONTRACTS = [
    ("unknown_type", lambda c: _set(c, "int128", "columns", "width", "type"),
     "columns.width.type", "expected one of"),
    ("min_above_max", lambda c: _set(c, 1000, "columns", "width", "min"),
     "columns.width.min", "1000 is greater than max 100"),
    ("min_not_a_number", lambda c: _set(c, "abc", "columns", "width", "min"),
     "columns.width.min", "expected a number, found 'abc'"),
    ("unknown_column_severity", lambda c: _set(c, "fatal", "columns", "width", "severity"),
     "columns.width.severity", "found 'fatal'"),
    ("unknown_rule_severity", lambda c: _set(c, "critical", "expectations", 0, "severity"),
     "expectations[0].severity", "found 'critical'"),
    ("missing_nullable", lambda c: _del(c, "columns", "width", "nullable"),
     "columns.width.nullable", "required key is missing"),
    ("missing_table", lambda c: _del(c, "table"), "table", "required key is missing"),
    ("unknown_in_set_from", lambda c: _set(c, "colors", "columns", "cls", "in_set_from"),
     "columns.cls.in_set_from", "found 'colors'"),
    ("misspelt_key", lambda c: _set(c, True, "columns", "width", "nulable"),
     "columns.width.nulable", "unknown key"),
    ("table_not_the_file_name", lambda c: _set(c, "other", "table"), "table",
     "expected 't' (the file name)"),
    ("unknown_rule", lambda c: _set(c, "row_cnt", "expectations", 0, "rule"),
     "expectations[0].rule", "found 'row_cnt'"),
    ("relation_without_table", lambda c: c["expectations"].append(
        {"name": "ref", "rule": "relation", "column": "cls", "references": "sha256"}),
     "expectations[1].references", "expected '<table>.<column>'"),
    ("rule_on_unknown_column", lambda c: c["expectations"].append(
        {"name": "pair", "rule": "column_pair", "left": "width", "op": "greater_than",
         "right": "height"}),
     "expectations[1].right", "found 'height'"),
    ("duplicate_rule_name", lambda c: c["expectations"].append(
        {"name": "non_empty", "rule": "row_count", "max": 5}),
     "expectations[1].name", "used by an earlier rule"),
    ("quarantine_above_one", lambda c: c["expectations"].append(
        {"name": "q", "rule": "quarantine_rate", "max_fraction": 1.5}),
     "expectations[1].max_fraction", "in [0, 1]"),
    ("drift_bad_p", lambda c: _set(c, {"columns": ["width"], "p_min": 0}, "drift"),
     "drift.p_min", "in (0, 1]"),
    ("drift_old_key", lambda c: _set(c, {"columns": ["width"], "ks_p_min": 0.1}, "drift"),
     "drift.ks_p_min", "unknown key"),
    ("drift_timestamp", lambda c: (
        _set(c, {"type": "timestamp", "nullable": True}, "columns", "at"),
        _set(c, {"columns": ["at"], "psi_max": 0.2}, "drift")),
     "drift.columns[0]", "numeric or string"),
    ("drift_no_reference", lambda c: _set(
        c, {"columns": ["width"], "psi_max": 0.2, "reference_partitions": 0}, "drift"),
     "drift.reference_partitions", ">= 1"),
    ("bad_schema_drift", lambda c: _set(c, "ignore", "schema_drift"), "schema_drift",
     "found 'ignore'"),
    ("boxes_without_box_columns", lambda c: _set(c, {"min_side_px": 1}, "boxes"), "boxes",
     "the table lacks ['x_min', 'y_min', 'x_max', 'y_max']"),
    ("boxes_unknown_key", lambda c: _set(c, {"min_side": 1}, "boxes"), "boxes.min_side",
     "unknown key"),
    ("boxes_aspect_below_one", lambda c: (
        [_set(c, {"type": "float64", "nullable": False}, "columns", k)
         for k in ("x_min", "y_min", "x_max", "y_max")],
        _set(c, {"max_aspect_ratio": 0.5}, "boxes")),
     "boxes.max_aspect_ratio", "a ratio >= 1"),
]


@pytest.mark.parametrize(("mutate", "key", "message"),
                         [pytest.param(m, k, msg, id=i) for i, m, k, msg in BAD_CONTRACTS])
def test_bad_contract_names_file_and_key(tmp_path: Path, mutate, key: str, message: str):
    spec = copy.deepcopy(base_contract())
    mutate(spec)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ContractError) as info:
        load_contract(path, taxonomy=["car"])
    assert str(info.value).startswith(f"{path}: {key}: "), str(info.value)
    assert message in str(info.value)
    assert info.value.key == key and info.value.file == str(path)


def test_a_column_given_twice_is_an_error_not_a_silent_override(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("table: t\ncolumns:\n  width: {type: int32, nullable: false, min: 64}\n"
                    "  width: {type: int32, nullable: false}\n")
    with pytest.raises(ContractError, match="line 4: key 'width' appears twice"):
        load_contract(path)


def test_in_set_from_taxonomy_without_a_taxonomy_file_fails(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(base_contract()))
    with pytest.raises(ContractError, match=r"taxonomy\.yaml or a taxonomy argument"):
        load_contract(path)
    (tmp_path / "taxonomy.yaml").write_text("classes:\n  - car\n  - bus\n")
    assert load_contract(path).column("cls").in_set == ("car", "bus")


def test_load_contracts_reports_the_bad_file(tmp_path: Path):
    (tmp_path / "taxonomy.yaml").write_text("classes: [car]\n")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(base_contract()))
    bad = base_contract()
    bad["table"] = "u"
    bad["columns"]["width"]["type"] = "decimal"
    (tmp_path / "u.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ContractError) as info:
        load_contracts(tmp_path)
    assert info.value.file == str(tmp_path / "u.yaml") and info.value.key == "columns.width.type"
    (tmp_path / "u.yaml").unlink()
    assert list(load_contracts(tmp_path)) == ["t"]


def test_build_suite_has_a_real_gx_expectation_per_rule(contracts):
    suite = build_suite(contracts["raw_frames"])
    by_name = {(e.meta["name"], e.meta["column"]): e for e in suite.expectations}
    assert type(by_name[("not_null", "sha256")]).__name__ == "ExpectColumnValuesToNotBeNull"
    assert type(by_name[("min_resolution", "width")]).__name__ == "ExpectColumnValuesToBeBetween"
    assert by_name[("min_resolution", "height")].min_value == 64
    assert type(by_name[("non_empty_partition", None)]).__name__ == \
        "ExpectTableRowCountToBeBetween"
    # Rules GX cannot express are not in the suite; validate() runs them in pandas.
    assert not {n for n, _ in by_name} & {"duplicate_of_names_a_frame", "quarantine_rate"}


# ---------------------------------------------------------------------------- validation


def test_good_frames_pass_every_rule(contracts):
    df = frames(6, sha256=[sha(i) for i in range(5)] + [sha(0)],
                duplicate_of=[None] * 5 + ["cam0/0.png"])
    report = validate(contracts["raw_frames"], df, quarantined=1)
    assert report.success and report.failed() == [], report.failed()
    assert report.rows == 6 and result(report, SCHEMA_RESULT).passed


def test_frames_below_minimum_resolution_fail_with_observed_values_and_sample(contracts):
    df = frames(5, width=[320, 32, 320, 63, 320], height=[240, 24, 240, 240, 240])
    report = validate(contracts["raw_frames"], df, quarantined=0)
    assert not report.success
    width = result(report, "min_resolution", "width")
    assert (width.passed, width.severity, width.unexpected_count) == (False, "error", 2)
    assert sorted(width.sample) == [32, 63]
    assert width.unexpected_fraction == pytest.approx(0.4)
    assert "2 of 5" in width.observed and "64" in width.expected
    assert result(report, "min_resolution", "height").sample == [24]
    assert {(r.name, r.column) for r in report.failed("error")} == {
        ("min_resolution", "width"), ("min_resolution", "height")}


def test_empty_frames_table_fails_row_count(contracts):
    report = validate(contracts["raw_frames"], FRAMES_SCHEMA.empty_table().to_pandas(),
                      quarantined=0)
    rows = result(report, "non_empty_partition")
    assert not report.success and not rows.passed and rows.observed == "0"
    assert [r.name for r in report.failed()] == ["non_empty_partition"]


@pytest.mark.parametrize("table", ["imported_annotations", "labeled_annotations"])
def test_an_unlabeled_day_passes_every_label_statistic(contracts, table):
    # Means and quantiles of no values judge nothing: an empty day is row_count's to flag.
    report = validate(contracts[table], ANNOTATION_SCHEMA.empty_table().to_pandas(),
                      related={"raw_frames": pd.DataFrame({"sha256": [sha(1)]})}, quarantined=0)
    assert report.success and report.failed() == []
    assert result(report, "boxes_per_image_p99").observed == "no values to judge"


def test_repeated_sha256_needs_duplicate_of_pointing_at_a_frame(contracts):
    twice = frames(3, sha256=[sha(1), sha(2), sha(1)])
    report = validate(contracts["raw_frames"], twice, quarantined=0)
    unique = result(report, "sha256_unique_among_originals")
    assert not unique.passed and unique.sample == [sha(1), sha(1)]

    dangling = frames(3, sha256=[sha(1), sha(2), sha(1)], duplicate_of=[None, None, "gone.png"])
    report = validate(contracts["raw_frames"], dangling, quarantined=0)
    relation = result(report, "duplicate_of_names_a_frame")
    assert not relation.passed and relation.sample == ["gone.png"]
    assert [r.name for r in report.failed()] == ["duplicate_of_names_a_frame"]


def test_annotation_whose_image_is_missing_fails_the_relation(contracts):
    frame_df = frames(3)
    ghost = sha(999)
    df = boxes([*frame_df["sha256"], ghost])
    report = validate(contracts["imported_annotations"], df,
                      related={"raw_frames": frame_df}, quarantined=0)
    relation = result(report, "image_exists")
    assert not report.success and relation.severity == "error"
    assert (relation.unexpected_count, relation.sample) == (2, [ghost])
    assert relation.unexpected_fraction == pytest.approx(2 / 8)
    assert [r.name for r in report.failed()] == ["image_exists"]


def test_inverted_box_fails_the_column_pair_rule(contracts):
    frame_df = frames(1)
    df = boxes(list(frame_df["sha256"]), x_min=[10.0, 80.0], x_max=[50.0, 40.0])
    report = validate(contracts["imported_annotations"], df,
                      related={"raw_frames": frame_df}, quarantined=0)
    pair = result(report, "box_x_ordered")
    assert not pair.passed and pair.sample == [[40.0, 80.0]]
    assert result(report, "box_y_ordered").passed


@pytest.mark.parametrize(("quarantined", "passes"), [(1, True), (2, False)])
def test_quarantine_rate_blocks_above_one_percent_of_boxes(contracts, quarantined, passes):
    frame_df = frames(10)
    kept = boxes(list(frame_df["sha256"]), per_image=10)[: 100 - quarantined]
    sample = [{"source_uri": f"file:///l.json#{i}", "reason": "box_out_of_bounds"}
              for i in range(quarantined)]
    report = validate(contracts["imported_annotations"], kept,
                      related={"raw_frames": frame_df}, quarantined=quarantined,
                      quarantine_sample=sample)
    rate = result(report, "quarantine_rate")
    assert rate.passed is passes and report.success is passes
    assert rate.unexpected_fraction == pytest.approx(quarantined / 100)
    assert rate.unexpected_count == quarantined and rate.severity == "error"
    assert rate.records == ([] if passes else sample)  # named only when the rate fails


def test_warn_failure_is_reported_but_keeps_success(contracts):
    frame_df = frames(2)
    crowded = boxes([frame_df["sha256"][0]], per_image=80)  # 80 boxes on one image
    report = validate(contracts["imported_annotations"], crowded,
                      related={"raw_frames": frame_df}, quarantined=0)
    assert report.success
    assert report.failed("error") == []
    warned = {r.name for r in report.failed("warn")}
    assert warned == {"boxes_per_image"}
    assert result(report, "boxes_per_image").observed == "80"


def test_boxes_per_image_statistic_is_over_images_not_rows(contracts):
    frame_df = frames(4)
    # 1, 1, 1 and 5 boxes: mean per image 2, a row-weighted mean would be 3.5.
    df = pd.concat([boxes([s], per_image=n) for s, n in zip(frame_df["sha256"], [1, 1, 1, 5],
                                                             strict=True)], ignore_index=True)
    df["annotation_id"] = [f"{i:032x}" for i in range(len(df))]
    report = validate(contracts["imported_annotations"], df,
                      related={"raw_frames": frame_df}, quarantined=0)
    assert result(report, "boxes_per_image").observed == "2"


def test_nullable_integer_column_with_nulls_is_not_a_retype(contracts):
    frame_df = frames(1)
    df = boxes(list(frame_df["sha256"]), per_image=3)
    assert df["class_id"].dtype == "float64" and df["class_id"].isna().any()
    assert schema_changes(contracts["imported_annotations"], df) == []
    df["class_id"] = [0.5, None, 1.0]
    assert schema_changes(contracts["imported_annotations"], df) == [
        "column 'class_id' retyped: contract int32, found float64"]


def test_schema_changes_name_added_dropped_and_retyped_columns(contracts):
    df = frames(3).drop(columns=["duplicate_of"])
    df["gps_lat"] = df["gps_lat"].astype("str")
    df["lens"] = "wide"
    contract = contracts["raw_frames"]
    assert schema_changes(contract, df) == [
        "column 'gps_lat' retyped: contract float64, found string",
        "column 'duplicate_of' dropped: contract string, not found",
        "column 'lens' added: found string, not in the contract",
    ]
    arrow = FRAMES_SCHEMA.remove(FRAMES_SCHEMA.get_field_index("width")).append(
        pa.field("width", pa.float32()))
    assert schema_changes(contract, arrow) == [
        "column 'width' retyped: contract int32, found float32"]

    report = validate(contract, df, quarantined=0)
    schema = result(report, SCHEMA_RESULT)
    assert not report.success and (schema.passed, schema.severity) == (False, "error")
    assert schema.unexpected_count == 3 and "gps_lat" in schema.observed
    # Rules on a dropped column fail as not evaluated rather than vanish.
    skipped = result(report, "sha256_unique_among_originals")
    assert not skipped.passed and "duplicate_of" in skipped.observed


def test_validate_refuses_to_guess_missing_inputs(contracts):
    frame_df = frames(1)
    df = boxes(list(frame_df["sha256"]))
    with pytest.raises(ValueError, match=r"related=\{'raw_frames'"):
        validate(contracts["imported_annotations"], df, quarantined=0)
    with pytest.raises(ValueError, match="quarantined"):
        validate(contracts["imported_annotations"], df, related={"raw_frames": frame_df})


def test_report_json_is_strict_and_complete(contracts):
    df = frames(3, gps_lat=[None, 95.0, None], exif_orientation=[1, 9, 1])
    report = validate(contracts["raw_frames"], df, quarantined=0)
    data = json.loads(report.to_json())  # strict: NaN would not round-trip through json
    assert data["table"] == "raw_frames" and data["success"] is False
    assert data["contract_sha256"] == contracts["raw_frames"].sha256
    failed = {(r["name"], r["column"]): r for r in data["results"] if not r["passed"]}
    assert set(failed) == {("range", "gps_lat"), ("range", "exif_orientation")}
    assert failed[("range", "gps_lat")]["sample"] == [95.0]
    assert "NaN" not in report.to_json()


def test_real_synthetic_day_fits_every_contract(contracts, tmp_path: Path):
    """A synthetic day with every planted defect, through the real ingest, label import and
    sensor ingest: each table passes its contract's rules."""
    drop = write_drop(SceneConfig(seed=7, frames_per_session=20), "2026-03-01", tmp_path / "drop",
                      workers=2)
    source = LocalSource(drop.root)
    ingested = ingest_images(source, "2026-03-01", [], [], Store().put)
    frame_df = pa.Table.from_pylist(ingested.rows, FRAMES_SCHEMA).to_pandas()
    assert frame_df["duplicate_of"].notna().any()  # the planted exact duplicate is a row
    report = validate(contracts["raw_frames"], frame_df, quarantined=len(ingested.quarantine))
    assert report.failed() == []

    labels = import_annotations(source, "coco", ingested.rows)
    box_df = pa.Table.from_pylist(labels.rows, ANNOTATION_SCHEMA).to_pandas()
    report = validate(contracts["imported_annotations"], box_df,
                      related={"raw_frames": frame_df}, quarantined=len(labels.quarantine))
    # The quarantine rate depends on how many defects were planted, not on the contract's fit.
    assert [r for r in report.failed() if r.name != "quarantine_rate"] == []

    sensors = ingest_sensor_logs(source, None, [], Store().put)
    assert "n_points" in sensors.table.column_names  # an extra numeric column, allowed
    report = validate(contracts["sensor_logs"], sensors.table.to_pandas(),
                      quarantined=len(sensors.quarantine))
    assert report.failed() == []
