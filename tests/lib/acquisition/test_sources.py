"""Source names: derived from the URI unless given, and safe in keys and partition names."""

from __future__ import annotations

import pytest

from dataops_cv.lib.acquisition.sources import source_name, validate_source_name


@pytest.mark.parametrize("uri, name", [
    ("synthetic://", "synthetic"),
    ("/data/rigs/Rig 7/", "rig-7"),
    ("file:///data/public/BCCD_Dataset", "bccd_dataset"),
    ("s3://captures/vendor-a/drops", "drops"),
    ("s3://captures", "captures"),
    ("/", "default"),
])
def test_a_source_is_named_after_its_folder_or_prefix(uri, name):
    assert source_name(uri) == name


@pytest.mark.parametrize("bad", ["", "Rig", "-rig", "rig/7", "a" * 64, "rig|7"])
def test_names_that_cannot_be_keys_are_refused(bad):
    with pytest.raises(ValueError, match="lowercase letters, digits"):
        validate_source_name(bad)
