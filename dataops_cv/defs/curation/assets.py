"""Curation: every frame of a day labelled useful, useless or harmful, with its reasons."""

import dataclasses
import time

import dagster as dg
from pydantic import Field

from dataops_cv.defs.partitions import day_source_partitions
from dataops_cv.defs.resources import ContractsResource, LakeFSResource
from dataops_cv.defs.run_branch import commit_metadata, open_run_branch, table_metadata
from dataops_cv.lib.core.partitions import day_of, source_of
from dataops_cv.lib.core.previews import PREVIEW_FRAMES, preview_markdown
from dataops_cv.lib.curation.decisions import (
    CURATED_SCHEMA,
    CurationSample,
    Match,
    NearPair,
    day_reference,
    decide,
    split_list,
    summary,
)
from dataops_cv.lib.curation.feature_cache import Features
from dataops_cv.lib.curation.label_issues import (
    EarlierScores,
    LabelIssueParams,
    context_boxes,
    find_day_label_issues,
)
from dataops_cv.lib.curation.samples import CurationInputError, curation_samples, one_annotator
from dataops_cv.lib.curation.tables import (
    BOXES_SCHEMA,
    ISSUES_SCHEMA,
    NEAR_PAIRS_SCHEMA,
    SCORES_SCHEMA,
    box_rows,
)
from dataops_cv.lib.curation.thresholds import Limit, limits
from dataops_cv.lib.lakefs.layout import side_key, table_key
from dataops_cv.lib.lakefs.run_branch import RunBranch

ASSET = "curated_samples"


class CurationConfig(dg.Config):
    budget: int = Field(
        default=0, description="Keep at most this many useful frames of the day, chosen for "
        "diversity and class balance; 0 keeps every useful frame.")
    mislabel_min_boxes: int = Field(
        default=200, description="Fewer boxes (the day's plus context) than this: the "
        "mislabel model is not trained and the metadata says so.")
    mislabel_min_frames: int = Field(
        default=20, description="Fewer labeled frames (the day's plus context) than this: the "
        "mislabel model is not trained (its folds are whole frames) and the metadata says so.")
    mislabel_context_days: int = Field(
        default=6, description="Earlier curated days whose boxes also train the mislabel "
        "model (never scored), so a small day is judged by a model that saw enough.")
    mislabel_context_max_boxes: int = Field(default=3000, description="Cap on context boxes.")
    mislabel_min_agreement: float = Field(
        default=0.8, description="Below this share of labels the out-of-fold model agrees with, "
        "its disputes are not used (and the metadata says so).")
    phash_max_hamming: int = Field(
        default=-1, description="Override the near-duplicate hash distance; -1 keeps the "
        "default of dataops_cv.lib.curation.near_duplicates.")
    embedding_min_cosine: float = Field(
        default=-1.0, description="Override the near-duplicate embedding similarity; -1 keeps "
        "the default.")
    workers: int = Field(
        default=0, description="Processes decoding frames for features (in chunks) and "
        "training the mislabel model's folds; 0: every CPU available (or DATAOPS_CV_WORKERS). "
        "Results do not depend on it.")

    def near_duplicates(self):
        from dataops_cv.lib.curation.near_duplicates import NearDupConfig

        overrides = {}
        if self.phash_max_hamming >= 0:
            overrides["phash_max_hamming"] = self.phash_max_hamming
        if self.embedding_min_cosine >= 0:
            overrides["embedding_min_cosine"] = self.embedding_min_cosine
        return dataclasses.replace(NearDupConfig(), **overrides)


def _samples(run: RunBranch, partition: str) -> list[CurationSample]:
    imported_path = table_key("imported_annotations", partition)
    imported = one_annotator(run.rows(imported_path))
    change = run.last_change(imported_path) if imported else None
    try:
        return curation_samples(
            partition, run.day_rows("fused_samples", partition),
            run.day_rows("raw_frames", partition),
            one_annotator(run.day_rows("labeled_annotations", partition)), imported,
            change.id if change else None)
    except CurationInputError as exc:
        raise dg.Failure(f"{ASSET} {partition}: {exc}") from exc


def _day_source(run: RunBranch, partition: str) -> str | None:
    """The partition's source (for a single-source repository's day, the one its frames name,
    else None: the contract's base thresholds apply)."""
    if source_of(partition) is not None:
        return source_of(partition)
    names = {r.get("source") for r in run.day_rows("raw_frames", partition)}
    return names.pop() if len(names) == 1 else None


