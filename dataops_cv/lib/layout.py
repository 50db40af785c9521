"""Where things live in the lakeFS repository. Keys derive from content hashes and partition keys,
never from run ids or clocks, so re-running a partition rewrites the same keys."""

from __future__ import annotations


def frame_key(sha256: str, ext: str) -> str:
    return f"frames/{sha256[:2]}/{sha256}.{ext.lstrip('.').lower()}"


def table_key(asset: str, partition: str, part: int = 0) -> str:
    return f"tables/{asset}/date={partition}/part-{part:05d}.parquet"


def validation_key(asset: str, partition: str, check: str) -> str:
    return f"validation/{asset}/date={partition}/{check}.json"
