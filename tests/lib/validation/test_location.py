"""Where the contracts are read from: the configured folder, else the package's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataops_cv.lib.validation.contracts import ContractError
from dataops_cv.lib.validation.contracts.location import CONTRACTS_DIR_ENV, contracts_dir

ROOT = Path(__file__).resolve().parents[3]


def test_a_checkout_reads_its_own_data_contracts():
    assert contracts_dir({}) == ROOT / "data_contracts"


def test_the_configured_folder_wins(tmp_path: Path):
    assert contracts_dir({CONTRACTS_DIR_ENV: str(tmp_path)}) == tmp_path.resolve()


def test_a_configured_folder_that_is_not_there_is_named(tmp_path: Path):
    with pytest.raises(ContractError, match=f"{CONTRACTS_DIR_ENV}=.*nowhere: not a folder"):
        contracts_dir({CONTRACTS_DIR_ENV: str(tmp_path / "nowhere")})
