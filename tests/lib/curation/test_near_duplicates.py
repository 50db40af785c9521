"""Curation near-duplicate search: planted near duplicates found, video frames kept, search as
good as brute force, linear on blank days, deterministic clusters, inputs checked."""

import io

import numpy as np
import pytest
from PIL import Image

from dataops_cv.lib.curation import near_duplicates
from dataops_cv.lib.curation.features import EMBEDDING_DIM, image_features
from dataops_cv.lib.curation.near_duplicates import NearDupConfig, clusters, near_duplicate_pairs
from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
from dataops_cv.lib.synthetic.frames import generate_day

VARIANTS = ("reencode", "resize", "crop", "crop_left_top")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _variant(data: bytes, variant: str) -> bytes:
    with Image.open(io.BytesIO(data)) as src:
        fmt = src.format
        img = src.convert("RGB")
    w, h = img.size
    dx, dy = round(0.03 * w), round(0.03 * h)
    keep = {"quality": 90} if fmt == "JPEG" else {}
    if variant == "reencode":
        return _encode(img, "JPEG", quality=70)
    if variant == "resize":
        return _encode(img.resize((round(w * 0.75), round(h * 0.75)), Image.BILINEAR), fmt, **keep)
    if variant == "crop":  # 3 % of every side
        return _encode(img.crop((dx, dy, w - dx, h - dy)), fmt, **keep)
    return _encode(img.crop((dx, dy, w, h)), fmt, **keep)  # as dataops_cv.lib.synthetic.defects plants them


def _motion(a, b) -> float:
    """Largest move of any box edge between two frames of a camera (inf if objects differ)."""
    ba, bb = {o.track_id: o.box for o in a.objects}, {o.track_id: o.box for o in b.objects}
    if set(ba) != set(bb):
        return float("inf")
    return max((max(abs(p - q) for p, q in zip(ba[t], bb[t])) for t in ba), default=0.0)


