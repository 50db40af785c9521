"""The code version recorded with every commit, so data can be traced to the code that made it."""

from __future__ import annotations

import functools
import os
import subprocess
from importlib import metadata
from pathlib import Path


@functools.cache
def code_version() -> str:
    """``DATAOPS_CV_CODE_VERSION`` if set, else the package version plus the git commit of the
    checkout it runs from (``+dirty`` when it has uncommitted changes)."""
    explicit = os.environ.get("DATAOPS_CV_CODE_VERSION")
    if explicit:
        return explicit
    try:
        version = metadata.version("dataops-cv")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{sha}{'.dirty' if dirty else ''}"
