"""Training-set building blocks: leakage-free stratified splits, where augmented variants go, and
byte-stable, size-bounded shards and manifest whose version follows every byte."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
from collections import Counter

import pyarrow.parquet as pq
import pytest

from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.training_sets import writer as T

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
CLASSES = ("car", "pedestrian", "cyclist", "traffic_sign", "bus")
CLASS_WEIGHTS = (0.5, 0.25, 0.12, 0.1, 0.03)


def generated_split_input(n_groups: int = 600, seed: int = 1) -> tuple[list[str], list[list[str]]]:
    """Groups of 1-6 samples, each with 0-5 boxes of skewed class frequencies."""
    r = random.Random(seed)
    groups: list[str] = []
    classes: list[list[str]] = []
    for g in range(n_groups):
        for _ in range(r.randint(1, 6)):
            groups.append(f"session-{g}")
            classes.append(r.choices(CLASSES, CLASS_WEIGHTS, k=r.randint(0, 5)))
    return groups, classes


def image_bytes(key: str, size: int = 3000) -> bytes:
    """Deterministic incompressible stand-in for encoded image bytes (the writer never decodes)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{key}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sample(i: int, group: str | None = None, *, augmented_from: str | None = None,
           size: int = 3000, n_boxes: int = 2) -> tuple[T.SampleIn, bytes]:
    sid = hashlib.sha256(f"sample-{i}".encode()).hexdigest()[:16]
    data = image_bytes(sid, size)
    boxes = tuple(
        T.Box(annotation_id=f"{sid}-a{k}", class_name=CLASSES[(i + k) % 3], class_id=(i + k) % 3,
              x_min=1.0 + k, y_min=2.0, x_max=30.5 + k, y_max=40.25)
        for k in range(n_boxes))
    s = T.SampleIn(
        sample_id=sid, content_sha256=hashlib.sha256(data).hexdigest(),
        object_key=f"samples/{sid}.png", date="2026-11-22", rel_path=f"images/s/{i}.png",
        session_id=group, camera="cam_front", width=320, height=240,
        group_key=group or f"g{i // 3}", boxes=boxes, label_source="labeled",
        label_revision="c0ffee", augmented_from=augmented_from,
        aug_policy_version="p1" if augmented_from else None,
        aug_input_key=f"in-{i}" if augmented_from else None,
        aug_params='{"hflip": true}' if augmented_from else None)
    return s, data


def sample_set(n: int = 60, **kw) -> tuple[list[T.SampleIn], dict[str, bytes]]:
    samples, blobs = [], {}
    for i in range(n):
        s, data = sample(i, **kw)
        samples.append(s)
        blobs[s.object_key] = data
    return samples, blobs


def build(samples, blobs, seed: str = "s", **kw) -> list[T.TrainingSetFile]:
    planned = T.plan_training_set(samples, FRACTIONS, seed)
    return list(T.write_training_set(planned, blobs.__getitem__, **kw))


def digest_of(files: list[T.TrainingSetFile]) -> str:
    """One digest of every file a build wrote, path and bytes."""
    return hashlib.sha256("".join(f"{f.path}:{f.sha256}\n" for f in files).encode()).hexdigest()


@pytest.mark.parametrize("fractions, message", [
    ({"train": 0.8, "val": 0.1}, "sum to 1"),
    ({"train": 0.8, "val": 0.1, "test": 0.2}, "sum to 1"),
    ({"train": 0.8, "valid": 0.2}, "unknown split"),
    ({"train": 1.2, "val": -0.2}, ">= 0"),
])
def test_bad_fractions_are_rejected(fractions, message):
    with pytest.raises(ValueError, match=message):
        T.assign_splits(["a"], [["car"]], fractions, "s")


def test_splits_never_share_a_group():
    groups, classes = generated_split_input()
    splits = T.assign_splits(groups, classes, FRACTIONS, "seed-1")
    split_of: dict[str, set[str]] = {}
    for g, s in zip(groups, splits):
        split_of.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in split_of.values())
    assert set(splits) == set(T.SPLITS)