@pytest.fixture(scope="module")
def planted_days():
    """Four days (PNG and JPEG), 12 frames per camera and session, a planted near duplicate
    (each variant in turn) after every third frame."""
    datas, frames, planted = [], [], {}
    for seed in range(4):
        config = SceneConfig(seed=seed, sessions_per_day=2, frames_per_session=12,
                             defects=DefectConfig.none(),
                             image_format="png" if seed % 2 == 0 else "jpeg")
        for k, frame in enumerate(generate_day(config, f"2024-06-0{seed + 1}")):
            datas.append(frame.data)
            frames.append(frame)
            if k % 3 == 0:
                variant = VARIANTS[(k // 3) % len(VARIANTS)]
                planted[(len(datas) - 1, len(datas))] = variant
                datas.append(_variant(frame.data, variant))
                frames.append(frame)
    phash, emb = image_features(datas)
    return datas, frames, planted, phash, emb, near_duplicate_pairs(phash, emb)


def test_planted_near_duplicates_are_found_among_video_frames(planted_days):
    _, frames, planted, _, _, pairs = planted_days
    found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
    recall = len(found & set(planted)) / len(planted)
    # Frames where nothing moved more than a pixel differ only by sensor noise: no thumbnail
    # can tell them from a re-encode, so they count as near duplicates (module docstring).
    static = {(a, b) for a, b in found
              if frames[a].session_id == frames[b].session_id
              and frames[a].device_id == frames[b].device_id
              and _motion(frames[a], frames[b]) <= 1}
    precision = len(found & (set(planted) | static)) / len(found)
    strict = len(found & set(planted)) / len(found)
    by_variant = {v: np.mean([p in found for p, k in planted.items() if k == v]) for v in VARIANTS}
    print(f"\nplanted {len(planted)} found {len(found)} recall {recall:.3f} precision "
          f"{precision:.3f} (planted only: {strict:.3f}) per variant {by_variant}")
    assert recall >= 0.95 and precision >= 0.95
    assert min(by_variant.values()) >= 0.9
    assert pairs.cropped[[(a, b) in planted and planted[(a, b)].startswith("crop")
                          for a, b in zip(pairs.i, pairs.j)]].all()


def test_consecutive_frames_with_motion_are_not_near_duplicates(planted_days):
    _, frames, planted, _, _, pairs = planted_days
    found = set(zip(pairs.i.tolist(), pairs.j.tolist()))
    originals = [k for k in range(len(frames)) if (k - 1, k) not in planted]
    moving, flagged = 0, 0
    for a, b in zip(originals, originals[1:]):
        fa, fb = frames[a], frames[b]
        if (fa.session_id, fa.device_id) != (fb.session_id, fb.device_id):
            continue
        if _motion(fa, fb) > 2:
            moving += 1
            flagged += (a, b) in found
    print(f"\nconsecutive frames with objects moving > 2 px: {flagged} of {moving} flagged")
    assert moving > 100 and flagged / moving <= 0.01


def test_evidence_is_consistent_and_sorted(planted_days):
    _, _, _, phash, emb, pairs = planted_days
    assert np.all(pairs.i < pairs.j)
    order = np.lexsort((pairs.j, pairs.i))
    assert np.array_equal(order, np.arange(len(pairs)))
    expected_cos = np.einsum("ij,ij->i", emb[pairs.i], emb[pairs.j], dtype=np.float64)
    assert np.allclose(pairs.cosine, expected_cos, atol=1e-6)
    assert np.array_equal(pairs.hamming, np.bitwise_count(phash[pairs.i] ^ phash[pairs.j]))
    same = ~pairs.cropped
    config = NearDupConfig()
    assert np.all(pairs.cosine[same] >= config.embedding_min_cosine)
    assert np.all(pairs.hamming[same] <= config.phash_max_hamming)
    assert np.all(pairs.aligned_cosine[pairs.cropped] >= config.aligned_min_cosine)


def _brute_force(monkeypatch, phash, emb, config):
    """The same rule checked on every pair: the candidate search swapped for all pairs."""
    n = len(phash)
    i, j = np.triu_indices(n, 1)
    monkeypatch.setattr(near_duplicates, "_band_candidates",
                        lambda *args: i.astype(np.int64) * n + j)
    monkeypatch.setattr(near_duplicates, "_view_candidates", lambda *args: np.zeros(0, np.int64))
    try:
        return near_duplicate_pairs(phash, emb, config)
    finally:
        monkeypatch.undo()


def _pair_set(pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.i.tolist(), pairs.j.tolist()))


def test_search_finds_exactly_what_brute_force_finds_on_random_vectors(monkeypatch):
    rng = np.random.default_rng(7)
    n, near = 1200, 150
    emb = rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32)
    phash = rng.integers(0, 2 ** 63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, size=n).astype(np.uint64)
    src, dst = rng.choice(n, size=(2, near), replace=False)
    # Copies at a spread of distances, so that some fall just outside each threshold.
    noise = rng.standard_normal((near, EMBEDDING_DIM)).astype(np.float32)
    emb[dst] = emb[src] + rng.normal(0, 1, (near, 1)).astype(np.float32) * 0.02 * noise
    for k, (a, b) in enumerate(zip(src, dst)):
        flips = rng.choice(64, size=k % 8, replace=False)
        phash[b] = phash[a] ^ np.uint64(sum(1 << int(f) for f in flips))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    config = NearDupConfig()
    truth = _brute_force(monkeypatch, phash, emb, config)
    monkeypatch.setattr(near_duplicates, "_EXACT_ROWS", 0)  # hash, as for a large batch
    pairs = near_duplicate_pairs(phash, emb, config)
    same = _pair_set(truth) - {(a, b) for a, b, c in zip(truth.i, truth.j, truth.cropped) if c}
    assert 25 < len(same) < near
    assert _pair_set(pairs) == _pair_set(truth)


def _smooth_frames(rng, count: int, size=(160, 120)) -> list[Image.Image]:
    """Blobby grey images: enough structure to register, nothing like one another."""
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    out = []
    for _ in range(count):
        img = np.full(xx.shape, 128.0)
        for _ in range(12):
            cx, cy, r = rng.uniform(0, size[0]), rng.uniform(0, size[1]), rng.uniform(6, 30)
            img += rng.uniform(-70, 70) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r ** 2)
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L"))
    return out


