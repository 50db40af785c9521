"""TrainingSetDataset against a real lakeFS: a training set written by ``trainset``, committed and
tagged, read back through multi-worker DataLoaders (fork and spawn) by tag, by commit id and by
branch; bad refs name what exists; the shard cache survives corruption and refuses bad shards."""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dataops_cv.lib.augmentation.params import AugParams
from dataops_cv.lib.core.images import to_rgb
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.lakefs.store import LakeFSStore
from dataops_cv.lib.synthetic.config import CLASSES, DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day
from dataops_cv.lib.training_sets import dataset as D
from dataops_cv.lib.training_sets import writer as T
from dataops_cv.lib.training_sets.dataset import (
    ShardDigestError,
    TrainingSetDataset,
    TrainingSetError,
    collate_detection,
)

DATE = "2026-11-22"
NAME = "street-detect"
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
# 2 sessions x 3 cameras x 7 frames = 42 originals in 6 leakage groups (one camera in one session:
# its consecutive frames look alike), plus flipped variants of 12 of them.
CONFIG = SceneConfig(seed=11, sessions_per_day=2, frames_per_session=7, width=128, height=96,
                     defects=DefectConfig.none())
N_VARIANTS = 12


@dataclass(frozen=True)
class Published:
    tag: str
    commit: str
    version: str
    manifest: list[dict]
    images: dict[str, bytes]  # sample_id -> original encoded bytes
    boxes: dict[str, tuple[T.Box, ...]]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _samples() -> tuple[tuple[T.SampleIn, ...], dict[str, bytes]]:
    """Originals from the generator plus horizontally flipped variants of some of them."""
    samples: list[T.SampleIn] = []
    blobs: dict[str, bytes] = {}

    def add(data: bytes, boxes: list[tuple[str, float, float, float, float]], frame,
            source: str | None) -> T.SampleIn:
        sha = hashlib.sha256(data).hexdigest()
        sid = sha[:16]
        s = T.SampleIn(
            sample_id=sid, content_sha256=sha, object_key=f"samples/{sha}.png", date=DATE,
            rel_path=frame.path, session_id=frame.session_id, camera=frame.device_id,
            width=frame.width, height=frame.height,
            group_key=f"{frame.session_id}/{frame.device_id}",
            boxes=tuple(T.Box(f"{sid}-{k}", label, CLASSES.index(label), x1, y1, x2, y2)
                        for k, (label, x1, y1, x2, y2) in enumerate(boxes)),
            label_source="labeled", label_revision="0" * 64, augmented_from=source,
            aug_policy_version="hflip-1" if source else None,
            aug_input_key=f"{source}:hflip" if source else None,
            aug_params=AugParams(frame.width, frame.height, hflip=True).to_json()
            if source else None)
        samples.append(s)
        blobs[s.object_key] = data
        return s

    for i, frame in enumerate(generate_day(CONFIG, DATE)):
        original = add(frame.data, list(frame.boxes), frame, None)
        if i % 3 == 0 and i // 3 < N_VARIANTS:
            flipped = Image.open(io.BytesIO(frame.data)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            w = frame.width
            add(_png(flipped), [(c, w - x2, y1, w - x1, y2) for c, x1, y1, x2, y2 in frame.boxes],
                frame, original.sample_id)
    return tuple(samples), blobs


def publish(store: LakeFSStore, seed: str = "s1", upload_images: bool = True) -> Published:
    """Upload the images, write the training set on main, commit and tag it."""
    samples, blobs = _samples()
    if upload_images:
        for key, data in blobs.items():
            store.put_object("main", key, data, content_type="image/png")
    planned = T.plan_training_set(samples, FRACTIONS, seed)
    files = list(T.write_training_set(
        planned, lambda key: store.get_object("main", key), max_shard_rows=8, row_group_rows=4,
        fetch_workers=4))
    manifest = next(f for f in files if f.path == T.MANIFEST_PATH)
    version = f"v{DATE.replace('-', '')}-{manifest.sha256[:10]}"
    root = T.trainset_root(NAME, version)
    for f in files:
        store.put_object("main", f"{root}/{f.path}", f.data)
    commit = store.commit("main", f"training set {NAME} {version}").id
    tag = T.tag_name(NAME, version)
    store.create_tag(tag, commit)
    return Published(tag, commit, version, from_parquet_bytes(manifest.data).to_pylist(),
                     {s.sample_id: blobs[s.object_key] for s in samples},
                     {s.sample_id: s.boxes for s in samples})


def read_all(loader) -> list[tuple[torch.Tensor, dict]]:
    out = []
    for images, targets in loader:
        assert isinstance(images, list) and isinstance(targets, list)
        out.extend(zip(images, targets))
    return out


def assert_matches(items: list[tuple[torch.Tensor, dict]], rows: list[dict], pub: Published):
    """The loader gave exactly these manifest rows, in order, with the original pixels and boxes."""
    assert [t["sample_id"] for _, t in items] == [r["sample_id"] for r in rows]
    for (image, target), row in zip(items, rows):
        sid = row["sample_id"]
        expected = np.asarray(to_rgb(Image.open(io.BytesIO(pub.images[sid]))))
        assert image.dtype == torch.uint8 and image.shape == (3, row["height"], row["width"])
        assert np.array_equal(image.permute(1, 2, 0).numpy(), expected), sid
        boxes = sorted(pub.boxes[sid], key=lambda b: b.annotation_id)
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (len(boxes), 4)
        assert target["boxes"].tolist() == [[b.x_min, b.y_min, b.x_max, b.y_max] for b in boxes]
        assert target["labels"].dtype == torch.int64
        assert target["labels"].tolist() == [b.class_id for b in boxes]
        assert target["class_names"] == [b.class_name for b in boxes]
        assert target["content_sha256"] == row["content_sha256"]


def loader(ds: TrainingSetDataset, workers: int = 2, **kw) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers,
                                       collate_fn=collate_detection, **kw)


