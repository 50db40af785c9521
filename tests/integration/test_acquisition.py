"""Acquisition end to end on real servers: folder and S3 sources, quarantine, incremental reruns."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataops_cv.lib.core.partitions import folder
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.lakefs.layout import table_key
from dataops_cv.lib.lakefs.store import LakeFSConfig, LakeFSStore
from dataops_cv.runner import run_pipeline

pytestmark = pytest.mark.usefixtures("in_process_runs")

DAY = "2026-01-07"
PARTITION = f"{DAY}|drops"  # the landing prefix drops/ names the source


def png(seed: int, size=(96, 80)) -> bytes:
    """Deterministic noise: the same seed always gives the same bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_s3_source_through_dagster_aws_against_lakefs_s3_gateway(lakefs_server, store,
                                                                   dagster_instance):
    env = lakefs_server.client_env()
    landing = LakeFSStore(LakeFSConfig(env["LAKEFS_ENDPOINT"], env["LAKEFS_ACCESS_KEY_ID"],
                                       env["LAKEFS_SECRET_ACCESS_KEY"],
                                       f"landing-{uuid.uuid4().hex[:8]}"))
    landing.ensure_repository(f"local://{landing.repository}")
    for i in range(5):
        landing.put_object("main", f"drops/{DAY}/cam0/{i:03d}.png", png(i))
    landing.put_object("main", f"drops/{DAY}/cam0/broken.png", png(9)[:300])
    landing.put_object("main", "drops/2026-01-08/cam0/other-day.png", png(7))
    landing.commit("main", "rig upload")
    run_config = {"resources": {
        "capture_source": {"config": {"uri": f"s3://{landing.repository}/main/drops"}},
        "s3": {"config": {"endpoint_url": env["LAKEFS_ENDPOINT"],
                          "aws_access_key_id": env["LAKEFS_ACCESS_KEY_ID"],
                          "aws_secret_access_key": env["LAKEFS_SECRET_ACCESS_KEY"]}},
    }}
    first = run_pipeline(PARTITION, run_config=run_config, instance=dagster_instance)
    assert first.status == "SUCCESS", first.error
    assert first.counts["ingested"] == 5 and first.counts["quarantined"] == 1
    table = from_parquet_bytes(store.get_object("main", table_key("raw_frames", PARTITION)))
    assert all(u.startswith(f"s3://{landing.repository}/main/drops/{DAY}/")
               for u in table["source_uri"].to_pylist())
    q = from_parquet_bytes(store.get_object(
        "main", f"quarantine/raw_frames/{folder(PARTITION)}/_quarantine.parquet")).to_pylist()
    assert [(Path(r["source_uri"]).name, r["reason"]) for r in q] == [
        ("broken.png", "truncated_image")]
    assert store.get_object("main", q[0]["object_key"]) == png(9)[:300]  # bytes kept

    second = run_pipeline(PARTITION, run_config=run_config, instance=dagster_instance)
    assert second.status == "SUCCESS" and second.publish_status == "nothing_to_publish"
    assert second.counts["read"] == 0 and second.counts["uploaded"] == 0  # ETags unchanged


def test_folder_source_from_the_command_line_with_honest_counts(store, tmp_path):
    drop = tmp_path / "drop"
    (drop / "cam1").mkdir(parents=True)
    for i in range(4):
        (drop / "cam1" / f"{i}.png").write_bytes(png(i))
    (drop / "cam1" / "dup.png").write_bytes(png(0))
    (drop / "cam1" / "zero.jpg").write_bytes(b"")
    (drop / "cam1" / "readme.jpg").write_text("not a jpeg")
    env = {**os.environ, "DATAOPS_CV_HOME": str(tmp_path / "state")}
    cmd = [sys.executable, "-m", "dataops_cv.cli", "run", "--source", str(drop),
           "--partition", DAY, "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    c = report["counts"]
    assert (c["listed"], c["ingested"], c["quarantined"], c["duplicates"]) == (7, 5, 2, 1)
    assert store.head("main") == report["main_after"] != report["main_before"]

    (drop / "cam1" / "late.png").write_bytes(png(42))
    rerun = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                      timeout=300).stdout)
    assert rerun["counts"]["read"] == 1 and rerun["counts"]["uploaded"] == 1
    assert rerun["counts"]["ingested"] == 6


def test_voc_folder_a_new_user_points_at(store, deepforest_data, tmp_path):
    """`run --source DIR --format voc` on a real public VOC set: frames and labels published."""
    root = tmp_path / "trees"
    for path in sorted(deepforest_data.iterdir()):
        sub = "Annotations" if path.suffix == ".xml" else "JPEGImages"
        (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / sub / path.name)
    env = {**os.environ, "DATAOPS_CV_HOME": str(tmp_path / "state")}
    proc = subprocess.run(
        [sys.executable, "-m", "dataops_cv.cli", "run", "--source", str(root), "--format", "voc",
         "--source-name", "deepforest", "--partition", "2026-01-01", "--json"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    c = report["counts"]
    assert (c["ingested"], c["quarantined"]) == (4, 0)
    assert (c["annotations"], c["annotations_quarantined"]) == (951, 0)
    labels = from_parquet_bytes(store.get_object(
        "main", table_key("imported_annotations", "2026-01-01|deepforest")))
    frames = from_parquet_bytes(store.get_object("main", table_key("raw_frames", "2026-01-01|deepforest")))
    assert labels.num_rows == 951
    assert set(labels["image_sha256"].to_pylist()) == set(frames["sha256"].to_pylist())
    assert set(frames["source"].to_pylist()) == {"deepforest"}
    assert sorted(set(labels["class_name"].to_pylist())) == ["Alive", "Dead", "Tree"]


def test_synthetic_day_with_planted_defects_quarantines_each_with_its_reason(store,
                                                                            dagster_instance):
    """Bad files and labels are set aside with their reasons; the good ones are published."""
    config = {"resources": {"capture_source": {"config": {"synthetic_defects": True}}}}
    report = run_pipeline("2026-01-09", run_config=config, instance=dagster_instance)
    assert report.status == "SUCCESS", report.error

    def quarantined(asset: str) -> dict[str, set[str]]:
        rows = from_parquet_bytes(store.get_object(
            "main", f"quarantine/{asset}/date=2026-01-09/source=synthetic/_quarantine.parquet")).to_pylist()
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["reason"], set()).add(Path(r["source_uri"].split("#")[0]).name)
        return out

    images = quarantined("raw_frames")
    assert set(images) == {"empty_file", "truncated_image", "not_an_image"}
    assert len(images["truncated_image"]) == 2  # a PNG and a JPEG
    labels = quarantined("imported_annotations")
    assert "box_out_of_bounds" in labels
    assert "missing_image" in labels  # labels of the files quarantined above
    frames = from_parquet_bytes(store.get_object("main", table_key("raw_frames", "2026-01-09|synthetic")))
    modes = set(frames["mode"].to_pylist())
    assert {"CMYK", "I;16", "P", "RGBA"} <= modes  # converted by rule, not dropped
    assert {6, 8} <= set(frames["exif_orientation"].to_pylist())
    assert report.counts["duplicates"] >= 1
    assert report.counts["quarantined"] == 4
