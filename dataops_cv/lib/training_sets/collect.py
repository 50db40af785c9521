"""What goes into a training set: the useful samples of the curated days, their boxes and
augmented variants, grouped so that nothing leaks between splits, and the version that names
exactly those inputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from dataops_cv.lib.core.annotations import XYXY
from dataops_cv.lib.core.partitions import day_of, key_of, source_of
from dataops_cv.lib.curation.feature_cache import Features
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.run_branch import RefView
from dataops_cv.lib.training_sets.writer import (
    INPUTS_PATH,
    MANIFEST_PATH,
    VERSION_RE,
    Box,
    SampleIn,
)

# Bumped when the same inputs would give other bytes: it is part of every version.
# 2: augmented variants are recipes, not shard rows; 3: shared per-day shards, sticky splits
BUILD_VERSION = "3"
CURATED = "curated_samples"
AUGMENTED = "augmented_samples"


def input_tables(days: Iterable[str]) -> list[str]:
    """Every table a training set over ``days`` is built from (their checksums name it)."""
    return [p for d in days for p in (
        layout.table_key(CURATED, d), layout.side_key(CURATED, d, "_boxes.parquet"),
        layout.side_key(CURATED, d, "_features.parquet"), layout.table_key(AUGMENTED, d),
        layout.side_key(AUGMENTED, d, "_annotations.parquet"))]


def version_of(partition: str, inputs_json: bytes) -> str:
    """``v<YYYYMMDD>-<hash of inputs.json>``: the same inputs always give the same version, the
    same paths and the same bytes, so a rebuild is a no-op diff and a tag names one content."""
    return f"v{day_of(partition).replace('-', '')}-{hashlib.sha256(inputs_json).hexdigest()[:10]}"


def inputs_document(partition: str, name: str, fractions: Mapping[str, float], seed: str,
                    include_augmented: bool, max_shard_mb: int, feature_version: str,
                    checksums: Mapping[str, str | None], previous: str | None = None) -> bytes:
    """``inputs.json``: the build, the configuration, every input table's checksum and the
    earlier version whose splits this one keeps (None: split from scratch)."""
    inputs = {"build": BUILD_VERSION, "name": name, "partition": partition,
              "fractions": dict(sorted(fractions.items())), "seed": seed,
              "include_augmented": include_augmented, "max_shard_mb": max_shard_mb,
              "features": feature_version, "tables": dict(checksums), "previous": previous}
    return json.dumps(inputs, sort_keys=True, indent=1).encode()


def previous_version(view: RefView, name: str, partition: str,
                     inputs_json: bytes | None = None) -> str | None:
    """The version of ``name`` whose splits a build for ``partition`` keeps (None: none).

    A version of the same day built from exactly these inputs (``inputs_json``, whatever its
    own ``previous``) answers with the previous version it kept: the same inputs then name the
    same version, so a re-run is a no-op and a rebuild gives the same bytes. Otherwise it is
    the latest version on ``view``: of the latest capture day, the one whose manifest was
    committed last, whichever partition built it — so a day built again after a change keeps
    the splits its earlier version gave. Each version was sticky to the one before it, so the
    latest carries every split ever given.
    """
    prefix = f"{layout.TRAINSETS}{name}/"
    by_day: dict[str, list[str]] = {}
    for obj in view.list(prefix + "v"):
        version, _, rel = obj.path[len(prefix):].partition("/")
        if rel == MANIFEST_PATH and VERSION_RE.match(version):
            by_day.setdefault(version[1:9], []).append(version)
    if inputs_json is not None:
        mine = _without_previous(json.loads(inputs_json))
        for v in sorted(by_day.get(day_of(partition).replace("-", ""), [])):
            doc = view.read_json(layout.trainset_key(name, v, INPUTS_PATH), {}) or {}
            if _without_previous(doc) == mine:
                return doc.get("previous")
    if not by_day:
        return None
    latest = sorted(by_day[max(by_day)])
    if len(latest) > 1:
        def committed(v: str) -> int:
            c = view.last_change(layout.trainset_key(name, v, MANIFEST_PATH))
            return c.creation_date if c else 0
        latest.sort(key=lambda v: (committed(v), v))
    return latest[-1]


def _without_previous(doc: Mapping) -> dict:
    return {k: v for k, v in doc.items() if k != "previous"}


def prior_placement(view: RefView, name: str, version: str | None
                    ) -> tuple[dict[str, str], list[str]]:
    """The split of every original of an earlier version (sample_id -> split) and the shards
    its manifest names; ({}, []) for None."""
    if version is None:
        return {}, []
    rows = view.rows(layout.trainset_key(name, version, MANIFEST_PATH),
                     ["sample_id", "split", "augmented_from", "shard"])
    originals = [r for r in rows if r["augmented_from"] is None]
    return ({r["sample_id"]: r["split"] for r in originals},
            sorted({r["shard"] for r in originals if r["shard"]}))


@dataclass
class Collected:
    """Originals (group keys not yet assigned) with the features that group them, and the
    augmented variants of the kept originals."""

    originals: list[SampleIn] = field(default_factory=list)
    sessions: list[str | None] = field(default_factory=list)
    # Curated features of the originals, a part per day (row k of them all: originals[k]).
    feature_parts: list[Features] = field(default_factory=list)
    augmented: list[tuple[SampleIn, dict, tuple[Box, ...]]] = field(default_factory=list)
    cross_day_copies: int = 0  # useful frames whose bytes an earlier day already holds

    def features(self) -> Features:
        """The originals' features, row k for ``originals[k]``."""
        return Features.concat(self.feature_parts)


