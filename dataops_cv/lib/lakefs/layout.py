"""Where everything lives in the lakeFS repository: every object key is built here.

Keys derive from content hashes and partition keys, never from run ids or clocks, so re-running a
partition rewrites the same keys and unchanged content leaves an empty diff. A partition is a
capture day and a source (:mod:`dataops_cv.lib.core.partitions`); ``<part>`` below is its folder,
``date=<day>/source=<source>``.

```
frames/<sha256[:2]>/<sha256>.<ext>               content-addressed image bytes
sensors/<sha256[:2]>/<sha256><suffix>            content-addressed sensor blobs (LiDAR sweeps)
augmented/<sha256[:2]>/<sha256>.png              content-addressed augmented variants
tables/<asset>/<part>/part-00000.parquet        a partition's table of an asset
tables/<asset>/<part>/_<name>                   side tables and inputs beside it
quarantine/<asset>/<part>/_quarantine.parquet, <sha256[:2]>/<sha256>   reasons, kept bytes
validation/<asset>/<part>/<check>.json          check evidence
trainsets/<name>/<version>/...                   training sets
sources/<name>.json                              the registered sources (URI, format)
```

On the labels branch: ``tables/label_snapshot/{_tasks.parquet,_cursor.json}``,
``quarantine/label_snapshot/_unlinked.parquet``, ``drops/<part>/...`` and
``models/prelabel/<model version>.pt``.
"""

from __future__ import annotations

from collections.abc import Iterable

from dataops_cv.lib.core import partitions as keys_

TABLES = "tables/"
TRAINSETS = "trainsets/"
DROPS = "drops/"
PART_FILE = "part-00000.parquet"
QUARANTINE_FILE = "_quarantine.parquet"
SNAPSHOT_TABLE = "label_snapshot"
SOURCES = "sources/"


def frame_key(sha256: str, ext: str) -> str:
    """Image bytes, named by their content."""
    return f"frames/{sha256[:2]}/{sha256}.{ext.lstrip('.').lower()}"


def sensor_blob_key(sha256: str, suffix: str) -> str:
    """A blob a sensor log refers to (a LiDAR sweep), named by its content."""
    return f"sensors/{sha256[:2]}/{sha256}{suffix.lower()}"


def augmented_key(sha256: str) -> str:
    """An augmented variant's PNG bytes, named by their content."""
    return f"augmented/{sha256[:2]}/{sha256}.png"


def partition_prefix(asset: str) -> str:
    """What every partition's folder of ``asset`` starts with (list it to find them)."""
    return f"{TABLES}{asset}/date="


def table_key(asset: str, partition: str, part: int = 0) -> str:
    """The partition's table of ``asset``."""
    return f"{TABLES}{asset}/{keys_.folder(partition)}/part-{part:05d}.parquet"


def side_key(asset: str, partition: str, name: str) -> str:
    """A side table or record beside the partition's table (``_inputs.json``,
    ``_features.parquet``)."""
    return f"{TABLES}{asset}/{keys_.folder(partition)}/{name}"


def quarantine_key(asset: str, partition: str) -> str:
    """The partition's quarantine table of ``asset``: what was set aside, with reasons."""
    return f"quarantine/{asset}/{keys_.folder(partition)}/{QUARANTINE_FILE}"


def quarantine_blob_key(asset: str, partition: str, sha256: str) -> str:
    """The kept bytes of a file that was set aside."""
    return f"quarantine/{asset}/{keys_.folder(partition)}/{sha256[:2]}/{sha256}"


def validation_key(asset: str, partition: str, check: str) -> str:
    """The full report of a check (``contract``, ``drift``) on the partition's table."""
    return f"validation/{asset}/{keys_.folder(partition)}/{check}.json"


def source_key(name: str) -> str:
    """A registered source: its URI and format (``dataops-cv sources add``)."""
    return f"{SOURCES}{keys_.validate_source_name(name)}.json"


def trainset_root(name: str, version: str) -> str:
    """The folder of one training-set version (manifest, annotations, inputs, shards)."""
    return f"{TRAINSETS}{name}/{version}"


def trainset_shards_root(name: str) -> str:
    """The folder of a training-set name's shared, content-addressed shards (every version of
    the name points into it; a version's own ``shards/`` folder is the older layout)."""
    return f"{TRAINSETS}{name}/shards"


def trainset_shard_key(root: str, shard: str) -> str:
    """The repository key of a manifest's ``shard``: a shared shard's key as it stands, an
    older version's path relative to its ``root``."""
    return shard if shard.startswith(TRAINSETS) else f"{root}/{shard}"


def trainset_key(name: str, version: str, rel: str) -> str:
    """A file of a training set, ``rel`` relative to its root (``manifest.parquet``, ...)."""
    return f"{trainset_root(name, version)}/{rel}"


def snapshot_index_key() -> str:
    """Label Studio task id -> day and ``updated_at``, on the labels branch."""
    return f"{TABLES}{SNAPSHOT_TABLE}/_tasks.parquet"


def snapshot_cursor_key() -> str:
    """The pull cursor per Label Studio project, on the labels branch."""
    return f"{TABLES}{SNAPSHOT_TABLE}/_cursor.json"


def unlinked_quarantine_key() -> str:
    """Labels of tasks that name no capture day, set aside with reasons."""
    return f"quarantine/{SNAPSHOT_TABLE}/_unlinked.parquet"


def drop_prefix(partition: str) -> str:
    """Where people and vendors commit a partition's label files on the labels branch."""
    return f"{DROPS}{keys_.folder(partition)}/"


def prelabel_model_key(model_version: str) -> str:
    """The weights of one pre-label model version."""
    return f"models/prelabel/{model_version}.pt"


def table_partitions(keys: Iterable[str], asset: str) -> list[str]:
    """The partitions that have a table of ``asset`` among ``keys`` (object paths), by day then
    source."""
    prefix, suffix = f"{TABLES}{asset}/", f"/{PART_FILE}"
    found = {keys_.from_folder(k[len(prefix):-len(suffix)]) for k in keys
             if k.startswith(prefix) and k.endswith(suffix)}
    return sorted((p for p in found if p is not None), key=keys_.sort_key)


def earlier_partitions(keys: Iterable[str], asset: str, partition: str, n: int) -> list[str]:
    """The ``n`` latest days before ``partition``'s day that have a table of ``asset`` of the
    same source among ``keys`` (object paths, e.g. a listing of :func:`partition_prefix`), oldest
    first."""
    day, source = keys_.split_key(partition)
    same = [p for p in table_partitions(keys, asset)
            if keys_.source_of(p) == source and keys_.day_of(p) < day]
    return same[-n:] if n > 0 else []


def window_partitions(keys: Iterable[str], asset: str, partition: str, days: int) -> list[str]:
    """Every partition, of any source, of the ``days`` latest days up to ``partition``'s day
    that have a table of ``asset`` among ``keys`` (all of them when ``days`` is 0), with
    ``partition`` itself, by day then source."""
    day = keys_.day_of(partition)
    found = [p for p in table_partitions(keys, asset) if keys_.day_of(p) <= day]
    in_days = sorted({keys_.day_of(p) for p in found} | {day})
    chosen = set(in_days[-days:] if days > 0 else in_days)
    return sorted({p for p in found if keys_.day_of(p) in chosen} | {partition},
                  key=keys_.sort_key)
