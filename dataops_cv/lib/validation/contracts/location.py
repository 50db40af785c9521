"""Where the data contracts are read from: one configurable folder.

``DATAOPS_CV_CONTRACTS_DIR`` names it. Otherwise it is the ``data_contracts/`` folder that ships
inside the installed package (a wheel carries the repository's ``data_contracts/`` as
``dataops_cv/data_contracts/``), or, running from a source checkout, the repository's own
``data_contracts/``. Resolved when the definitions load, never at module import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dataops_cv
from dataops_cv.lib.validation.contracts import ContractError

CONTRACTS_DIR_ENV = "DATAOPS_CV_CONTRACTS_DIR"
FOLDER = "data_contracts"


def default_contracts_dir() -> Path:
    """The contracts shipped with the package (wheel), else the checkout's ``data_contracts/``.

    Raises:
        ContractError: neither exists (set ``DATAOPS_CV_CONTRACTS_DIR``).
    """
    package = Path(dataops_cv.__file__).resolve().parent
    for candidate in (package / FOLDER, package.parent / FOLDER):
        if candidate.is_dir():
            return candidate
    raise ContractError(str(package / FOLDER), "",
                        f"no {FOLDER}/ in the installed package or beside it "
                        f"({package.parent / FOLDER}): set {CONTRACTS_DIR_ENV} to the folder "
                        "that holds the contracts")


def contracts_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder every contract, the taxonomy and the augmentation policy are read from.

    Raises:
        ContractError: ``DATAOPS_CV_CONTRACTS_DIR`` names no folder, or no default exists.
    """
    configured = environ.get(CONTRACTS_DIR_ENV)
    if not configured:
        return default_contracts_dir()
    path = Path(configured).expanduser().resolve()
    if not path.is_dir():
        raise ContractError(f"{CONTRACTS_DIR_ENV}={configured}", "", "not a folder")
    return path
