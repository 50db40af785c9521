"""The architecture holds: the import contracts in pyproject.toml pass on the package, and a
planted violation of each kind breaks them (a contract that cannot fail proves nothing)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": str(LINT.parent)})


def test_the_package_keeps_every_import_contract():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("lib/core/tables.py", "import dagster", "lib is plain Python"),
    ("lib/lakefs/layout.py", "from dataops_cv.defs import tags", "lib is plain Python"),
    ("lib/core/quarantine.py", "from dataops_cv.lib.curation import decisions", "lib layers"),
    ("defs/curation/checks.py", "from dataops_cv.defs.fusion.assets import fused_samples",
     "defs stages depend on each other"),
    ("defs/jobs.py", "from dataops_cv.definitions import defs", "definitions is loaded"),
])
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                                 broken: str):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "dataops_cv", copy / "dataops_cv",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    path = copy / "dataops_cv" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    proc = _lint(copy)
    assert proc.returncode != 0, proc.stdout
    # lint-imports wraps long contract names: read the verdict that follows the name.
    text = " ".join(proc.stdout.split())
    verdict = re.search(re.escape(broken) + r".*? (KEPT|BROKEN)\b", text)
    assert verdict is not None and verdict.group(1) == "BROKEN", proc.stdout