def _box(b: Mapping, class_id: Callable[[Mapping], int]) -> Box:
    return Box(b["annotation_id"], b["class_name"], class_id(b), *(b[c] for c in XYXY))


def _collect_day(view: RefView, day: str, class_id, include_augmented: bool,
                 seen_sha: dict[str, str], out: Collected) -> None:
    useful = [r for r in view.day_rows(CURATED, day) if r["decision"] == "useful"]
    boxes: dict[str, list[Box]] = {}
    for b in view.rows(layout.side_key(CURATED, day, "_boxes.parquet")):
        boxes.setdefault(b["sample_id"], []).append(_box(b, class_id))
    features = Features.from_table(
        view.table(layout.side_key(CURATED, day, "_features.parquet")))
    kept_by_sha: dict[str, str] = {}
    for r in sorted(useful, key=lambda r: r["sample_id"]):
        if r["sha256"] in seen_sha:  # the same bytes on an earlier day: one sample
            out.cross_day_copies += 1
            continue
        seen_sha[r["sha256"]] = r["sample_id"]
        kept_by_sha[r["sha256"]] = r["sample_id"]
        if r["sha256"] not in features:
            raise KeyError(f"curated {day} has no features for useful frame {r['sample_id']} "
                           f"({r['sha256'][:12]}); re-materialize curated_samples {day}")
        out.sessions.append(r["session_id"])
        out.originals.append(SampleIn(
            sample_id=r["sample_id"], content_sha256=r["sha256"], object_key=r["object_key"],
            date=day_of(day), source=source_of(day), rel_path=r["rel_path"], session_id=r["session_id"], camera=r["camera"],
            width=r["width"], height=r["height"], group_key="",
            boxes=tuple(boxes.get(r["sample_id"], ())), label_source=r["label_source"],
            label_revision=r["label_revision"] or ""))
    out.feature_parts.append(features.subset(list(kept_by_sha)))
    if not include_augmented or not kept_by_sha:
        return
    aug_boxes: dict[str, list[Box]] = {}
    for b in view.rows(layout.side_key(AUGMENTED, day, "_annotations.parquet")):
        aug_boxes.setdefault(b["input_key"], []).append(_box(b, class_id))
    by_id = {s.sample_id: s for s in out.originals}
    for v in view.day_rows(AUGMENTED, day):
        source = kept_by_sha.get(v["source_sha256"])
        if source is not None:
            out.augmented.append((by_id[source], v, tuple(sorted(
                aug_boxes.get(v["input_key"], ()), key=lambda b: b.annotation_id))))


def collect(view: RefView, days: Sequence[str], class_id: Callable[[Mapping], int],
            include_augmented: bool) -> Collected:
    """The useful samples of ``days`` (oldest first) as read on ``view``; of identical bytes on
    several days only the first is a sample."""
    out = Collected()
    seen_sha: dict[str, str] = {}
    for day in days:
        _collect_day(view, day, class_id, include_augmented, seen_sha, out)
    return out


