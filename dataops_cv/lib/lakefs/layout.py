"""Where everything lives in the lakeFS repository: every object key is built here.

Keys derive from content hashes and partition keys, never from run ids or clocks, so re-running a
partition rewrites the same keys and unchanged content leaves an empty diff.

```
frames/<sha256[:2]>/<sha256>.<ext>               content-addressed image bytes
sensors/<sha256[:2]>/<sha256><suffix>            content-addressed sensor blobs (LiDAR sweeps)
augmented/<sha256[:2]>/<sha256>.png              content-addressed augmented variants
tables/<asset>/date=<day>/part-00000.parquet     a day's table of an asset
tables/<asset>/date=<day>/_<name>                side tables and inputs beside it
quarantine/<asset>/date=<day>/_quarantine.parquet, <sha256[:2]>/<sha256>   reasons, kept bytes
validation/<asset>/date=<day>/<check>.json       check evidence
trainsets/<name>/<version>/...                   training sets
```

On the labels branch: ``tables/label_snapshot/{_tasks.parquet,_cursor.json}``,
``quarantine/label_snapshot/_unlinked.parquet``, ``drops/date=<day>/...`` and
``models/prelabel/<model version>.pt``.
"""

from __future__ import annotations

from collections.abc import Iterable

TABLES = "tables/"
TRAINSETS = "trainsets/"
DROPS = "drops/"
PART_FILE = "part-00000.parquet"
QUARANTINE_FILE = "_quarantine.parquet"
SNAPSHOT_TABLE = "label_snapshot"


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
    """What every day's folder of ``asset`` starts with (list it to find the days)."""
    return f"{TABLES}{asset}/date="


def table_key(asset: str, partition: str, part: int = 0) -> str:
    """The day's table of ``asset``."""
    return f"{partition_prefix(asset)}{partition}/part-{part:05d}.parquet"


def side_key(asset: str, partition: str, name: str) -> str:
    """A side table or record beside the day's table (``_inputs.json``, ``_features.parquet``)."""
    return f"{partition_prefix(asset)}{partition}/{name}"


def quarantine_key(asset: str, partition: str) -> str:
    """The day's quarantine table of ``asset``: what was set aside, with reasons."""
    return f"quarantine/{asset}/date={partition}/{QUARANTINE_FILE}"


def quarantine_blob_key(asset: str, partition: str, sha256: str) -> str:
    """The kept bytes of a file that was set aside."""
    return f"quarantine/{asset}/date={partition}/{sha256[:2]}/{sha256}"


def validation_key(asset: str, partition: str, check: str) -> str:
    """The full report of a check (``contract``, ``drift``) on the day's table."""
    return f"validation/{asset}/date={partition}/{check}.json"


def trainset_root(name: str, version: str) -> str:
    """The folder of one training-set version (manifest, annotations, inputs, shards)."""
    return f"{TRAINSETS}{name}/{version}"


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
    """Where people and vendors commit a day's label files on the labels branch."""
    return f"{DROPS}date={partition}/"


def prelabel_model_key(model_version: str) -> str:
    """The weights of one pre-label model version."""
    return f"models/prelabel/{model_version}.pt"


def table_partitions(keys: Iterable[str], asset: str) -> list[str]:
    """The days that have a table of ``asset`` among ``keys`` (object paths), oldest first."""
    prefix, suffix = partition_prefix(asset), f"/{PART_FILE}"
    return sorted({k[len(prefix):-len(suffix)] for k in keys
                   if k.startswith(prefix) and k.endswith(suffix)})


def earlier_partitions(keys: Iterable[str], asset: str, partition: str, n: int) -> list[str]:
    """The ``n`` latest days before ``partition`` that have a table of ``asset`` among ``keys``
    (object paths, e.g. a listing of :func:`partition_prefix`), oldest first."""
    return [d for d in table_partitions(keys, asset) if d < partition][-n:] if n > 0 else []
