"""Where things live in the lakeFS repository. Keys derive from content hashes and partition keys,
never from run ids or clocks, so re-running a partition rewrites the same keys."""

from __future__ import annotations

from collections.abc import Iterable


def frame_key(sha256: str, ext: str) -> str:
    return f"frames/{sha256[:2]}/{sha256}.{ext.lstrip('.').lower()}"


def table_key(asset: str, partition: str, part: int = 0) -> str:
    return f"tables/{asset}/date={partition}/part-{part:05d}.parquet"


def validation_key(asset: str, partition: str, check: str) -> str:
    return f"validation/{asset}/date={partition}/{check}.json"


def earlier_partitions(keys: Iterable[str], asset: str, partition: str, n: int) -> list[str]:
    """The ``n`` latest partitions before ``partition`` that have a table of ``asset`` among
    ``keys`` (object paths, e.g. a listing of ``tables/<asset>/``), oldest first."""
    prefix, suffix = f"tables/{asset}/date=", f"/{table_key(asset, '', 0).rsplit('/', 1)[1]}"
    days = sorted({k[len(prefix):-len(suffix)] for k in keys
                   if k.startswith(prefix) and k.endswith(suffix)})
    return [d for d in days if d < partition][-n:] if n > 0 else []