def _near_pairs(shas: list[str], features: Features, near_config, workers: int,
                earlier: tuple[set[str], list[dict]] | None = None) -> list[NearPair]:
    """The day's near-duplicate pairs over ``shas`` (sorted). ``earlier``: the frames of the last
    run and its pairs, under the same rule and features; their pairs are kept as they were
    (those of frames still here) and only pairs with a new frame are searched, so a re-run after
    a few late frames registers a few pairs, not the day's. Up to 2,048 frames the search
    compares every pair's views, and the result is exactly a full search's; above, candidates
    come from hashed buckets and the kept pairs are those the last search found."""
    from dataops_cv.lib.curation.near_duplicates import group_labels, near_duplicate_pairs

    phash, emb = features.take(shas)
    known, kept = earlier or (set(), [])
    here = set(shas)
    groups = (group_labels(["known" if s in known else None for s in shas]) if known & here
              else None)
    found = near_duplicate_pairs(phash, emb, near_config, groups=groups, workers=workers)
    pairs = [NearPair(shas[int(a)], shas[int(b)], int(h), float(c))
             for a, b, h, c in zip(found.i, found.j, found.hamming, found.cosine, strict=True)]
    if groups is not None:
        pairs += [NearPair(r["a"], r["b"], int(r["hamming"]), float(r["cosine"])) for r in kept
                  if r["a"] in here and r["b"] in here and r["a"] in known and r["b"] in known]
        pairs.sort(key=lambda p: (p.a, p.b))
    return pairs


class _PhaseClock:
    """Wall seconds of each phase of a step, for its log and metadata."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in self.laps.items())


def _other_sources(run: RunBranch, partition: str) -> list[str]:
    """The same day's curated partitions of the other sources."""
    day = day_of(partition)
    return [p for p in run.window_partitions(ASSET, partition, 1)
            if p != partition and day_of(p) == day]


def _elsewhere(run: RunBranch, others: list[str], shas: list[str], features: Features,
               near_config, workers: int) -> dict[str, Match]:
    """This day's frames that copy (exactly or nearly) a useful frame another source of the
    same day already holds: the same scene from two sources is one sample."""
    from dataops_cv.lib.curation.near_duplicates import near_duplicate_pairs

    useful: dict[str, tuple[str, dict]] = {}
    parts: list[Features] = []
    for p in others:
        for r in run.day_rows(ASSET, p):
            if r["decision"] == "useful":
                useful.setdefault(r["sha256"], (p, r))
        theirs = Features.from_table(run.table(side_key(ASSET, p, "_features.parquet")))
        parts.append(theirs.subset([s for s in theirs.shas if s in useful]))
    other_features = Features.concat(parts)
    found: dict[str, Match] = {}
    for sha in shas:
        if sha in useful:
            p, r = useful[sha]
            found[sha] = Match(r["sample_id"], "exact_duplicate",
                               f"same bytes as {r['rel_path']} of source {source_of(p)}")
    theirs = sorted(set(other_features.shas) - set(shas))
    mine = [s for s in shas if s not in found]
    if not theirs or not mine:
        return found
    both = [*mine, *theirs]
    feats = Features.concat([features.subset(mine), other_features.subset(theirs)])
    pairs = near_duplicate_pairs(*feats.take(both), near_config, workers=workers)
    best: dict[str, tuple[float, int, str]] = {}  # mine -> the most similar of theirs
    for a, b, h, c in zip(pairs.i, pairs.j, pairs.hamming, pairs.cosine, strict=True):
        a, b = sorted((int(a), int(b)))
        if a < len(mine) <= b and (both[a] not in best or float(c) > best[both[a]][0]):
            best[both[a]] = (float(c), int(h), both[b])
    for sha, (c, h, other) in best.items():
        p, r = useful[other]
        found[sha] = Match(r["sample_id"], "near_duplicate",
                           f"near copy of {r['rel_path']} of source {source_of(p)} "
                           f"(phash distance {h}, cosine {c:.3f})")
    return found