def test_splits_are_stratified_by_class_and_size():
    groups, classes = generated_split_input()
    splits = T.assign_splits(groups, classes, FRACTIONS, "seed-1")
    total = Counter(c for cs in classes for c in cs)
    for split, target in FRACTIONS.items():
        share = sum(1 for s in splits if s == split) / len(splits)
        assert share == pytest.approx(target, abs=0.02), split
        held = Counter(c for cs, s in zip(classes, splits) if s == split for c in cs)
        for c in CLASSES:
            assert held[c] / total[c] == pytest.approx(target, abs=0.025), (split, c)


def test_stratified_beats_a_random_group_assignment_on_a_rare_class():
    """The rare class's worst deviation from its target share is smaller than under random
    per-group splits (which a missing stratification would degrade to)."""
    groups, classes = generated_split_input(n_groups=300, seed=7)
    total = Counter(c for cs in classes for c in cs)

    def worst(splits: list[str]) -> float:
        held = Counter((s, c) for cs, s in zip(classes, splits) for c in cs)
        return max(abs(held[s, "bus"] / total["bus"] - f) for s, f in FRACTIONS.items())

    ours = worst(T.assign_splits(groups, classes, FRACTIONS, "x"))
    rand_worst = []
    for k in range(20):
        r = random.Random(k)
        pick = {g: r.choices(list(FRACTIONS), list(FRACTIONS.values()))[0] for g in set(groups)}
        rand_worst.append(worst([pick[g] for g in groups]))
    assert ours < 0.03
    assert ours < sorted(rand_worst)[len(rand_worst) // 2]


def test_splits_are_deterministic_and_independent_of_sample_order():
    groups, classes = generated_split_input(n_groups=200)
    first = T.assign_splits(groups, classes, FRACTIONS, "seed-1")
    assert T.assign_splits(groups, classes, FRACTIONS, "seed-1") == first
    order = list(range(len(groups)))
    random.Random(3).shuffle(order)
    shuffled = T.assign_splits([groups[i] for i in order], [classes[i] for i in order],
                               FRACTIONS, "seed-1")
    assert {groups[i]: s for i, s in zip(order, shuffled)} == dict(zip(groups, first))


def test_seed_changes_the_assignment():
    groups, classes = generated_split_input(n_groups=200)
    a = T.assign_splits(groups, classes, FRACTIONS, "seed-1")
    b = T.assign_splits(groups, classes, FRACTIONS, "seed-2")
    changed = sum(x != y for x, y in zip(a, b)) / len(a)
    assert changed > 0.2


def test_a_split_with_fraction_zero_gets_nothing():
    groups, classes = generated_split_input(n_groups=50)
    splits = T.assign_splits(groups, classes, {"train": 0.75, "val": 0.25}, "s")
    assert set(splits) == {"train", "val"}


def test_group_and_class_lists_must_align():
    with pytest.raises(ValueError, match="2 groups and 1 class"):
        T.assign_splits(["a", "b"], [["car"]], FRACTIONS, "s")


def test_variants_follow_their_source_and_only_train_keeps_them():
    originals, _ = sample_set(90)
    variants = [sample(1000 + i, group=s.group_key, augmented_from=s.sample_id)[0]
                for i, s in enumerate(originals)]
    planned = T.plan_training_set(originals + variants, FRACTIONS, "s")
    split_of = {p.sample.sample_id: p.split for p in planned}
    kept = [v for v in variants if v.sample_id in split_of]
    assert kept, "some sources are in train"
    for v in variants:
        source_split = split_of[v.augmented_from]
        if source_split == "train":
            assert split_of[v.sample_id] == "train"
        else:
            assert v.sample_id not in split_of
    assert {"val", "test"} <= set(split_of.values())
    # Variants do not move the originals: the same originals split the same way without them.
    alone = {p.sample.sample_id: p.split for p in T.plan_training_set(originals, FRACTIONS, "s")}
    assert alone == {k: v for k, v in split_of.items() if k in alone}


def test_plan_is_ordered_by_split_then_sample_id():
    originals, _ = sample_set(40)
    planned = T.plan_training_set(list(reversed(originals)), FRACTIONS, "s")
    keys = [(T.SPLITS.index(p.split), p.sample.sample_id) for p in planned]
    assert keys == sorted(keys)


@pytest.mark.parametrize("source, message", [("0000000000000000", "is not in the input"),
                                             ("variant", "is itself a variant")])
def test_variant_without_an_original_source_is_rejected(source, message):
    originals, _ = sample_set(6)
    first = sample(100, augmented_from=originals[0].sample_id)[0]
    second = sample(101, augmented_from=first.sample_id if source == "variant" else source)[0]
    with pytest.raises(ValueError, match=f"{second.sample_id}.*{message}"):
        T.plan_training_set(originals + [first, second], FRACTIONS, "s")


def test_duplicate_sample_ids_are_rejected():
    originals, _ = sample_set(4)
    with pytest.raises(ValueError, match=originals[2].sample_id):
        T.plan_training_set(originals + [originals[2]], FRACTIONS, "s")


def test_two_builds_are_byte_identical_whatever_the_input_order():
    samples, blobs = sample_set(60)
    first = build(samples, blobs, max_shard_rows=8, row_group_rows=4)
    shuffled = samples[:]
    random.Random(0).shuffle(shuffled)
    shuffled = [dataclasses.replace(s, boxes=tuple(reversed(s.boxes))) for s in shuffled]
    second = build(shuffled, blobs, max_shard_rows=8, row_group_rows=4, fetch_workers=3)
    assert [(f.path, f.sha256) for f in first] == [(f.path, f.sha256) for f in second]
    assert [f.data for f in first] == [f.data for f in second]
    assert [f.sha256 for f in first] == [hashlib.sha256(f.data).hexdigest() for f in first]


def test_files_stream_shards_first_then_annotations_then_manifest():
    samples, blobs = sample_set(30)
    paths = [f.path for f in build(samples, blobs, max_shard_rows=5)]
    assert paths[-2:] == [T.ANNOTATIONS_PATH, T.MANIFEST_PATH]
    shards = paths[:-2]
    assert shards and all(p.startswith("shards/") for p in shards)
    assert shards == sorted(shards, key=lambda p: (T.SPLITS.index(p[7:].split("-")[0]), p))
    assert "shards/train-00000.parquet" in shards and "shards/train-00001.parquet" in shards


def test_writer_holds_one_shard_and_yields_it_before_fetching_the_next():
    samples, blobs = sample_set(30)
    fetched: list[str] = []

    def fetch(key: str) -> bytes:
        fetched.append(key)
        return blobs[key]

    planned = T.plan_training_set(samples, FRACTIONS, "s")
    files = T.write_training_set(planned, fetch, max_shard_rows=4)
    first = next(files)
    assert first.path == "shards/train-00000.parquet"
    assert len(fetched) == 5  # the 4 rows of the first shard, and the one that closed it


def test_manifest_shards_and_annotations_agree():
    samples, blobs = sample_set(50)
    samples[0] = dataclasses.replace(samples[0], boxes=())
    files = {f.path: f for f in build(samples, blobs, max_shard_rows=7, row_group_rows=3)}
    manifest = from_parquet_bytes(files[T.MANIFEST_PATH].data)
    assert manifest.schema.equals(T.MANIFEST_SCHEMA)
    rows = manifest.to_pylist()
    assert sorted(r["sample_id"] for r in rows) == sorted(s.sample_id for s in samples)
    by_id = {s.sample_id: s for s in samples}
    for r in rows:
        shard = files[r["shard"]]
        assert r["shard_sha256"] == shard.sha256
        stored = pq.read_table(io.BytesIO(shard.data)).slice(r["shard_row"], 1).to_pylist()[0]
        s = by_id[r["sample_id"]]
        assert stored["sample_id"] == s.sample_id
        assert stored["image"] == blobs[s.object_key]
        # Readers slice images straight out of the shard file at the recorded offset.
        at, size = r["image_offset"], r["image_size"]
        assert shard.data[at:at + size] == blobs[s.object_key]
        assert [b["annotation_id"] for b in stored["boxes"]] == sorted(
            b.annotation_id for b in s.boxes)
        assert r["classes"] == sorted({b.class_name for b in s.boxes})
        assert r["n_boxes"] == len(s.boxes)
    annotations = from_parquet_bytes(files[T.ANNOTATIONS_PATH].data).to_pylist()
    assert len(annotations) == sum(len(s.boxes) for s in samples)
    split_of = {r["sample_id"]: r["split"] for r in rows}
    assert all(a["split"] == split_of[a["sample_id"]] for a in annotations)
    meta = pq.ParquetFile(io.BytesIO(files["shards/train-00000.parquet"].data)).metadata
    assert meta.num_row_groups == 3 and meta.row_group(0).num_rows == 3
    image = meta.row_group(0).column(T.SHARD_SCHEMA.names.index("image"))
    assert image.compression == "UNCOMPRESSED"


def test_shards_stay_within_the_byte_and_row_bounds():
    samples, blobs = sample_set(80, size=5000)
    limit = 40_000
    files = build(samples, blobs, max_shard_bytes=limit, max_shard_rows=6)
    shards = [f for f in files if f.path.startswith("shards/")]
    assert len(shards) >= 80 // 6
    for f in shards:
        assert len(f.data) <= limit
        assert pq.ParquetFile(io.BytesIO(f.data)).metadata.num_rows <= 6
    files = build(samples, blobs, max_shard_bytes=limit)
    shards = [f for f in files if f.path.startswith("shards/")]
    assert all(len(f.data) <= limit for f in shards)
    # Filled close to the bound, not one sample each.
    assert max(len(f.data) for f in shards) > limit * 0.7


def test_byte_bound_holds_when_the_size_estimate_is_too_low(monkeypatch):
    """An estimate that misses Parquet's overhead leaves the last rows for the next shard."""
    monkeypatch.setattr(T, "_ROW_OVERHEAD", 0)
    monkeypatch.setattr(T, "_FILE_OVERHEAD", 0)
    monkeypatch.setattr(T, "_ROW_GROUP_OVERHEAD", 0)
    samples, blobs = sample_set(40, size=5000)
    files = build(samples, blobs, max_shard_bytes=30_000)
    shards = [f for f in files if f.path.startswith("shards/")]
    assert all(len(f.data) <= 30_000 for f in shards)
    manifest = from_parquet_bytes(files[-1].data)
    assert manifest.num_rows == 40
    stored = sum(pq.ParquetFile(io.BytesIO(f.data)).metadata.num_rows for f in shards)
    assert stored == 40


def test_a_sample_larger_than_a_shard_is_rejected():
    samples, blobs = sample_set(3, size=20_000)
    with pytest.raises(ValueError, match="more than max_shard_bytes 10000"):
        build(samples, blobs, max_shard_bytes=10_000)


def test_fetched_bytes_that_do_not_match_the_sha_raise():
    samples, blobs = sample_set(10)
    victim = samples[4]
    blobs[victim.object_key] = blobs[victim.object_key][:-1] + b"\x00"
    with pytest.raises(T.ContentMismatchError,
                       match=f"sample {victim.sample_id}: {victim.object_key} .*expected "
                             f"content_sha256 {victim.content_sha256}"):
        build(samples, blobs)


def test_identical_images_of_two_samples_get_their_own_offsets():
    """Two samples with the same bytes (a duplicate that survived curation) each point at their
    own copy in the shard."""
    samples, blobs = sample_set(6)
    twin = dataclasses.replace(samples[1], sample_id="f" * 16, group_key=samples[1].group_key,
                               boxes=())
    files = build(samples + [twin], blobs)
    manifest = from_parquet_bytes(files[-1].data).to_pylist()
    by_id = {r["sample_id"]: r for r in manifest}
    a, b = by_id[samples[1].sample_id], by_id[twin.sample_id]
    assert a["shard"] == b["shard"] and a["image_offset"] != b["image_offset"]
    shard = next(f for f in files if f.path == a["shard"])
    for r in (a, b):
        assert shard.data[r["image_offset"]:r["image_offset"] + r["image_size"]] == \
            blobs[samples[1].object_key]


def test_empty_input_is_rejected():
    with pytest.raises(ValueError, match="at least one sample"):
        list(T.write_training_set([], lambda key: b""))


def test_the_files_change_when_any_byte_changes():
    samples, blobs = sample_set(30)
    base = digest_of(build(samples, blobs))
    assert base == digest_of(build(samples, blobs))

    edited = dict(blobs)
    s = samples[7]
    edited[s.object_key] = blobs[s.object_key][:-1] + bytes([blobs[s.object_key][-1] ^ 1])
    new_sha = hashlib.sha256(edited[s.object_key]).hexdigest()
    pixels = [dataclasses.replace(x, content_sha256=new_sha) if x is s else x for x in samples]
    box = dataclasses.replace(s.boxes[0], x_max=s.boxes[0].x_max + 0.5)
    label = [dataclasses.replace(x, boxes=(box, *s.boxes[1:])) if x is s else x for x in samples]
    revision = [dataclasses.replace(x, label_revision="beef") if x is s else x for x in samples]
    digests = {base, digest_of(build(pixels, edited)), digest_of(build(label, blobs)),
               digest_of(build(revision, blobs))}
    assert len(digests) == 4


@pytest.mark.parametrize("name", ["street-detect", "a", "v2", "cars-2026-q1"])
def test_tags_round_trip(name):
    version = "v20261122-0123456789"
    tag = T.tag_name(name, version)
    assert tag == f"trainset-{name}-{version}"
    assert T.parse_tag(tag) == (name, version)
    assert T.trainset_root(name, version) == f"trainsets/{name}/{version}"


@pytest.mark.parametrize("tag", ["main", "trainset-x", "trainset-street-v2026-0123456789",
                                 "trainset-Street-v20261122-0123456789",
                                 "trainset--v20261122-0123456789",
                                 "trainset-x-v20261122-0123456789-extra", "c0ffee" * 5])
def test_other_refs_are_not_training_set_tags(tag):
    assert T.parse_tag(tag) is None


@pytest.mark.parametrize("name", ["", "Street", "street_detect", "-street", "street-",
                                  "street--detect", "street/detect", "x" * 65])
def test_bad_names_are_rejected(name):
    with pytest.raises(ValueError, match="lowercase letters, digits"):
        T.tag_name(name, "v20261122-0123456789")
    with pytest.raises(ValueError, match="lowercase letters, digits"):
        T.trainset_root(name, "v20261122-0123456789")


def test_bad_versions_are_rejected():
    with pytest.raises(ValueError, match="v<YYYYMMDD>-<10 hex>"):
        T.tag_name("street", "v1")


def test_variants_are_recipes_in_the_manifest_never_fetched_nor_in_a_shard():
    originals, blobs = sample_set(30)
    variants = [sample(500 + i, group=s.group_key, augmented_from=s.sample_id)[0]
                for i, s in enumerate(originals)]
    fetched: list[str] = []

    def fetch(key: str) -> bytes:
        fetched.append(key)
        return blobs[key]

    planned = T.plan_training_set(originals + variants, FRACTIONS, "s")
    files = {f.path: f for f in T.write_training_set(planned, fetch, max_shard_rows=7)}
    assert sorted(fetched) == sorted(s.object_key for s in originals)
    manifest = pq.read_table(io.BytesIO(files[T.MANIFEST_PATH].data)).to_pylist()
    assert [(r["split"], r["sample_id"]) for r in manifest] == sorted(
        ((r["split"], r["sample_id"]) for r in manifest),
        key=lambda k: (T.SPLITS.index(k[0]), k[1]))
    kept = [r for r in manifest if r["augmented_from"]]
    assert kept and all(r["shard"] is None and r["image_offset"] is None
                        and r["aug_params"] for r in kept)
    in_shards = {r["sample_id"] for f in files.values() if f.path.startswith("shards/")
                 for r in pq.read_table(io.BytesIO(f.data), columns=["sample_id"]).to_pylist()}
    assert in_shards == {r["sample_id"] for r in manifest if not r["augmented_from"]}
    boxes = pq.read_table(io.BytesIO(files[T.ANNOTATIONS_PATH].data)).to_pylist()
    assert {b["sample_id"] for b in boxes} >= {r["sample_id"] for r in kept}
    order = {r["sample_id"]: i for i, r in enumerate(manifest)}
    assert [order[b["sample_id"]] for b in boxes] == sorted(order[b["sample_id"]] for b in boxes)

    broken = T.plan_training_set(originals + [dataclasses.replace(variants[0], aug_params=None)],
                                 FRACTIONS, "s")
    if any(p.sample.augmented_from for p in broken):
        with pytest.raises(ValueError, match="no aug_params"):
            list(T.write_training_set(broken, blobs.__getitem__))


def test_prior_splits_stick_and_only_new_groups_are_balanced():
    groups, classes = generated_split_input(300)
    first = T.assign_splits(groups, classes, FRACTIONS, "s")
    more_groups, more_classes = generated_split_input(360, seed=7)
    more_groups = [f"new-{g}" for g in more_groups]
    prior = first + [None] * len(more_groups)
    again = T.assign_splits(groups + more_groups, classes + more_classes, FRACTIONS, "s", prior)
    assert again[:len(first)] == first
    # The new groups fill the splits back towards their targets around the fixed ones.
    sizes = Counter(again)
    for split, target in FRACTIONS.items():
        assert abs(sizes[split] / len(again) - target) < 0.03
    # Another seed moves nothing that was placed before.
    other = T.assign_splits(groups + more_groups, classes + more_classes, FRACTIONS, "x", prior)
    assert other[:len(first)] == first


def test_a_new_near_duplicate_joining_two_splits_sends_the_group_to_test_not_train():
    groups = ["g", "g", "g", "h"]
    classes = [["car"]] * 4
    prior = ["train", "test", None, "val"]
    assert T.assign_splits(groups, classes, FRACTIONS, "s", prior) == ["test"] * 3 + ["val"]
    prior = ["train", "val", None, None]
    assert T.assign_splits(groups, classes, FRACTIONS, "s", prior)[:3] == ["val"] * 3
    with pytest.raises(ValueError, match="prior must be per sample"):
        T.assign_splits(groups, classes, FRACTIONS, "s", ["train"])
    with pytest.raises(ValueError, match="unknown split"):
        T.assign_splits(groups, classes, FRACTIONS, "s", ["validation", None, None, None])


def _two_days(n: int = 48) -> tuple[list[T.SampleIn], dict[str, bytes]]:
    samples, blobs = sample_set(n)
    samples = [dataclasses.replace(s, date="2026-11-22" if i < n // 2 else "2026-11-23",
                                   source="rig") for i, s in enumerate(samples)]
    return samples, blobs


def _shared_build(samples, blobs, store: dict[str, bytes], previous=None, fetched=None, **kw):
    """A build with shared shards on ``store``, sticky to the ``previous`` build's files."""
    prior, earlier = {}, []
    if previous is not None:
        rows = from_parquet_bytes(previous[-1].data).to_pylist()
        prior = {r["sample_id"]: r["split"] for r in rows}
        earlier = [r["shard"] for r in rows]
    planned = T.plan_training_set(samples, FRACTIONS, "s", prior)

    def fetch(key: str) -> bytes:
        if fetched is not None:
            fetched.append(key)
        return blobs[key]

    files = list(T.write_training_set(planned, fetch, shard_dir="trainsets/n/shards",
                                      existing=store.get, exists=store.__contains__,
                                      earlier_shards=earlier, **kw))
    store.update({f.path: f.data for f in files if f.shared})
    return files


def test_shared_shards_are_per_split_and_day_and_a_new_day_writes_only_its_own():
    samples, blobs = _two_days()
    day1 = [s for s in samples if s.date == "2026-11-22"]
    store: dict[str, bytes] = {}
    first = _shared_build(day1, blobs, store, max_shard_rows=5)
    manifest1 = from_parquet_bytes(first[-1].data).to_pylist()
    for r in manifest1:
        assert r["shard"].startswith(
            f"trainsets/n/shards/{r['split']}/date=2026-11-22/source=rig/")
        data = store[r["shard"]]
        assert hashlib.sha256(data).hexdigest() == r["shard_sha256"]
        assert data[r["image_offset"]:r["image_offset"] + r["image_size"]] == blobs[r["object_key"]]
    fetched: list[str] = []
    second = _shared_build(samples, blobs, store, first, fetched, max_shard_rows=5)
    written = [f.path for f in second if f.shared]
    assert written and all("/date=2026-11-23/" in p for p in written)
    assert sorted(fetched) == sorted(s.object_key for s in samples if s.date == "2026-11-23")
    manifest2 = {r["sample_id"]: r for r in from_parquet_bytes(second[-1].data).to_pylist()}
    for r in manifest1:  # yesterday's samples: same split, same shard, same place in it
        assert {k: manifest2[r["sample_id"]][k] for k in r} == r
    # A fresh build of the same plan writes the same bytes as the reusing one points at.
    again: dict[str, bytes] = {}
    _shared_build(samples, blobs, again, first, max_shard_rows=5)
    assert again == store


def test_late_frames_of_a_day_add_one_small_pack_and_a_relabeled_sample_moves_into_it():
    samples, blobs = _two_days(40)
    day = [s for s in samples if s.date == "2026-11-22"]
    late, relabeled = day[-2:], day[0]
    store: dict[str, bytes] = {}
    first = _shared_build(day[:-2], blobs, store)
    box = dataclasses.replace(relabeled.boxes[0], class_name="bus", class_id=4)
    day[0] = dataclasses.replace(relabeled, boxes=(box,) + relabeled.boxes[1:])
    fetched: list[str] = []
    second = _shared_build(day, blobs, store, first, fetched)
    assert sorted(fetched) == sorted(s.object_key for s in late + [relabeled])
    before = {r["sample_id"]: r for r in from_parquet_bytes(first[-1].data).to_pylist()}
    after = {r["sample_id"]: r for r in from_parquet_bytes(second[-1].data).to_pylist()}
    moved = {sid for sid in before if after[sid]["shard"] != before[sid]["shard"]}
    assert moved == {relabeled.sample_id}
    # The relabeled sample's new shard row carries its new boxes.
    r = after[relabeled.sample_id]
    row = pq.read_table(io.BytesIO(store[r["shard"]])).to_pylist()[r["shard_row"]]
    assert row["sample_id"] == relabeled.sample_id and row["boxes"][0]["class_name"] == "bus"
    # Nothing was lost: every sample's bytes are where its row says.
    for r in after.values():
        data = store[r["shard"]]
        assert hashlib.sha256(data).hexdigest() == r["shard_sha256"]
        assert data[r["image_offset"]:r["image_offset"] + r["image_size"]] == blobs[r["object_key"]]


def test_a_group_whose_index_names_a_missing_shard_is_written_again():
    samples, blobs = _two_days(20)
    store: dict[str, bytes] = {}
    _shared_build(samples, blobs, store, max_shard_rows=4)
    lost = next(k for k in store if not k.endswith(".index.parquet"))
    data = store.pop(lost)
    fetched: list[str] = []
    files = _shared_build(samples, blobs, store, fetched=fetched, max_shard_rows=4)
    assert store[lost] == data and lost in {f.path for f in files}
    assert fetched  # only the damaged group was fetched again
    assert len(fetched) < len(samples)
