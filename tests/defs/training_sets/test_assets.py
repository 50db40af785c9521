"""training_set on the published day: a named set is built with its manifest, shards and tag
request; the same inputs give the same version, and the leakage check audits it."""

from __future__ import annotations

from dataops_cv.lib.lakefs.layout import table_key, trainset_key
from tests.defs.conftest import DAY, materialize


def _build(published_day, **config):
    return materialize(published_day.resources, "training_set", run_config={
        "ops": {"training_set": {"config": {"name": "stage-test", **config}}}})


def test_a_training_set_is_written_under_its_version_and_audited(published_day):
    done = _build(published_day)
    meta = done.metadata("training_set")
    version = meta["trainset_version"]
    assert meta["trainset_tag"] == f"trainset-stage-test-{version}" and meta["unchanged"] is False
    manifest = done.run.rows(trainset_key("stage-test", version, "manifest.parquet"))
    assert manifest and {r["split"] for r in manifest} <= {"train", "val", "test"}
    originals = [r for r in manifest if not r["augmented_from"]]
    # Originals live in shards shared by the name's versions, one group per split and day.
    shards = {r["shard"] for r in originals}
    assert shards and all(
        s.startswith(f"trainsets/stage-test/shards/{r['split']}/date={r['date']}/")
        for r in originals for s in [r["shard"]]) and all(done.run.exists(s) for s in shards)
    # Variants are recipes: no shard, their source's split and every parameter recorded.
    variants = [r for r in manifest if r["augmented_from"]]
    assert variants and all(r["shard"] is None and r["image_size"] is None and r["aug_params"]
                            and r["split"] == "train" for r in variants)
    assert all(done.run.exists(p if p.startswith("trainsets/") else
                               trainset_key("stage-test", version, p)) for p in meta["digests"])
    assert done.run.rows(table_key("training_set", DAY)) == manifest
    assert sum(meta[f"count_trainset_{s}"] for s in ("train", "val", "test")) == len(manifest)
    leakage = done.check("training_set_leakage")
    assert leakage.passed and leakage.metadata["samples"].value == len(manifest)


def test_the_same_inputs_name_the_same_version_and_another_seed_another(published_day):
    first = _build(published_day).metadata("training_set")["trainset_version"]
    assert _build(published_day).metadata("training_set")["trainset_version"] == first
    assert _build(published_day, seed="1").metadata("training_set")["trainset_version"] != first


def test_a_new_version_of_the_same_originals_writes_no_shard(published_day):
    done = _build(published_day)
    first = done.metadata("training_set")
    done.run.store.merge(done.run.branch, "main", "publish")  # as the publish step does
    # Another version (variants left out) of the same originals in the same splits.
    second = _build(published_day, include_augmented=False).metadata("training_set")
    assert second["trainset_version"] != first["trainset_version"]
    assert second["count_shard_files_written"] == 0
    assert not [p for p in second["digests"] if "/shards/" in p]
