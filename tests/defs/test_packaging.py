"""The code location as a deployment installs it: from a wheel, away from any checkout, with its
contracts shipped inside or taken from DATAOPS_CV_CONTRACTS_DIR."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, dataops_cv, dataops_cv.definitions as d
from dataops_cv.lib.validation.contracts.location import contracts_dir
graph = d.defs().resolve_asset_graph()
resolution = graph.get_check_spec(next(k for k in graph.asset_check_keys
                                       if k.name == "raw_frames_resolution"))
print(json.dumps({"package": dataops_cv.__file__, "contracts": str(contracts_dir()),
                  "assets": len(list(graph.get_all_asset_keys())),
                  "checks": len(graph.asset_check_keys), "resolution": resolution.description}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built into a wheel (from a copy of the sources) and installed by unpacking
    it, as pip would, into a folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("dataops_cv", "data_contracts"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", ".", "-w", str(tmp / "dist")],
                          cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp / "dist").glob("dataops_cv-*.whl")
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "dataops_cv/data_contracts/raw_frames.yaml" in names
        assert "dataops_cv/dg.toml" in names
        zf.extractall(site)
    return site


def _probe(site: Path, cwd: Path, **env: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, capture_output=True,
                          text=True, timeout=300,
                          env={"PYTHONPATH": str(site), "HOME": str(cwd), **env})
    if proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_definitions_load_from_the_wheel_with_the_contracts_it_ships(installed: Path,
                                                                     tmp_path: Path):
    found = _probe(installed, tmp_path)
    assert Path(found["package"]).is_relative_to(installed)  # not the checkout's package
    assert found["contracts"] == str(installed / "dataops_cv" / "data_contracts")
    assert found["assets"] == 12 and found["checks"] >= 23
    assert "64x" in found["resolution"]


def test_contracts_come_from_the_configured_folder(installed: Path, tmp_path: Path):
    folder = tmp_path / "contracts"
    shutil.copytree(ROOT / "data_contracts", folder)
    path = folder / "raw_frames.yaml"
    contract = yaml.safe_load(path.read_text())
    rule = next(r for r in contract["expectations"] if r["rule"] == "resolution")
    rule["min_width"] = 96
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    found = _probe(installed, tmp_path, DATAOPS_CV_CONTRACTS_DIR=str(folder))
    assert found["contracts"] == str(folder.resolve())
    assert "at least 96x" in found["resolution"]


def test_a_malformed_contract_stops_the_code_location_naming_file_and_key(installed: Path,
                                                                        tmp_path: Path):
    """A user's typo in a contract fails `dagster definitions validate`, not a run later."""
    folder = tmp_path / "contracts"
    shutil.copytree(ROOT / "data_contracts", folder)
    path = folder / "imported_annotations.yaml"
    contract = yaml.safe_load(path.read_text())
    contract["columns"]["x_min"]["type"] = "float65"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
         "-m", "dataops_cv.definitions"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(installed),
             "HOME": str(tmp_path), "DATAOPS_CV_CONTRACTS_DIR": str(folder)})
    assert proc.returncode != 0
    assert f"{path}: columns.x_min.type: expected one of" in proc.stdout + proc.stderr