def window_pairs(view: RefView, days: Sequence[str], shas: Sequence[str],
                 day_keys: Sequence[str], sessions: Sequence[str | None], features: Features,
                 workers: int = 0) -> tuple[list[int], list[int]]:
    """Near-duplicate pairs ``(i, j)``, ``i < j``, of the samples ``shas`` (of the curated
    partitions ``day_keys``, capture ``sessions``; ``features`` row k is ``shas[k]``) that can
    join leakage groups: across capture sessions (a session is one group anyway), within a day
    or across days.

    A day whose curation kept its pairs under the rule the training set applies (the default
    :class:`NearDupConfig`, the same features) gives its pairs from that table; only pairs
    across days, and within the other days, are searched. The groups come out as a full
    search's would: curation searched every pair of its day.
    """
    from dataops_cv.lib.curation.features import FEATURE_VERSION
    from dataops_cv.lib.curation.near_duplicates import (
        NearDupConfig,
        group_labels,
        near_duplicate_pairs,
    )

    config = NearDupConfig()
    index = {sha: k for k, sha in enumerate(shas)}
    covered: set[str] = set()
    pairs: set[tuple[int, int]] = set()
    for day in days:
        inputs = view.read_json(layout.side_key(CURATED, day, "_inputs.json")) or {}
        table = view.table(layout.side_key(CURATED, day, "_near_pairs.parquet"), ["a", "b"])
        if (inputs.get("near_duplicates") != repr(config)
                or inputs.get("features") != FEATURE_VERSION or table is None):
            continue
        covered.add(day)
        for sa, sb in zip(table.column("a").to_pylist(), table.column("b").to_pylist(),
                          strict=True):
            a, b = index.get(sa), index.get(sb)
            if a is not None and b is not None and day_keys[a] == day_keys[b] == day:
                pairs.add((min(a, b), max(a, b)))
    labels = group_labels([f"day {d}" if d in covered else s
                           for d, s in zip(day_keys, sessions, strict=True)])
    searched = near_duplicate_pairs(*features.take(shas), config, groups=labels,
                                    workers=workers)
    pairs.update(zip(searched.i.tolist(), searched.j.tolist()))
    ordered = sorted(pairs)
    return [a for a, _ in ordered], [b for _, b in ordered]


def collected_pairs(view: RefView, days: Sequence[str], found: Collected,
                    workers: int = 0) -> tuple[list[int], list[int]]:
    """:func:`window_pairs` of the collected originals."""
    return window_pairs(view, days, [s.content_sha256 for s in found.originals],
                        [key_of(s.date, s.source) for s in found.originals], found.sessions,
                        found.features(), workers)


def leakage_groups(keys: Sequence[str], sessions: Sequence[str | None],
                   pairs: Iterable[tuple[int, int]]) -> list[str]:
    """Leakage group per sample: samples of one capture session, and near-duplicates across
    sessions or days, end up together; the group's key is its smallest session (or sample)."""
    parent = list(range(len(keys)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[str, int] = {}
    for k, s in enumerate(sessions):
        if s:
            union(first.setdefault(s, k), k)
    for a, b in pairs:
        union(int(a), int(b))
    label: dict[int, str] = {}
    for k in range(len(keys)):
        root = find(k)
        name = sessions[k] or keys[k]
        label[root] = min(label.get(root, name), name)
    return [label[find(k)] for k in range(len(keys))]


def augmented_sample_id(source_id: str, input_key: str) -> str:
    return hashlib.sha256("\x00".join((source_id, "augmented", input_key)).encode()
                          ).hexdigest()[:16]


def grouped_samples(collected: Collected, group_of: Sequence[str]) -> list[SampleIn]:
    """The originals with their leakage groups, then every augmented variant in its source's
    group (so it can only land in its source's split)."""
    samples = [replace(s, group_key=g)
               for s, g in zip(collected.originals, group_of, strict=True)]
    groups_by_id = {s.sample_id: s.group_key for s in samples}
    for src, v, vboxes in collected.augmented:
        samples.append(SampleIn(
            sample_id=augmented_sample_id(src.sample_id, v["input_key"]),
            content_sha256=v["sha256"], object_key=v["object_key"], date=src.date, source=src.source,
            rel_path=src.rel_path, session_id=src.session_id, camera=src.camera,
            width=v["width"], height=v["height"], group_key=groups_by_id[src.sample_id],
            boxes=vboxes, label_source=src.label_source, label_revision=src.label_revision,
            augmented_from=src.sample_id, aug_policy_version=v["policy_version"],
            aug_input_key=v["input_key"], aug_params=v["params"]))
    return samples
