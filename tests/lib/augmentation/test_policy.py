"""The policy file: errors name the key, the contract allows exactly the policy's ranges, and
loading the policy (or the parameters, geometry and tables) does not import torch."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from dataops_cv.lib.augmentation.policy import PolicyError, policy_from_dict
from dataops_cv.lib.validation.contracts import load_contracts
from tests.lib.augmentation.conftest import CONTRACTS, POLICY_FILE


@pytest.mark.parametrize("edit,key", [
    (lambda d: d["transforms"].update(warp={"p": 0.1}), "transforms.warp"),
    (lambda d: d["transforms"]["rotate"].update(p=1.5), "transforms.rotate.p"),
    (lambda d: d["transforms"]["rotate"].update(degrees=[5, -5]), "transforms.rotate.degrees"),
    (lambda d: d["transforms"]["blur"].update(kernel=[2, 6]), "transforms.blur.kernel"),
    (lambda d: d["boxes"].update(min_visibility=0), "boxes.min_visibility"),
    (lambda d: d.update(fill=[1, 2]), "fill"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_policy_errors_name_the_key(edit, key):
    doc = yaml.safe_load(POLICY_FILE.read_text())
    doc = copy.deepcopy(doc)
    edit(doc)
    with pytest.raises(PolicyError, match=key.replace(".", r"\.")):
        policy_from_dict(doc, "policy.yaml")


def test_the_contract_holds_the_policy_ranges(policy):
    """augmented_samples.yaml must allow exactly what the policy can produce."""
    contract = load_contracts(CONTRACTS)["augmented_samples"]
    cols = {c.name: c for c in contract.columns}
    assert (cols["rotate_deg"].min, cols["rotate_deg"].max) == policy.range("rotate", "degrees")
    assert (cols["scale"].min, cols["scale"].max) == policy.range("scale", "factor")
    for key in ("brightness", "contrast", "saturation"):
        lo, hi = policy.range("color", key)
        assert (cols[key].min, cols[key].max) == (lo, hi)
    assert (cols["noise_std"].min, cols["noise_std"].max) == (0.0, policy.range("noise", "std")[1])
    assert cols["blur_kernel"].max == policy.range("blur", "kernel")[1]
    assert cols["min_box_visibility"].min == policy.min_visibility


def test_policy_params_geometry_and_tables_load_without_torch():
    """Only the kernels (and the stream that calls them) import torch."""
    code = (
        "import sys\n"
        "from dataops_cv.lib.augmentation import geometry, params, policy, tables\n"
        f"pol = policy.load_policy({str(POLICY_FILE)!r})\n"
        "params.sample_params(pol, 's', 0, 160, 120)\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.split() == ["False"]