def test_loader_over_a_tag_yields_exactly_the_manifest_samples(store, tmp_path: Path):
    pub = publish(store)
    splits_seen = set()
    for split in T.SPLITS:
        rows = [r for r in pub.manifest if r["split"] == split]
        assert rows, f"the set has no {split} samples"
        # lakeFS settings come from the environment (the fixture exports them).
        ds = TrainingSetDataset(pub.tag, split=split, cache_dir=tmp_path)
        assert ds.commit_id == pub.commit and (ds.name, ds.version) == (NAME, pub.version)
        assert len(ds) == len(rows) == ds.manifest.num_rows
        assert f"split='{split}'" in repr(ds) and NAME in repr(ds)
        items = read_all(loader(ds))
        assert_matches(items, rows, pub)
        splits_seen.add(split)
        variants = [r for r in rows if r["augmented_from"]]
        assert bool(variants) == (split == "train")
    whole = TrainingSetDataset(pub.tag, cache_dir=tmp_path)
    assert len(whole) == len(pub.manifest)
    assert_matches([whole[i] for i in range(0, len(whole), 7)], pub.manifest[::7], pub)


def test_loader_by_commit_id_and_name_under_spawn_reads_the_resolved_commit(
        store, tmp_path: Path):
    pub = publish(store)
    config = store.config
    by_commit = TrainingSetDataset(pub.commit, name=NAME, split="val", lakefs=config,
                                   cache_dir=tmp_path)
    by_branch = TrainingSetDataset("main", name=NAME, version=pub.version, split="val",
                                   lakefs=config, cache_dir=tmp_path / "other")
    assert by_commit.commit_id == by_branch.commit_id == pub.commit
    # main moves on and loses the set: the datasets keep reading the commit they resolved.
    store.put_object("main", f"{T.trainset_root(NAME, pub.version)}/shards/val-00000.parquet",
                     b"overwritten")
    store.commit("main", "break the set on main")
    rows = [r for r in pub.manifest if r["split"] == "val"]
    # One spawned worker proves the pickling path; each costs a fresh interpreter importing torch.
    assert_matches(read_all(loader(by_commit, workers=1, multiprocessing_context="spawn")),
                   rows, pub)
    assert_matches(read_all(loader(by_branch)), rows, pub)


