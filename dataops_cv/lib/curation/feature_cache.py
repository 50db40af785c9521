"""Image features per content hash, computed once: a day's cached features are reused when the
feature version matches, and only the rest are decoded, in bounded chunks on every core
(:mod:`dataops_cv.lib.core.parallel`), with the same rows as one process computes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

# Images decoded per chunk: bounds memory whatever the day's size (a chunk's bytes in flight).
DECODE_BATCH = 64


def features_of_chunk(datas: list[bytes]) -> tuple:
    """``("ok", phash, emb)`` of one chunk of encoded images, or ``("error", index, sha256,
    reason)`` for the first that does not decode (the error's own class does not pickle)."""
    from dataops_cv.lib.curation.features import ImageFeatureError, image_features

    try:
        return ("ok", *image_features(datas))
    except ImageFeatureError as exc:
        return ("error", exc.index, exc.sha256, exc.reason)


def day_features(read: Callable[[str], bytes], keys: Mapping[str, str],
                 cached: Mapping[str, Mapping], batch: int = DECODE_BATCH, workers: int = 0
                 ) -> tuple[dict[str, dict], int]:
    """phash and embedding per sha256 (``FEATURES_SCHEMA`` rows) and how many were computed.

    Args:
        read: object key -> image bytes (called in this process, chunk by chunk).
        keys: sha256 -> object key of every frame that needs features.
        cached: sha256 -> a row of the day's previous features table.
        workers: processes decoding chunks; <= 0: every CPU available
            (:func:`dataops_cv.lib.core.parallel.default_workers`).

    Raises:
        ImageFeatureError: a frame does not decode; names its position among those computed.
    """
    from dataops_cv.lib.core.parallel import chunked, process_map
    from dataops_cv.lib.curation.features import (
        FEATURE_VERSION,
        ImageFeatureError,
        phash_to_hex,
    )

    out = {sha: dict(row) for sha, row in cached.items()
           if sha in keys and row["feature_version"] == FEATURE_VERSION}
    todo = sorted(sha for sha in keys if sha not in out)

    def datas() -> Iterator[list[bytes]]:
        for chunk in chunked(todo, batch):
            yield [read(keys[sha]) for sha in chunk]

    for start, result in zip(range(0, len(todo), batch),
                             process_map(features_of_chunk, datas(), workers), strict=True):
        if result[0] == "error":
            _, index, sha, reason = result
            raise ImageFeatureError(start + index, len(todo), sha, reason)
        _, phash, emb = result
        for k, sha in enumerate(todo[start:start + batch]):
            out[sha] = {"sha256": sha, "feature_version": FEATURE_VERSION,
                        "phash": phash_to_hex(int(phash[k])), "embedding": emb[k].tolist()}
    return out, len(todo)