def _excluded_metadata(run: RunBranch, rows: list[dict], samples: list[CurationSample]) -> dict:
    excluded = [r for r in rows if r["decision"] != "useful"]
    by_sha = {s.sha256: s for s in samples}
    preview = [(run.read(r["object_key"]),
                [(b.class_name, b.x_min, b.y_min, b.x_max, b.y_max)
                 for b in by_sha[r["sha256"]].boxes])
               for r in excluded[:PREVIEW_FRAMES]]
    table_md = "| frame | decision | reasons | detail |\n|---|---|---|---|\n" + "\n".join(
        f"| {r['rel_path']} | {r['decision']} | {', '.join(split_list(r['reasons']))} | "
        f"{(r['detail'] or '').replace('|', '/')} |" for r in excluded[:50])
    return {"excluded": dg.MetadataValue.md(table_md if excluded else "_nothing excluded_"),
            "preview_excluded": dg.MetadataValue.md(
                preview_markdown(preview, "_nothing excluded_"))}


def _limits_markdown(quality_limits: list[Limit], note: str) -> str:
    return f"{note}\n\n| reason | limit | how it was found |\n|---|---|---|\n" + "\n".join(
        f"| {q.reason} | {q.column} {'<' if q.side == 'low' else '>'} {q.value:.1f} | "
        f"{q.basis} |" for q in quality_limits)


