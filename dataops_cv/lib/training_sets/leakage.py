"""The audit of a written training set: nothing leaks between splits, and every shard the
manifest names is there."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dataops_cv.lib.curation.feature_cache import Features
from dataops_cv.lib.lakefs import layout

# The near-duplicate pairs (i, j) among manifest rows of originals that have features (the
# default: every pair across capture sessions, searched from their features).
PairFinder = Callable[[Sequence[Mapping]], tuple[Sequence[int], Sequence[int]]]


@dataclass
class LeakageReport:
    problems: list[str] = field(default_factory=list)
    groups: int = 0
    straddling_groups: int = 0
    straddling_near_duplicates: int = 0
    missing_shards: int = 0


def _split_problems(rows: Sequence[Mapping], report: LeakageReport) -> None:
    if not rows:
        report.problems.append("no manifest rows")
    split_of = {r["sample_id"]: r["split"] for r in rows}
    if len(split_of) != len(rows):
        report.problems.append(f"{len(rows) - len(split_of)} repeated sample ids")
    groups: dict[str, set[str]] = {}
    for r in rows:
        groups.setdefault(r["group_key"], set()).add(r["split"])
    straddling = sorted(g for g, s in groups.items() if len(s) > 1)
    report.groups, report.straddling_groups = len(groups), len(straddling)
    if straddling:
        report.problems.append(f"{len(straddling)} group(s) in several splits, e.g. "
                               f"{straddling[:3]}")
    for r in rows:
        if r["augmented_from"]:
            if r["split"] != "train" or split_of.get(r["augmented_from"]) != "train":
                report.problems.append(
                    f"augmented {r['sample_id']} is in {r['split']}, its source "
                    f"{r['augmented_from']} in {split_of.get(r['augmented_from'])}")
                break


def _near_duplicate_problems(rows: Sequence[Mapping], features: Features,
                             report: LeakageReport, find_pairs: PairFinder | None) -> None:
    from dataops_cv.lib.curation.near_duplicates import group_labels, near_duplicate_pairs

    originals = [r for r in rows if not r["augmented_from"]]
    # A capture session must lie in one split; checked from the manifest's own session ids,
    # which lets the near-duplicate search below leave out the pairs within a session.
    splits_of: dict[str, set[str]] = {}
    for r in originals:
        if r["session_id"]:
            splits_of.setdefault(r["session_id"], set()).add(r["split"])
    split_sessions = sorted(s for s, splits in splits_of.items() if len(splits) > 1)
    if split_sessions:
        report.problems.append(f"{len(split_sessions)} capture session(s) in several splits, "
                               f"e.g. {split_sessions[:3]}")
    known = [r for r in originals if r["content_sha256"] in features]
    if len(known) != len(originals):
        report.problems.append(f"{len(originals) - len(known)} samples have no curated features")
    if not known:
        return
    if find_pairs is not None:
        pair_i, pair_j = find_pairs(known)
    else:
        found = near_duplicate_pairs(*features.take([r["content_sha256"] for r in known]),
                                     groups=group_labels([r["session_id"] for r in known]))
        pair_i, pair_j = found.i.tolist(), found.j.tolist()
    cross = sum(1 for a, b in zip(pair_i, pair_j, strict=True)
                if known[int(a)]["split"] != known[int(b)]["split"])
    report.straddling_near_duplicates = cross
    if cross:
        report.problems.append(f"{cross} near-duplicate pair(s) straddle splits")


def audit_training_set(rows: Sequence[Mapping], features: Features, root: str | None,
                       exists: Callable[[str], bool],
                       find_pairs: PairFinder | None = None) -> LeakageReport:
    """What is wrong with a training set's manifest ``rows``, if anything.

    The near-duplicate pairs come from curation (its ``features``, and ``find_pairs`` where it
    kept its days' pairs), never from the writer, so a bug in the split cannot hide itself.

    Args:
        root: the version folder the shards were written under (None: unknown).
        exists: whether an object path exists.
        find_pairs: the pairs among the originals that have features; None searches every
            pair across capture sessions.
    """
    report = LeakageReport()
    _split_problems(rows, report)
    _near_duplicate_problems(rows, features, report, find_pairs)
    # Augmented variants are recipes without a shard of their own (readers render them).
    recipes = [r for r in rows if r["shard"] is None]
    bad = [r["sample_id"] for r in recipes if not (r["augmented_from"] and r["aug_params"])]
    if bad:
        report.problems.append(f"{len(bad)} sample(s) without a shard that are not augmented "
                               f"recipes, e.g. {bad[:3]}")
    missing = sorted(shard for shard in {r["shard"] for r in rows if r["shard"] is not None}
                     if root is None or not exists(layout.trainset_shard_key(root, shard)))
    report.missing_shards = len(missing)
    if missing:
        report.problems.append(f"{len(missing)} shard(s) missing under {root}, e.g. "
                               f"{missing[:3]}")
    return report