def test_bad_refs_and_names_list_what_exists(store, tmp_path: Path):
    pub = publish(store)
    bad_tag = T.tag_name(NAME, "v20000101-0000000000")
    with pytest.raises(TrainingSetError, match=f"tag '{bad_tag}' not found.*{pub.tag}"):
        TrainingSetDataset(bad_tag, cache_dir=tmp_path)
    with pytest.raises(TrainingSetError, match=f"name= is required.*{NAME}: {pub.version}"):
        TrainingSetDataset(pub.commit, cache_dir=tmp_path)
    with pytest.raises(TrainingSetError, match=f"'other-set' has 0 versions.*{NAME}: "):
        TrainingSetDataset(pub.commit, name="other-set", cache_dir=tmp_path)
    with pytest.raises(TrainingSetError, match=f"neither a training-set tag.*{pub.tag}"):
        TrainingSetDataset("no-such-branch", name=NAME, cache_dir=tmp_path)
    with pytest.raises(TrainingSetError, match=f"is training set version '{pub.version}'"):
        TrainingSetDataset(pub.tag, version="v20000101-0000000000", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="lowercase letters"):
        TrainingSetDataset("main", name="Street_Detect", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        TrainingSetDataset(pub.tag, split="validation", cache_dir=tmp_path)
    second = publish(store, seed="s2", upload_images=False)
    assert second.version != pub.version
    with pytest.raises(TrainingSetError, match=f"has 2 versions.*{NAME}: "
                                               f"{min(pub.version, second.version)}, "):
        TrainingSetDataset("main", name=NAME, cache_dir=tmp_path)
    ds = TrainingSetDataset("main", name=NAME, version=second.version, cache_dir=tmp_path)
    assert [r["sample_id"] for r in ds.manifest.to_pylist()] == [
        r["sample_id"] for r in second.manifest]


@pytest.mark.parametrize("damage", ["footer", "truncate", "bitrot"])
def test_a_corrupted_cached_shard_is_fetched_again(store, tmp_path: Path, damage: str):
    pub = publish(store)
    first = TrainingSetDataset(pub.tag, split="train", cache_dir=tmp_path)
    first[0]
    row = first.manifest.slice(0, 1).to_pylist()[0]
    cached = first.shard_cache_path(row["shard"])
    good = cached.read_bytes()
    assert hashlib.sha256(good).hexdigest() == row["shard_sha256"]
    # Cached by digest, so versions sharing a shard share one copy.
    assert cached == tmp_path / store.repository / "sha256" / row["shard_sha256"][:2] / (
        row["shard_sha256"] + ".parquet")
    if damage == "footer":
        cached.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    elif damage == "truncate":
        cached.write_bytes(good[: len(good) // 2])
    else:
        # Rot inside the first image that leaves the file's size and stat stamp as they were:
        # only the per-image check can see it.
        at = row["image_offset"] + row["image_size"] // 2
        cached.write_bytes(good[:at] + bytes([good[at] ^ 0x01]) + good[at + 1:])
        D._write_stamp(cached, row["shard_sha256"])
    again = TrainingSetDataset(pub.tag, split="train", cache_dir=tmp_path)
    rows = [r for r in pub.manifest if r["split"] == "train"]
    assert_matches([again[i] for i in range(len(again))], rows, pub)
    assert cached.read_bytes() == good
    assert not list(cached.parent.glob("*.part"))


def test_a_shard_lakefs_serves_with_other_bytes_raises_and_is_not_cached(store, tmp_path: Path):
    pub = publish(store)
    shard = next(r for r in pub.manifest if r["split"] == "test")
    key = f"{T.trainset_root(NAME, pub.version)}/{shard['shard']}"
    tampered = store.get_object("main", key)
    tampered = tampered[:100] + bytes([tampered[100] ^ 1]) + tampered[101:]
    store.put_object("main", key, tampered)
    store.commit("main", "tamper with a shard")
    ds = TrainingSetDataset("main", name=NAME, split="test", cache_dir=tmp_path)
    with pytest.raises(ShardDigestError,
                       match=f"{key} at lakeFS commit {ds.commit_id}.*has sha256 "
                             f"{hashlib.sha256(tampered).hexdigest()}.*records "
                             f"{shard['shard_sha256']}"):
        ds[0]
    cached = ds.shard_cache_path(shard["shard"])
    assert not cached.exists() and not list(cached.parent.glob("*.part"))


def test_a_collated_batch_crosses_a_process_boundary_unchanged():
    """What a worker sends arrives with the same values, dtypes and shapes; tensor subclasses
    (torchvision tv_tensors with their metadata) and other values pass through as they were."""
    from multiprocessing.reduction import ForkingPickler

    from torchvision import tv_tensors

    image = torch.arange(5 * 7 * 3, dtype=torch.uint8).reshape(5, 7, 3).permute(2, 0, 1)
    boxes = tv_tensors.BoundingBoxes([[1, 2, 3, 4]], format="XYXY", canvas_size=(5, 7))
    batch = [
        (image, {"boxes": torch.tensor([[1.5, 2, 3, 4]]), "labels": torch.tensor([2]),
                 "class_names": ["car"], "sample_id": "a"}),
        (image[:, 1:, ::2], {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                             "class_names": [], "sample_id": "b", "tv": boxes}),
    ]
    images, targets = collate_detection(batch)
    got_images, got_targets = ForkingPickler.loads(bytes(ForkingPickler.dumps((images, targets))))
    assert isinstance(got_images, D.DetectionBatch) and isinstance(got_images, list)
    assert all(torch.equal(sent, got) for sent, got in zip(images, got_images))
    # A permuted dense image keeps its layout (no transposing copy); a strided slice is packed.
    assert got_images[0].stride() == image.stride() == (1, 21, 3)
    for sent, got in zip(targets, got_targets):
        assert sent.keys() == got.keys()
        for key, value in sent.items():
            if isinstance(value, torch.Tensor):
                assert type(got[key]) is type(value) and torch.equal(got[key], value)
                assert got[key].dtype == value.dtype and got[key].shape == value.shape
            else:
                assert got[key] == value
    assert got_targets[1]["tv"].format == boxes.format
    assert got_targets[1]["tv"].canvas_size == (5, 7)
