"""Moving a repository written before sources were a partition dimension into the day × source
layout, in one merge per branch.

Every ``<root>/<asset>/date=<day>/...`` object (``root`` in tables, quarantine, validation on
main; drops and the label snapshot on the labels branch) moves to
``<root>/<asset>/date=<day>/source=<name>/...``. Parquet tables get their ``source`` column
filled where the schema has one and it is empty, and a ``partition`` column holding bare days
(the label snapshot's) is rewritten to ``<day>|<name>``. Content-addressed bytes (frames,
sensors, augmented) do not move. Sample ids and training-set tags already published stay as
they were: a migrated day is curated again on its next run, under its new partition key.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from dataops_cv.lib.core.partitions import partition_key, validate_source_name
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.store import LakeFSNoChanges, LakeFSStore

LEGACY = re.compile(r"^(?P<head>(?:tables|quarantine|validation)/[^/]+/|drops/)"
                    r"date=(?P<day>\d{4}-\d{2}-\d{2})/(?P<rest>(?!source=).+)$")
SOURCE_COLUMN_TABLES = ("raw_frames", "curated_samples")


def legacy_paths(paths) -> list[str]:
    """The paths among ``paths`` in the single-source layout."""
    return [p for p in paths if LEGACY.match(p)]


def _rewrite_parquet(data: bytes, name: str) -> bytes | None:
    """The table with its source column filled and bare-day partitions keyed (None: as is)."""
    table = pq.read_table(io.BytesIO(data))
    changed = False
    if "source" in table.column_names and table.num_rows and table["source"].null_count \
            == table.num_rows:
        i = table.column_names.index("source")
        table = table.set_column(i, table.schema.field(i), pa.array([name] * table.num_rows,
                                                                    pa.string()))
        changed = True
    if "partition" in table.column_names and pa.types.is_string(table["partition"].type):
        values = table["partition"].to_pylist()
        keyed = [partition_key(v, name) if isinstance(v, str) and "|" not in v else v
                 for v in values]
        if keyed != values:
            i = table.column_names.index("partition")
            table = table.set_column(i, table.schema.field(i), pa.array(keyed, pa.string()))
            changed = True
    if not changed:
        return None
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _add_source_column(data: bytes, name: str) -> bytes | None:
    table = pq.read_table(io.BytesIO(data))
    if "source" in table.column_names:
        return _rewrite_parquet(data, name)
    at = table.column_names.index("rel_path") if "rel_path" in table.column_names else 0
    table = table.add_column(at, pa.field("source", pa.string()),
                             pa.array([name] * table.num_rows, pa.string()))
    out = io.BytesIO()
    pq.write_table(table, out)
    return _rewrite_parquet(out.getvalue(), name) or out.getvalue()


def _move(store: LakeFSStore, branch: str, name: str, prefixes: tuple[str, ...],
          days: set[str], in_place: tuple[str, ...] = ()) -> int:
    moved = 0
    for path in in_place:  # tables outside the day folders that name days (the task index)
        if store.stat_object(branch, path) is not None:
            data = _rewrite_parquet(store.get_object(branch, path), name)
            if data is not None:
                store.put_object(branch, path, data, "application/octet-stream")
                moved += 1
    for prefix in prefixes:
        for obj in list(store.list_objects(branch, prefix)):
            m = LEGACY.match(obj.path)
            if not m:
                continue
            new = f"{m['head']}date={m['day']}/source={name}/{m['rest']}"
            data = store.get_object(branch, obj.path)
            if obj.path.endswith(".parquet"):
                asset = m["head"].split("/")[1] if m["head"].startswith("tables/") else ""
                rewrite: Callable[[bytes, str], bytes | None] = (
                    _add_source_column if asset in SOURCE_COLUMN_TABLES
                    and m["rest"] == layout.PART_FILE else _rewrite_parquet)
                data = rewrite(data, name) or data
            store.put_object(branch, new, data, obj.content_type or "application/octet-stream")
            store.delete_object(branch, obj.path)
            days.add(m["day"])
            moved += 1
    return moved


def _migrate_branch(store: LakeFSStore, target: str, name: str, prefixes: tuple[str, ...],
                    days: set[str], in_place: tuple[str, ...] = ()) -> tuple[int, str]:
    branch = f"migrate-sources-{name}"
    store.delete_branch(branch)
    store.create_branch(branch, source=target, exist_ok=False)
    try:
        moved = _move(store, branch, name, prefixes, days, in_place)
        meta = {"dataops_cv_change": "sources-migrate", "source": name}
        try:
            store.commit(branch, f"sources migrate: single-source layout -> source {name}", meta)
        except LakeFSNoChanges:
            return 0, store.head(target)
        return moved, store.merge(branch, target, f"sources migrate into {target}: source "
                                  f"{name}", meta)
    finally:
        store.delete_branch(branch)


def migrate_to_sources(store: LakeFSStore, main: str, labels: str, name: str) -> dict:
    """Move main's (and the labels branch's) single-source layout under source ``name``.

    Idempotent: a repository with nothing in the old layout is left as it is.
    """
    validate_source_name(name)
    days: set[str] = set()
    moved, main_after = _migrate_branch(store, main, name,
                                        ("tables/", "quarantine/", "validation/"), days)
    labels_moved, labels_after = 0, None
    if store.branch_exists(labels):
        labels_moved, labels_after = _migrate_branch(
            store, labels, name, (layout.DROPS, f"{layout.TABLES}{layout.SNAPSHOT_TABLE}/",
                                  f"quarantine/{layout.SNAPSHOT_TABLE}/"), days,
            (layout.snapshot_index_key(), layout.unlinked_quarantine_key()))
    return {"source": name, "objects": moved + labels_moved, "days": sorted(days),
            "main_after": main_after, "labels_after": labels_after}
