"""Where a training set or one of its samples came from, answered from lakeFS alone.

Every table of every day is written by a commit whose metadata names the Dagster run, job,
partition and code version, and publish merges keep those commits in main's history. So for a
training-set tag (or any sample in one) lineage is a walk over lakeFS: the manifest at the tag,
``inputs.json`` beside it (the tables it was built from), the commit that last changed each of
those tables (:meth:`LakeFSStore.last_change`), and the contract reports under ``validation/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dataops_cv.lib.core.partitions import key_of, sort_key
from dataops_cv.lib.core.tables import from_parquet_bytes
from dataops_cv.lib.lakefs.layout import table_key, validation_key
from dataops_cv.lib.lakefs.store import CommitInfo, LakeFSStore
from dataops_cv.lib.training_sets.writer import (
    INPUTS_PATH,
    MANIFEST_PATH,
    TAG_PREFIX,
    parse_tag,
    trainset_root,
)

# The per-day tables a sample's lineage walks, in pipeline order.
DAY_TABLES = ("raw_frames", "sensor_logs", "imported_annotations", "labeled_annotations",
              "fused_samples", "augmented_samples", "curated_samples", "training_set")
RUN_KEYS = ("dagster_run_id", "dagster_job", "dagster_partition_key", "dagster_asset_key",
            "code_version")


class LineageError(LookupError):
    """The sample or tag is not in any training set this repository holds."""


def _run(commit: CommitInfo | None) -> dict[str, Any] | None:
    if commit is None:
        return None
    return {"commit": commit.id, "message": commit.message,
            **{k: commit.metadata[k] for k in RUN_KEYS if k in commit.metadata}}


def _checks(store: LakeFSStore, ref: str, day: str) -> list[dict[str, Any]]:
    out = []
    for table in DAY_TABLES:
        path = validation_key(table, day, "contract")
        if store.stat_object(ref, path) is None:
            continue
        report = json.loads(store.get_object(ref, path))
        out.append({
            "table": table, "date": day, "success": report["success"],
            "contract_sha256": report.get("contract_sha256"),
            "failed": [r["name"] for r in report.get("results", []) if not r.get("passed", True)],
            "evidence": path,
        })
    return out


def _day_runs(store: LakeFSStore, ref: str, day: str) -> list[dict[str, Any]]:
    out = []
    for table in DAY_TABLES:
        path = table_key(table, day)
        change = store.last_change(ref, path)
        if change is not None:
            out.append({"table": table, "date": day, "path": path, **(_run(change) or {})})
    return out


def _trainset(store: LakeFSStore, tag: str) -> tuple[str, str, str, list[dict]]:
    parsed = parse_tag(tag)
    if parsed is None:
        raise LineageError(f"{tag!r} is not a training-set tag (trainset-<name>-<version>)")
    name, version = parsed
    commit = store.head(tag)
    root = trainset_root(name, version)
    rows = from_parquet_bytes(store.get_object(commit, f"{root}/{MANIFEST_PATH}")).to_pylist()
    return commit, name, version, rows


def tag_lineage(store: LakeFSStore, tag: str) -> dict[str, Any]:
    """The training set behind ``tag``: its publishing run and code version, the samples per
    split, the label revisions, the tables it was built from with the runs that wrote them, and
    the contract results of every day in it.

    Raises:
        LineageError: not a training-set tag.
        LakeFSNotFound: the tag does not exist.
    """
    commit, name, version, rows = _trainset(store, tag)
    root = trainset_root(name, version)
    splits: dict[str, int] = {}
    for r in rows:
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    inputs = json.loads(store.get_object(commit, f"{root}/{INPUTS_PATH}"))
    days = sorted({key_of(r["date"], r.get("source")) for r in rows}, key=sort_key)
    tables = []
    for path in sorted(inputs.get("tables", {})):
        tables.append({"path": path, "checksum": inputs["tables"][path],
                       "written_by": _run(store.last_change(commit, path))})
    return {
        "kind": "training_set", "tag": tag, "commit": commit, "name": name, "version": version,
        "published_by": _run(store.get_commit(commit)),
        "samples": len(rows), "splits": dict(sorted(splits.items())),
        "augmented": sum(1 for r in rows if r.get("augmented_from")),
        "label_revisions": sorted({r["label_revision"] for r in rows if r["label_revision"]}),
        "days": days, "inputs": tables,
        "checks": [c for d in days for c in _checks(store, commit, d)],
        "manifest": f"{root}/{MANIFEST_PATH}",
    }


def _tags_newest_first(store: LakeFSStore) -> Iterator[str]:
    tags = [t for t, _ in store.list_tags(TAG_PREFIX) if parse_tag(t)]
    # The version starts with the capture day: newest training sets first.
    yield from sorted(tags, key=lambda t: (parse_tag(t)[1], t), reverse=True)  # type: ignore[index]


def sample_lineage(store: LakeFSStore, query: str, tag: str | None = None) -> dict[str, Any]:
    """A sample (by sample id, or content sha256 or a prefix of 8+ hex of it) in the newest
    training set that holds it (or in ``tag``): its raw object, label revision and boxes, its
    curation decision, augmentation lineage, the contract results and the runs (with code
    versions) that wrote each of its day's tables.

    Raises:
        LineageError: no training set holds it (naming how many were searched).
    """
    q = query.lower()
    searched = 0
    for t in ([tag] if tag else _tags_newest_first(store)):
        searched += 1
        commit, name, version, rows = _trainset(store, t)
        hit = next((r for r in rows if r["sample_id"] == q), None) or next(
            (r for r in rows if len(q) >= 8 and r["content_sha256"].startswith(q)), None)
        if hit is None:
            continue
        return _describe(store, t, commit, name, version, rows, hit)
    raise LineageError(f"no sample {query!r} in the {searched} training set(s) searched "
                       f"({'tag ' + tag if tag else 'every ' + TAG_PREFIX + '* tag'})")


def _describe(store: LakeFSStore, tag: str, commit: str, name: str, version: str,
              rows: list[dict], hit: dict) -> dict[str, Any]:
    day = key_of(hit["date"], hit.get("source"))
    source = hit
    if hit.get("augmented_from"):
        source = next(r for r in rows if r["sample_id"] == hit["augmented_from"])
    raw = next((r for r in from_parquet_bytes(store.get_object(
        commit, table_key("raw_frames", day))).to_pylist()
        if r["rel_path"] == source["rel_path"]), None)
    curated = next((r for r in from_parquet_bytes(store.get_object(
        commit, table_key("curated_samples", day))).to_pylist()
        if r["sample_id"] == source["sample_id"]), None)
    boxes = [b for b in from_parquet_bytes(store.get_object(
        commit, f"{trainset_root(name, version)}/annotations.parquet")).to_pylist()
        if b["sample_id"] == hit["sample_id"]]
    return {
        "kind": "sample", "sample_id": hit["sample_id"], "tag": tag, "commit": commit,
        "split": hit["split"], "content_sha256": hit["content_sha256"],
        "object_key": hit["object_key"], "date": day,
        "raw_object": None if raw is None else {
            k: (str(raw[k]) if raw.get(k) is not None else None)
            for k in ("object_key", "sha256", "source_uri", "rel_path", "size", "format",
                      "width", "height", "capture_time", "device_id")},
        "label_source": hit["label_source"], "label_revision": hit["label_revision"],
        "boxes": [{k: b[k] for k in ("annotation_id", "class_name", "x_min", "y_min", "x_max",
                                     "y_max")} for b in boxes],
        "curation": None if curated is None else {
            k: curated[k] for k in ("decision", "reasons", "detail", "near_dup_group")},
        "augmentation": None if not hit.get("augmented_from") else {
            "augmented_from": hit["augmented_from"], "policy_version": hit["aug_policy_version"],
            "input_key": hit["aug_input_key"], "params": json.loads(hit["aug_params"] or "{}")},
        "checks": _checks(store, commit, day),
        "runs": _day_runs(store, commit, day),
        "published_by": _run(store.get_commit(commit)),
    }


def lineage(store: LakeFSStore, query: str, tag: str | None = None) -> dict[str, Any]:
    """Lineage of a training-set tag, or of a sample (see :func:`sample_lineage`)."""
    if parse_tag(query) is not None:
        return tag_lineage(store, query)
    return sample_lineage(store, query, tag)