@dg.asset(
    partitions_def=day_source_partitions,
    group_name="curation",
    kinds={"lakefs", "parquet", "torch"},
    deps=["fused_samples", "raw_frames", "imported_annotations", "labeled_annotations"],
    code_version="1",
)
def curated_samples(
    context: dg.AssetExecutionContext, config: CurationConfig, lakefs: LakeFSResource,
    contracts: ContractsResource,
) -> dg.MaterializeResult:
    """One day's frames, each labelled useful, useless (duplicate, unlabeled, not selected) or
    harmful (likely mislabeled, tiny box, blurry, badly exposed) with its reasons and evidence."""
    from dataops_cv.lib.curation import mislabels  # torch loads only in this step
    from dataops_cv.lib.curation.feature_cache import day_features
    from dataops_cv.lib.curation.features import FEATURE_VERSION
    from dataops_cv.lib.curation.selection import select_diverse

    partition = str(context.partition_key)
    run = open_run_branch(context, lakefs)
    contract = contracts.contract(ASSET)
    if contract.curation is None:
        raise dg.Failure(f"{contract.path} has no curation section: its thresholds are what "
                         "curation applies")
    near_config = config.near_duplicates()
    fused_path = table_key("fused_samples", partition)
    table_path = table_key(ASSET, partition)
    side = {name: side_key(ASSET, partition, f"_{name}")
            for name in ("inputs.json", "features.parquet", "boxes.parquet",
                         "label_issues.parquet", "near_pairs.parquet", "box_scores.parquet",
                         "mislabel_models.pt")}
    if not run.exists(fused_path):
        raise dg.Failure(f"{ASSET} {partition}: no fused_samples table at {fused_path} "
                         f"on {run.branch}; materialize fused_samples for this day first "
                         "(dataops_job does)")
    context_days = run.earlier_partitions(ASSET, partition, config.mislabel_context_days)
    source = _day_source(run, partition)
    spec = contract.curation.for_source(source)
    history_days = run.earlier_partitions(ASSET, partition, spec.history_days)
    others = _other_sources(run, partition)
    inputs = {"contract": contract.sha256, "config": config.model_dump(exclude={"workers"}),
              "features": FEATURE_VERSION, "near_duplicates": repr(near_config),
              "mislabel": mislabels.MODEL_VERSION,
              **run.checksums([fused_path, *(table_key(a, partition) for a in (
                  "raw_frames", "labeled_annotations", "imported_annotations")),
                  *(side_key(ASSET, d, "_boxes.parquet") for d in context_days),
                  *(table_key(ASSET, d) for d in [*history_days, *others])])}
    if run.unchanged(side["inputs.json"], inputs, [table_path]):
        context.log.info(f"inputs of {partition} unchanged since the last curation; nothing to do")
        commit = run.commit(f"{ASSET} {partition}: inputs unchanged")
        return dg.MaterializeResult(metadata={
            **commit_metadata(run, commit.id), "unchanged": True,
            **table_metadata(table=table_path)})

    clock = _PhaseClock()
    samples = _samples(run, partition)
    keys: dict[str, str] = {}
    for s in samples:
        keys.setdefault(s.sha256, s.object_key)
    last = Features.from_table(run.table(side["features.parquet"]))
    features, computed = day_features(run.read, keys, last, workers=config.workers)
    clock.lap("features")
    if computed:
        context.log.info(f"features computed for {computed} frames, "
                         f"{len(features) - computed} cached")
    samples = [dataclasses.replace(s, phash=features.phash_hex(s.sha256)) for s in samples]
    shas = sorted(keys)
    last_inputs = run.read_json(side["inputs.json"]) or {}
    earlier = None
    if (all(last_inputs.get(k) == inputs[k] for k in ("near_duplicates", "features"))
            and run.exists(side["near_pairs.parquet"])):
        earlier = (set(last.shas), run.rows(side["near_pairs.parquet"]))
    pairs = _near_pairs(shas, features, near_config, config.workers, earlier)
    clock.lap("near_duplicates")
    found = find_day_label_issues(
        run.read, samples,
        context_boxes((run.rows(side_key(ASSET, d, "_boxes.parquet"))
                       for d in reversed(context_days)), samples,
                      config.mislabel_context_max_boxes),
        LabelIssueParams(config.mislabel_min_boxes, config.mislabel_min_agreement,
                         config.mislabel_min_frames, config.workers),
        EarlierScores(run.read(side["mislabel_models.pt"]), run.rows(side["box_scores.parquet"]))
        if run.exists(side["mislabel_models.pt"]) else None)
    clock.lap("mislabels")
    context.log.info(f"mislabel check: {found.note}")

    def select(useful: list[CurationSample], budget: int) -> list[int]:
        vectors = features.take([s.sha256 for s in useful])[1]
        return select_diverse(vectors, budget, [[b.class_name for b in s.boxes] for s in useful])

    # Only the same source's frames: another rig's or dataset's are not what this one looks like.
    history = [r for d in history_days for r in run.rows(table_key(ASSET, d))
               if r.get("source") == source]
    quality_limits, quality_note = limits(
        spec, day_reference(samples, [partition, *history_days], history))
    context.log.info(f"quality limits for source {source}: {quality_note}: "
                     + "; ".join(f"{q.reason} {q.column} {'<' if q.side == 'low' else '>'} "
                                 f"{q.value:.1f}" for q in quality_limits))
    elsewhere = _elsewhere(run, others, shas, features, near_config, config.workers)
    clock.lap("other_sources")
    if elsewhere:
        context.log.info(f"{len(elsewhere)} frames copy frames of other sources of the day "
                         f"({', '.join(source_of(p) or p for p in others)})")
    rows = decide(samples, spec, pairs, found.issues, config.budget, select, quality_limits,
                  elsewhere)
    run.put_rows(table_path, rows, CURATED_SCHEMA)
    run.put_table(side["features.parquet"], features.to_table())
    run.put_rows(side["boxes.parquet"], box_rows(samples), BOXES_SCHEMA)
    run.put_rows(side["label_issues.parquet"], found.rows, ISSUES_SCHEMA)
    run.put_rows(side["near_pairs.parquet"], [dataclasses.asdict(p) for p in pairs],
                 NEAR_PAIRS_SCHEMA)
    if found.models is not None:
        run.put(side["mislabel_models.pt"], found.models)
        run.put_rows(side["box_scores.parquet"], found.scores, SCORES_SCHEMA)
    run.put_json(side["inputs.json"], inputs)
    clock.lap("decide_and_write")
    context.log.info(f"{ASSET} {partition} seconds per phase: {clock}")
    counts = summary(rows)
    commit = run.commit(
        f"{ASSET} {partition}: {counts['useful']} useful, {counts['useless']} useless, "
        f"{counts['harmful']} harmful of {counts['samples']} frames",
        {"curation_contract": contract.sha256[:12]})
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "unchanged": False,
        **{f"count_curation_{k}": int(v) for k, v in counts.items()},
        "near_duplicate_pairs": len(pairs),
        "seconds_per_phase": dg.MetadataValue.json(clock.laps),
        "mislabel_check": dg.MetadataValue.text(found.note),
        "quality_limits": dg.MetadataValue.md(_limits_markdown(quality_limits, quality_note)),
        **_excluded_metadata(run, rows, samples),
        **table_metadata(table=table_path, label_issues_table=side["label_issues.parquet"]),
    })
