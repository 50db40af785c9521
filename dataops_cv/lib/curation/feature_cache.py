"""Image features per content hash, computed once: a day's cached features are reused when the
feature version matches, and only the rest are decoded, in bounded batches."""

from __future__ import annotations

from collections.abc import Callable, Mapping

# Images decoded per batch: bounds memory whatever the day's size.
DECODE_BATCH = 64


def day_features(read: Callable[[str], bytes], keys: Mapping[str, str],
                 cached: Mapping[str, Mapping], batch: int = DECODE_BATCH
                 ) -> tuple[dict[str, dict], int]:
    """phash and embedding per sha256 (``FEATURES_SCHEMA`` rows) and how many were computed.

    Args:
        read: object key -> image bytes.
        keys: sha256 -> object key of every frame that needs features.
        cached: sha256 -> a row of the day's previous features table.
    """
    from dataops_cv.lib.curation.features import FEATURE_VERSION, image_features, phash_to_hex

    out = {sha: dict(row) for sha, row in cached.items()
           if sha in keys and row["feature_version"] == FEATURE_VERSION}
    todo = sorted(sha for sha in keys if sha not in out)
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        phash, emb = image_features([read(keys[sha]) for sha in chunk])
        for k, sha in enumerate(chunk):
            out[sha] = {"sha256": sha, "feature_version": FEATURE_VERSION,
                        "phash": phash_to_hex(int(phash[k])), "embedding": emb[k].tolist()}
    return out, len(todo)
