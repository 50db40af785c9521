"""What publishing learns from the definitions a run was made from: which checks block each
asset and which branch each asset publishes to (no reload of the code location in a step)."""

import dagster as dg
import pytest

from dataops_cv.definitions import defs
from dataops_cv.defs.publishing.publish import blocking_checks_by_asset
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.defs.run_branch import publish_targets, target_branch

LAKEFS = LakeFSResource(endpoint="http://127.0.0.1:9", access_key_id="-", secret_access_key="-")


def test_every_contracted_asset_has_its_blocking_checks():
    blocking = blocking_checks_by_asset(defs().get_repository_def().asset_graph)
    assert blocking[dg.AssetKey("raw_frames")] == {"raw_frames_contract", "raw_frames_resolution"}
    assert blocking[dg.AssetKey("curated_samples")] == {
        "curated_samples_contract", "curated_samples_reasons", "curated_samples_not_collapsed"}
    assert blocking[dg.AssetKey("training_set")] == {"training_set_leakage",
                                                      "training_set_has_samples"}
    assert dg.AssetKey("label_snapshot") not in blocking


def test_the_target_branch_comes_from_each_assets_tag():
    graph = defs().get_repository_def().asset_graph
    keys = [dg.AssetKey(k) for k in ("raw_frames", "label_snapshot", "prelabels")]
    targets = publish_targets(graph, keys)
    assert targets == {"raw_frames": None, "label_snapshot": "labels", "prelabels": "labels"}
    assert target_branch(LAKEFS, {k: v for k, v in targets.items() if v}) == "labels"
    assert target_branch(LAKEFS, {"raw_frames": None}) == "main"
    assert target_branch(LAKEFS, {}) == "main"
    with pytest.raises(ValueError, match="materialize them in separate runs"):
        target_branch(LAKEFS, targets)