def test_search_finds_the_crops_brute_force_finds(monkeypatch):
    rng = np.random.default_rng(3)
    frames = _smooth_frames(rng, 400)
    datas = [_encode(f, "PNG") for f in frames]
    for k in range(0, 400, 4):  # 100 crops of 2-5 % on each side
        w, h = frames[k].size
        box = [round(rng.uniform(0.02, 0.05) * s) for s in (w, h, w, h)]
        datas.append(_encode(frames[k].crop((box[0], box[1], w - box[2], h - box[3])), "PNG"))
    phash, emb = image_features(datas)
    truth = _brute_force(monkeypatch, phash, emb, NearDupConfig())
    crops = {(k, 400 + k // 4) for k in range(0, 400, 4)}
    assert len(crops & _pair_set(truth)) >= 95
    monkeypatch.setattr(near_duplicates, "_EXACT_ROWS", 0)  # hash, as for a large batch
    assert _pair_set(near_duplicate_pairs(phash, emb)) == _pair_set(truth)


def test_a_day_of_blank_frames_stays_linear_and_one_cluster():
    n = 2500
    blank = _encode(Image.new("RGB", (64, 48), (3, 3, 3)), "PNG")
    phash, emb = image_features([blank])
    config = NearDupConfig()
    pairs = near_duplicate_pairs(np.repeat(phash, n), np.repeat(emb, n, axis=0), config)
    assert len(pairs) <= n * config.max_bucket
    assert np.all(clusters(n, pairs.i, pairs.j) == 0)


def test_clusters_are_components_labelled_by_their_smallest_member():
    i = np.array([5, 2, 7, 9, 3])
    j = np.array([2, 8, 6, 9, 2])
    labels = clusters(10, i, j)
    assert labels.tolist() == [0, 1, 2, 2, 4, 2, 6, 6, 2, 9]
    order = np.random.default_rng(0).permutation(len(i))
    assert np.array_equal(clusters(10, j[order], i[order]), labels)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        clusters(10, np.array([1]), np.array([10]))


def test_inputs_of_the_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match="uint64"):
        near_duplicate_pairs(np.zeros(3, np.int64), np.zeros((3, EMBEDDING_DIM), np.float32))
    with pytest.raises(ValueError, match="float32"):
        near_duplicate_pairs(np.zeros(3, np.uint64), np.zeros((3, 7), np.float32))
    assert len(near_duplicate_pairs(np.zeros(0, np.uint64),
                                    np.zeros((0, EMBEDDING_DIM), np.float32))) == 0


def test_groups_leave_out_exactly_the_pairs_within_a_group(planted_days):
    *_, phash, emb, everything = planted_days
    # Groups of four frames in a row: some planted pairs fall inside one, some across two.
    labels = near_duplicates.group_labels([f"g{k // 4}" if k % 5 else None
                                           for k in range(len(phash))])
    across = near_duplicate_pairs(phash, emb, groups=labels)
    keep = labels[everything.i] != labels[everything.j]
    assert 0 < keep.sum() < len(keep)
    for field in ("i", "j", "hamming", "cosine", "aligned_cosine", "cropped"):
        assert np.array_equal(getattr(across, field), getattr(everything, field)[keep]), field
    with pytest.raises(ValueError, match="groups must be of shape"):
        near_duplicate_pairs(phash, emb, groups=labels[:-1])


def test_group_labels_give_frames_without_a_key_a_label_of_their_own():
    labels = near_duplicates.group_labels(["a", None, "b", "a", None])
    assert labels[0] == labels[3] and len({int(x) for x in labels}) == 4


def test_registration_in_threads_gives_the_pairs_of_one_thread(planted_days, monkeypatch):
    *_, phash, emb, _ = planted_days
    from dataops_cv.lib.curation import registration

    monkeypatch.setattr(registration, "_CHUNK", 16)  # many chunks, finished out of order
    one = near_duplicate_pairs(phash, emb, workers=1)
    four = near_duplicate_pairs(phash, emb, workers=4)
    assert len(one.i) and all(np.array_equal(getattr(one, f), getattr(four, f))
                              for f in ("i", "j", "hamming", "cosine", "aligned_cosine",
                                        "cropped"))
