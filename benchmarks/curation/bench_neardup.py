"""Cost and accuracy of near-duplicate search (``dataops_cv.lib.curation.near_duplicates``)
against floors.

    python benchmarks/curation/bench_neardup.py [--n 100000] [--planted 3000] [--subset 5000]
    python benchmarks/curation/bench_neardup.py --distributions [--seeds 12]

Default mode. ``--n`` samples' phashes and embeddings, generated in the embedding's own space:
each is a random luma thumbnail whose DCT coefficients are Gaussian with the RMS that rendered
synthetic frames have (so it is as smooth as a real one), its phash computed from it the way
``image_features`` does (32x32, DCT, median). ``--planted`` extra samples are near duplicates
of random others, a quarter each of: re-encode (noise on every pixel of the thumbnail), resize
(the top quarter of frequencies halved, then noise), a 3 % crop of every side and a 3 % crop
of the left and top (the window resampled from the source thumbnail, cubic, then noise).
Their hamming and cosine spread is printed, to check against what real planted pairs measured
(module docstring of ``near_duplicates``). Rows are shuffled.

It times ``near_duplicate_pairs`` and ``clusters`` in a fresh process that loads only the
inputs and the curation modules, and reports recall and precision of the planted pairs, that
process's peak RSS (the kernel's high-water mark ``VmHWM`` and a 5 ms sampler; not
``ru_maxrss``, which a process started by fork + exec inherits from its parent) and its RSS with the inputs loaded. Floors,
measured in the same run: brute-force exact search of the same-framing rule
(all-pairs dot products and phash distances) on a ``--subset`` sample, extrapolated
quadratically to ``--n``; and a plain ``np.sort`` of the ``--n`` hashes.

It also times ``image_features`` per 320x240 PNG frame of the synthetic generator against a
PIL decode of the same bytes, and ``near_duplicate_pairs`` on rendered video days (12 frames
per camera and session), where consecutive frames make most pairs worth registering: that
cost per frame is the one to extrapolate for real capture days.

``--distributions`` renders ``--seeds`` synthetic days (2 sessions x 3 cameras x 12 frames,
no planted defects), plants the four variants of every frame, and prints the table of the
module docstring: hamming, cosine, coarse view cosine, registered NCC, worst block residual
and the share flagged by the default rule, per kind of pair.

Targets: near_duplicate_pairs + clusters < 60 s and < 1 GB for 100k samples on 2 cores.
Nothing here is asserted in tests.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import map_coordinates

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dataops_cv.lib.curation import features as feat  # noqa: E402
from dataops_cv.lib.curation import near_duplicates as nd  # noqa: E402
from dataops_cv.lib.curation.registration import register_pairs  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_BYTES = 1024 ** 3
VARIANTS = ("reencode", "resize", "crop", "crop_left_top")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _high_water_bytes() -> int:
    """This process's peak RSS since its exec (``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class _PeakRss:
    """Samples the RSS in a thread while the block runs."""

    def __enter__(self) -> _PeakRss:
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Triangle-filter resampling (anti-aliased when shrinking), rows sum to 1."""
    scale = max(n_in / n_out, 1.0)
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    dist = np.abs(np.arange(n_in)[None, :] - centres[:, None]) / scale
    weights = np.clip(1.0 - dist, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


_TO_32_ROWS = _resample_matrix(feat.THUMB_H, feat.PHASH_SIDE)
_TO_32_COLS = _resample_matrix(feat.THUMB_W, feat.PHASH_SIDE)


def _features_of_thumbs(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """phash and embedding of ``(m, THUMB_H, THUMB_W)`` luma thumbnails."""
    small = _TO_32_ROWS @ thumbs @ _TO_32_COLS.T
    phash = np.array([feat._phash_of(s) for s in small], dtype=np.uint64)
    emb = np.stack([feat._embedding_of(t) for t in thumbs])
    return phash, emb


def spectrum_of_rendered_frames(days: int = 2) -> np.ndarray:
    """RMS of each embedding coefficient over rendered synthetic frames: random thumbnails
    drawn with it have the smoothness of real ones, so that crops and resizes move them as
    much as they move real frames."""
    datas = [d for seed in range(days) for d in video_day(seed)[0]]
    _, emb = feat.image_features(datas)
    return np.sqrt((emb.astype(np.float64) ** 2).mean(axis=0)).reshape(feat.KEEP_H, feat.KEEP_W)


def _random_thumbs(rng: np.random.Generator, m: int, amplitude: np.ndarray) -> np.ndarray:
    coeffs = rng.standard_normal((m, feat.KEEP_H, feat.KEEP_W)) * amplitude
    thumbs = feat._DCT_H.T @ coeffs @ feat._DCT_W
    thumbs /= thumbs.std(axis=(1, 2), keepdims=True)
    return 128.0 + 40.0 * thumbs


def _window(thumb: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    h, w = thumb.shape
    xs = (x0 + (np.arange(w) + 0.5) / w * (x1 - x0)) * w - 0.5
    ys = (y0 + (np.arange(h) + 0.5) / h * (y1 - y0)) * h - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return map_coordinates(thumb, [yy, xx], order=3, mode="mirror")


def _planted_thumb(rng: np.random.Generator, thumb: np.ndarray, variant: str) -> np.ndarray:
    # Noise levels chosen so the pairs land where real planted pairs measured (printed).
    if variant == "reencode":
        return thumb + rng.normal(0.0, 0.6, thumb.shape)
    if variant == "resize":  # the top quarter of frequencies halved, then noise
        coeffs = feat.dct_matrix(feat.THUMB_H) @ thumb @ feat.dct_matrix(feat.THUMB_W).T
        ky = np.arange(feat.THUMB_H)[:, None] / feat.THUMB_H
        kx = np.arange(feat.THUMB_W)[None, :] / feat.THUMB_W
        coeffs *= np.where(np.maximum(ky, kx) > 0.75, 0.5, 1.0)
        smooth = feat.dct_matrix(feat.THUMB_H).T @ coeffs @ feat.dct_matrix(feat.THUMB_W)
        return smooth + rng.normal(0.0, 0.4, thumb.shape)
    if variant == "crop":
        return _window(thumb, 0.03, 0.97, 0.03, 0.97) + rng.normal(0.0, 0.2, thumb.shape)
    return _window(thumb, 0.03, 1.0, 0.03, 1.0) + rng.normal(0.0, 0.2, thumb.shape)


def make_population(n: int, planted: int, seed: int = 0, chunk: int = 4096):
    """``(phash, emb, pairs, kinds)``: ``n + planted`` samples in shuffled rows, and the rows of
    each planted pair. Rows are written in place, so the embeddings exist once in memory."""
    rng = np.random.default_rng(seed)
    amplitude = spectrum_of_rendered_frames()
    total = n + planted
    row = rng.permutation(total)  # sample k lives in row[k]; copies are samples n, n + 1, ...
    phash = np.empty(total, dtype=np.uint64)
    emb = np.empty((total, feat.EMBEDDING_DIM), dtype=np.float16)  # as image_features gives
    sources = rng.choice(n, size=planted, replace=False)
    kinds = [VARIANTS[k % len(VARIANTS)] for k in range(planted)]
    copies = np.empty((planted, feat.THUMB_H, feat.THUMB_W))
    for s in range(0, n, chunk):
        thumbs = _random_thumbs(rng, min(chunk, n - s), amplitude)
        phash[row[s:s + len(thumbs)]], emb[row[s:s + len(thumbs)]] = _features_of_thumbs(thumbs)
        for k in np.flatnonzero((sources >= s) & (sources < s + len(thumbs))):
            copies[k] = _planted_thumb(rng, thumbs[sources[k] - s], kinds[k])
    phash[row[n:]], emb[row[n:]] = _features_of_thumbs(copies)
    a, b = row[sources], row[n + np.arange(planted)]
    return phash, emb, np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), kinds


def brute_force_same_framing(phash: np.ndarray, emb: np.ndarray, config: nd.NearDupConfig,
                             block: int = 1024) -> int:
    """All pairs checked for the same-framing rule; returns how many hold."""
    found = 0
    emb = emb.astype(np.float32)  # NumPy multiplies half precision without BLAS
    for s in range(0, len(emb), block):
        cos = emb[s:s + block] @ emb.T
        ham = np.bitwise_count(phash[s:s + block, None] ^ phash[None, :])
        hit = (cos >= config.embedding_min_cosine) & (ham <= config.phash_max_hamming)
        found += int(np.triu(hit, k=s + 1).sum())  # pairs (i, j) with j > i only
    return found


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def variant_bytes(data: bytes, variant: str) -> bytes:
    """A planted near duplicate of an encoded frame, as measured in the module docstring."""
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
    if variant == "crop":
        return _encode(img.crop((dx, dy, w - dx, h - dy)), fmt, **keep)
    return _encode(img.crop((dx, dy, w, h)), fmt, **keep)


def video_day(seed: int, planted_every: int = 0):
    """A rendered day (2 sessions x 3 cameras x 12 frames) and, optionally, a planted variant
    after every ``planted_every``-th frame. Returns ``(datas, frames, planted)`` where
    ``frames[k]`` is the generator's frame behind sample k."""
    # Imported here: the search's child process measures memory and needs none of it.
    from dataops_cv.lib.synthetic.config import DefectConfig, SceneConfig
    from dataops_cv.lib.synthetic.frames import generate_day
    config = SceneConfig(seed=seed, sessions_per_day=2, frames_per_session=12,
                         defects=DefectConfig.none(), image_format="png" if seed % 2 == 0
                         else "jpeg")
    datas, frames, planted = [], [], []
    for k, frame in enumerate(generate_day(config, f"2024-06-{seed % 28 + 1:02d}")):
        datas.append(frame.data)
        frames.append(frame)
        if planted_every and k % planted_every == 0:
            variant = VARIANTS[(k // planted_every) % len(VARIANTS)]
            planted.append((len(datas) - 1, len(datas), variant))
            datas.append(variant_bytes(frame.data, variant))
            frames.append(frame)
    return datas, frames, planted


def max_motion(a, b) -> float:
    """Largest box-edge move between two frames of one camera (inf when objects differ)."""
    boxes_a = {o.track_id: o.box for o in a.objects}
    boxes_b = {o.track_id: o.box for o in b.objects}
    if set(boxes_a) != set(boxes_b):
        return float("inf")
    return max((max(abs(p - q) for p, q in zip(boxes_a[t], boxes_b[t], strict=True))
                for t in boxes_a), default=0.0)


def distributions(seeds: int) -> dict:
    datas, frames, groups, originals = [], [], {}, []
    for seed in range(seeds):
        day, day_frames, _ = video_day(seed)
        base = len(datas)
        originals += range(base, base + len(day))
        datas += day
        frames += day_frames
        for k in range(len(day)):
            for variant in VARIANTS:
                groups.setdefault(f"planted {variant}", []).append((base + k, len(datas)))
                datas.append(variant_bytes(day[k], variant))
                frames.append(day_frames[k])
        for a, b in itertools.combinations(range(base, base + len(day)), 2):
            fa, fb = frames[a], frames[b]
            if (fa.session, fa.device_id) != (fb.session, fb.device_id):
                continue
            gap = abs(fa.index - fb.index)
            if gap == 1:
                motion = max_motion(fa, fb)
                name = ("consecutive, moved <= 1 px" if motion <= 1 else
                        "consecutive, moved 2 px" if motion <= 2 else "consecutive, moved > 2 px")
                groups.setdefault(name, []).append((a, b))
            elif gap <= 5:
                groups.setdefault("2-5 frames apart", []).append((a, b))
    rng = np.random.default_rng(0)
    unrelated = []
    while len(unrelated) < 2000:
        a, b = sorted(rng.choice(originals, size=2, replace=False).tolist())
        if (frames[a].session_id, frames[a].device_id) != (frames[b].session_id,
                                                           frames[b].device_id):
            unrelated.append((a, b))
    groups["unrelated (other camera/session/day)"] = unrelated
    phash, emb = feat.image_features(datas)
    found = nd.near_duplicate_pairs(phash, emb)
    flagged = set(zip(found.i.tolist(), found.j.tolist(), strict=True))
    views = nd._Views(emb)
    rows = {}
    for name, pairs in groups.items():
        i = np.array([p[0] for p in pairs])
        j = np.array([p[1] for p in pairs])
        ham = np.bitwise_count(phash[i] ^ phash[j])
        cos = np.einsum("ij,ij->i", emb[i], emb[j], dtype=np.float64)
        view_cos, j_in_i, i_in_j = nd._best_view(views, i, j)
        ncc, block = register_pairs(emb, i, j, j_in_i, i_in_j, nd.NearDupConfig().max_crop)
        rows[name] = {
            "n": len(pairs),
            "hamming p50/p95/max": [float(np.percentile(ham, 50)), float(np.percentile(ham, 95)),
                                    int(ham.max())],
            "cosine p5/p50/p95": [round(float(np.percentile(cos, q)), 5) for q in (5, 50, 95)],
            "view cosine min": round(float(view_cos.min()), 4),
            "registered NCC p1/p50/max": [round(float(np.percentile(ncc, q)), 5)
                                          for q in (1, 50, 100)],
            "block residual min/p50/max": [round(float(np.min(block)), 4),
                                           round(float(np.median(block)), 4),
                                           round(float(np.max(block)), 4)],
            "flagged": round(sum((a, b) in flagged for a, b in pairs) / len(pairs), 3),
        }
    return {"frames": len(datas), "rows": rows}


def measure_search(folder: Path) -> dict:
    """Time and memory of ``near_duplicate_pairs`` + ``clusters`` on the population saved in
    ``folder``, run in a fresh process so the peak is the search's, not the generator's."""
    phash = np.load(folder / "phash.npy")
    emb = np.load(folder / "emb.npy")
    planted = np.load(folder / "pairs.npy")
    loaded = _rss_bytes()
    with _PeakRss() as mem:
        t0 = time.perf_counter()
        pairs = nd.near_duplicate_pairs(phash, emb)
        search_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        nd.clusters(len(phash), pairs.i, pairs.j)
        clusters_s = time.perf_counter() - t0
    found = set(zip(pairs.i.tolist(), pairs.j.tolist(), strict=True))
    hits = [(a, b) in found for a, b in planted.tolist()]
    return {"search_s": search_s, "clusters_s": clusters_s, "found": len(found), "hits": hits,
            "rss_loaded": loaded, "rss_peak": max(mem.peak, _high_water_bytes())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--planted", type=int, default=3000)
    parser.add_argument("--subset", type=int, default=5000)
    parser.add_argument("--video-days", type=int, default=4)
    parser.add_argument("--distributions", action="store_true")
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_search(args.measure)))
        return
    if args.distributions:
        result = distributions(args.seeds)
        print(f"{'pair kind':40s} {'n':>5s}  measure")
        for name, row in result["rows"].items():
            print(f"{name:40s} {row['n']:5d}  " + "  ".join(
                f"{k}={v}" for k, v in row.items() if k != "n"))
        print(json.dumps(result))
        return

    config = nd.NearDupConfig()
    t0 = time.perf_counter()
    phash, emb, planted, kinds = make_population(args.n, args.planted)
    generate_s = time.perf_counter() - t0
    pi, pj = planted[:, 0], planted[:, 1]
    perturbation = {}
    for variant in VARIANTS:
        sel = np.array([k == variant for k in kinds])
        ham = np.bitwise_count(phash[pi[sel]] ^ phash[pj[sel]])
        cos = np.einsum("ij,ij->i", emb[pi[sel]], emb[pj[sel]], dtype=np.float64)
        perturbation[variant] = {"hamming p50/max": [float(np.median(ham)), int(ham.max())],
                                 "cosine min/p50": [round(float(cos.min()), 5),
                                                    round(float(np.median(cos)), 5)]}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "phash.npy", phash)
        np.save(folder / "emb.npy", emb)
        np.save(folder / "pairs.npy", planted)
        child = subprocess.run([sys.executable, __file__, "--measure", str(folder)],
                               capture_output=True, text=True, check=True)
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    search_s, clusters_s = measured["search_s"], measured["clusters_s"]
    hits = np.array(measured["hits"])
    recall = float(hits.mean())
    precision = float(hits.sum()) / max(measured["found"], 1)
    per_variant = {v: round(float(hits[np.array(kinds) == v].mean()), 4) for v in VARIANTS}

    rng = np.random.default_rng(1)
    sub = rng.choice(len(phash), size=min(args.subset, len(phash)), replace=False)
    t0 = time.perf_counter()
    brute_force_same_framing(phash[sub], emb[sub], config)
    brute_s = time.perf_counter() - t0
    brute_extrapolated = brute_s * (len(phash) / len(sub)) ** 2
    t0 = time.perf_counter()
    np.sort(phash)
    sort_s = time.perf_counter() - t0

    frames, _, _ = video_day(0)
    frames = frames[:64]
    t0 = time.perf_counter()
    for data in frames:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    decode_ms = (time.perf_counter() - t0) / len(frames) * 1e3
    t0 = time.perf_counter()
    feat.image_features(frames)
    features_ms = (time.perf_counter() - t0) / len(frames) * 1e3

    video_frames, video_s, video_recall = 0, 0.0, []
    for seed in range(args.video_days):
        datas, _, planted_day = video_day(seed, planted_every=3)
        ph, em = feat.image_features(datas)
        t0 = time.perf_counter()
        day_pairs = nd.near_duplicate_pairs(ph, em, config)
        video_s += time.perf_counter() - t0
        video_frames += len(datas)
        got = set(zip(day_pairs.i.tolist(), day_pairs.j.tolist(), strict=True))
        video_recall += [(a, b) in got for a, b, _ in planted_day]

    total_s = search_s + clusters_s
    result = {
        "samples": len(phash), "planted_pairs": len(planted), "generate_s": round(generate_s, 2),
        "planted_perturbation": perturbation,
        "near_duplicate_pairs_s": round(search_s, 2), "clusters_s": round(clusters_s, 3),
        "total_s": round(total_s, 2), "pairs_found": measured["found"],
        "recall": round(recall, 4), "precision": round(precision, 4),
        "recall_per_variant": per_variant,
        "search_process_peak_rss_gb": round(measured["rss_peak"] / 1024 ** 3, 3),
        "search_process_rss_with_inputs_loaded_gb": round(measured["rss_loaded"] / 1024 ** 3, 3),
        "inputs_gb": round((phash.nbytes + emb.nbytes) / 1024 ** 3, 3),
        "floor_brute_force_subset": len(sub), "floor_brute_force_subset_s": round(brute_s, 2),
        "floor_brute_force_extrapolated_s": round(brute_extrapolated, 1),
        "speedup_vs_brute_force": round(brute_extrapolated / total_s, 1),
        "floor_sort_hashes_s": round(sort_s, 4),
        "ratio_vs_sort": round(total_s / sort_s, 0),
        "features_ms_per_320x240_png": round(features_ms, 2), "pil_decode_ms": round(decode_ms, 2),
        "features_over_decode": round(features_ms / decode_ms, 2),
        "video_days_frames": video_frames,
        "video_days_pairs_ms_per_frame": round(video_s / max(video_frames, 1) * 1e3, 2),
        "video_days_planted_recall": round(float(np.mean(video_recall)), 4),
        "targets_met": total_s < TARGET_SECONDS and measured["rss_peak"] < TARGET_BYTES,
    }
    print(f"{'measure':36s} value")
    for key, value in result.items():
        print(f"{key:36s} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
