"""Curation: every frame of a day labelled useful, useless or harmful, with its reasons."""

import json

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from dataops_cv.defs.acquisition.assets import (
    PREVIEW_FRAMES,
    imported_annotations,
    raw_frames,
    read_table_rows,
)
from dataops_cv.defs.acquisition.checks import CONTRACTS_DIR
from dataops_cv.defs.fusion.assets import fused_samples
from dataops_cv.defs.labeling.assets import labeled_annotations
from dataops_cv.defs.partitions import daily_partitions
from dataops_cv.defs.publishing.run_branch import commit_metadata, open_run_branch
from dataops_cv.defs.resources import LakeFSResource
from dataops_cv.lib.validation.contracts import load_contract
from dataops_cv.lib.curation.decisions import (
    CURATED_SCHEMA,
    BoxIssue,
    CurationSample,
    LabelBox,
    NearPair,
    decide,
    sample_id,
    split_list,
    summary,
)
from dataops_cv.lib.lakefs.layout import earlier_partitions, table_key
from dataops_cv.lib.core.previews import grid_png, markdown_image
from dataops_cv.lib.lakefs.run_branch import RunBranch
from dataops_cv.lib.core.tables import PARQUET_CONTENT_TYPE, to_parquet_bytes

CONTRACT_FILE = "curated_samples.yaml"
# Images decoded per batch for features and crops: bounds memory whatever the day's size.
DECODE_BATCH = 64

FEATURES_SCHEMA = pa.schema([
    ("sha256", pa.string()),
    ("feature_version", pa.string()),
    ("phash", pa.string()),
    ("embedding", pa.list_(pa.float32())),
])
BOXES_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("sha256", pa.string()),
    ("object_key", pa.string()),
    ("annotation_id", pa.string()),
    ("class_name", pa.string()),
    ("class_id", pa.int32()),
    ("x_min", pa.float64()),
    ("y_min", pa.float64()),
    ("x_max", pa.float64()),
    ("y_max", pa.float64()),
    ("label_source", pa.string()),
    ("label_revision", pa.string()),
])
ISSUES_SCHEMA = pa.schema([
    ("annotation_id", pa.string()),
    ("sha256", pa.string()),
    ("given", pa.string()),
    ("suggested", pa.string()),
    ("given_prob", pa.float32()),
    ("suggested_prob", pa.float32()),
    ("is_issue", pa.bool_()),
])


def curation_side_key(partition: str, name: str) -> str:
    """``_features``, ``_boxes``, ``_label_issues`` and ``_inputs`` beside the curated table."""
    return f"tables/curated_samples/date={partition}/{name}"


class CurationConfig(dg.Config):
    budget: int = Field(
        default=0, description="Keep at most this many useful frames of the day, chosen for "
        "diversity and class balance; 0 keeps every useful frame.")
    mislabel_min_boxes: int = Field(
        default=200, description="Fewer boxes (the day's plus context) than this: the "
        "mislabel model is not trained and the metadata says so.")
    mislabel_context_days: int = Field(
        default=6, description="Earlier curated days whose boxes also train the mislabel "
        "model (never scored), so a small day is judged by a model that saw enough.")
    mislabel_context_max_boxes: int = Field(default=3000, description="Cap on context boxes.")
    mislabel_min_agreement: float = Field(
        default=0.8, description="Below this share of labels the out-of-fold model agrees with, "
        "its disputes are not used (and the metadata says so).")
    phash_max_hamming: int = Field(
        default=-1, description="Override the near-duplicate hash distance; -1 keeps the "
        "default of dataops_cv.lib.curation.similarity.")
    embedding_min_cosine: float = Field(
        default=-1.0, description="Override the near-duplicate embedding similarity; -1 keeps "
        "the default.")


def _one_annotator(rows: list[dict]) -> dict[str, list[dict]]:
    """Boxes per image; of several annotators of one image, the first by name (their boxes
    would otherwise double every object)."""
    chosen: dict[str, str] = {}
    for r in rows:
        who = str(r.get("annotator") or "")
        chosen[r["image_sha256"]] = min(chosen.get(r["image_sha256"], who), who)
    out: dict[str, list[dict]] = {}
    for r in rows:
        if str(r.get("annotator") or "") == chosen[r["image_sha256"]]:
            out.setdefault(r["image_sha256"], []).append(r)
    return out


def _label_box(r: dict) -> LabelBox:
    return LabelBox(r["annotation_id"], r["class_name"], r["class_id"], float(r["x_min"]),
                    float(r["y_min"]), float(r["x_max"]), float(r["y_max"]))


def _features(run: RunBranch, keys: dict[str, str], cached: dict[str, dict], version: str,
              log) -> dict[str, dict]:
    """phash and embedding per sha256: from the day's cache when computed by this feature
    version, else decoded once (in bounded batches) and computed."""
    from dataops_cv.lib.curation import similarity as curation

    out = {sha: row for sha, row in cached.items()
           if sha in keys and row["feature_version"] == version}
    todo = sorted(sha for sha in keys if sha not in out)
    for start in range(0, len(todo), DECODE_BATCH):
        batch = todo[start:start + DECODE_BATCH]
        phash, emb = curation.image_features([run.read(keys[sha]) for sha in batch])
        for k, sha in enumerate(batch):
            out[sha] = {"sha256": sha, "feature_version": version,
                        "phash": curation.phash_to_hex(int(phash[k])),
                        "embedding": emb[k].tolist()}
    if todo:
        log.info(f"features computed for {len(todo)} frames, {len(out) - len(todo)} cached")
    return out


def _crops(run: RunBranch, boxes_by_key: dict[str, list[LabelBox]]):
    """Crops, geometry, labels, image ids, annotation ids and whether each box can be judged
    (not too small, not hidden under other boxes), decoding each image once."""
    from dataops_cv.lib.curation import mislabels as mislabel

    crops, geometry, judged, names, groups, ids = [], [], [], [], [], []
    for key in sorted(boxes_by_key):
        boxes = boxes_by_key[key]
        xyxy = [(b.x_min, b.y_min, b.x_max, b.y_max) for b in boxes]
        c, g = mislabel.crop_boxes(run.read(key), xyxy)
        crops.append(c)
        geometry.append(g)
        judged.append(mislabel.judgeable(xyxy))
        names += [b.class_name for b in boxes]
        groups += [key] * len(boxes)
        ids += [b.annotation_id for b in boxes]
    if not crops:
        return None
    return (np.concatenate(crops), np.concatenate(geometry), names, groups, ids,
            np.concatenate(judged))


def _label_issues(run: RunBranch, partition: str, samples: list[CurationSample],
                  config: CurationConfig, log) -> tuple[dict[str, BoxIssue], list[dict], str]:
    """Disputed boxes of the day by confident learning on out-of-fold predictions, the scored
    boxes as rows, and a note for the metadata."""
    from dataops_cv.lib.curation import mislabels as mislabel

    day: dict[str, list[LabelBox]] = {}
    sha_of: dict[str, str] = {}
    for s in samples:
        if s.boxes and s.object_key not in day:
            day[s.object_key] = list(s.boxes)
            sha_of[s.object_key] = s.sha256
    context: dict[str, list[LabelBox]] = {}
    listing = (o.path for o in run.store.list_objects(run.branch, "tables/curated_samples/date="))
    for d in reversed(earlier_partitions(listing, "curated_samples", partition,
                                         config.mislabel_context_days)):
        for r in read_table_rows(run, curation_side_key(d, "_boxes.parquet")):
            if sum(len(v) for v in context.values()) >= config.mislabel_context_max_boxes:
                break
            if r["object_key"] not in day:
                context.setdefault(r["object_key"], []).append(_label_box(r))
    n_day = sum(len(v) for v in day.values())
    n_context = sum(len(v) for v in context.values())
    if n_day == 0:
        return {}, [], "no labeled boxes"
    if n_day + n_context < config.mislabel_min_boxes:
        return {}, [], (f"not checked: {n_day} boxes of the day and {n_context} of earlier days "
                        f"are fewer than mislabel_min_boxes={config.mislabel_min_boxes}")
    scored = _crops(run, day)
    assert scored is not None
    crops, geometry, names, groups, ids, judged = scored
    classes = sorted(set(names) | {b.class_name for v in context.values() for b in v})
    index = {c: i for i, c in enumerate(classes)}
    extra = None
    if context:
        ctx = _crops(run, context)
        assert ctx is not None
        extra = (ctx[0], ctx[1], np.array([index[n] for n in ctx[2]], dtype=np.int64))
    labels = np.array([index[n] for n in names], dtype=np.int64)
    try:
        probs = mislabel.out_of_fold_probs(
            crops, geometry, labels, groups, len(classes),
            mislabel.MislabelConfig(min_boxes=config.mislabel_min_boxes), extra_train=extra)
    except mislabel.NotEnoughData as exc:
        return {}, [], f"not checked: {exc}"
    agreement = float((probs.argmax(axis=1) == labels).mean())
    if agreement < config.mislabel_min_agreement:
        # Confident learning needs a model that mostly agrees with the labels; a weak one's
        # doubts are noise, not evidence against a label.
        return {}, [], (f"not checked: the out-of-fold model agrees with only {agreement:.0%} "
                        f"of {n_day} labels (< {config.mislabel_min_agreement:.0%})")
    found = mislabel.find_label_issues(labels, probs, judged=judged)
    issues: dict[str, BoxIssue] = {}
    rows = []
    for k, aid in enumerate(ids):
        given, suggested = classes[labels[k]], classes[int(found.suggested[k])]
        row = {"annotation_id": aid, "sha256": sha_of[groups[k]], "given": given,
               "suggested": suggested, "given_prob": float(found.self_confidence[k]),
               "suggested_prob": float(found.suggested_prob[k]),
               "is_issue": bool(found.is_issue[k])}
        rows.append(row)
        if row["is_issue"]:
            issues[aid] = BoxIssue(given, suggested, row["given_prob"], row["suggested_prob"])
    log.info(f"mislabel model scored {n_day} boxes (trained also on {n_context} earlier boxes); "
             f"{len(issues)} disputed")
    return issues, rows, (f"{n_day} boxes scored ({n_context} earlier boxes in training), model "
                          f"agrees with {agreement:.0%} of labels, {len(issues)} disputed")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="curation",
    kinds={"lakefs", "parquet", "torch"},
    deps=[fused_samples, raw_frames, imported_annotations, labeled_annotations],
    code_version="1",
)
def curated_samples(
    context: dg.AssetExecutionContext, config: CurationConfig, lakefs: LakeFSResource,
) -> dg.MaterializeResult:
    """One day's frames, each labelled useful, useless (duplicate, unlabeled, not selected) or
    harmful (likely mislabeled, tiny box, blurry, badly exposed) with its reasons and evidence."""
    from dataops_cv.lib.curation import similarity as curation
    from dataops_cv.lib.curation import mislabels as mislabel  # torch loads only in this step

    partition = context.partition_key
    run = open_run_branch(context, lakefs, context.asset_key)
    contract = load_contract(CONTRACTS_DIR / CONTRACT_FILE)
    spec = contract.curation
    if spec is None:
        raise dg.Failure(f"{contract.path} has no curation section: its thresholds are what "
                         "curation applies")
    near_config = curation.NearDupConfig()
    overrides = {}
    if config.phash_max_hamming >= 0:
        overrides["phash_max_hamming"] = config.phash_max_hamming
    if config.embedding_min_cosine >= 0:
        overrides["embedding_min_cosine"] = config.embedding_min_cosine
    if overrides:
        import dataclasses

        near_config = dataclasses.replace(near_config, **overrides)

    fused_path = table_key("fused_samples", partition)
    frames_path = table_key("raw_frames", partition)
    labeled_path = table_key("labeled_annotations", partition)
    imported_path = table_key("imported_annotations", partition)
    table_path = table_key("curated_samples", partition)
    inputs_path = curation_side_key(partition, "_inputs.json")
    features_path = curation_side_key(partition, "_features.parquet")
    boxes_path = curation_side_key(partition, "_boxes.parquet")
    issues_path = curation_side_key(partition, "_label_issues.parquet")

    if not run.exists(fused_path):
        raise dg.Failure(f"curated_samples {partition}: no fused_samples table at {fused_path} "
                         f"on {run.branch}; materialize fused_samples for this day first "
                         "(dataops_job does)")
    listing = [o.path for o in run.store.list_objects(run.branch, "tables/curated_samples/date=")]
    context_days = earlier_partitions(listing, "curated_samples", partition,
                                      config.mislabel_context_days)
    watched = [fused_path, frames_path, labeled_path, imported_path,
               *(curation_side_key(d, "_boxes.parquet") for d in context_days)]
    stats = {p: run.store.stat_object(run.branch, p) for p in watched}
    inputs = {"contract": contract.sha256, "config": config.model_dump(),
              "features": curation.FEATURE_VERSION, "near_duplicates": repr(near_config),
              "mislabel": mislabel.MODEL_VERSION,
              **{p: (s.checksum if s else None) for p, s in stats.items()}}
    if run.exists(inputs_path) and run.exists(table_path) and \
            json.loads(run.read(inputs_path)) == json.loads(json.dumps(inputs)):
        context.log.info(f"inputs of {partition} unchanged since the last curation; nothing to do")
        commit = run.commit(f"curated_samples {partition}: inputs unchanged")
        return dg.MaterializeResult(metadata={
            **commit_metadata(run, commit.id), "unchanged": True,
            "table": dg.MetadataValue.path(table_path)})

    fused = read_table_rows(run, fused_path)
    quality = {r["rel_path"]: r for r in read_table_rows(run, frames_path)}
    labeled = _one_annotator(read_table_rows(run, labeled_path))
    imported = _one_annotator(read_table_rows(run, imported_path))
    imported_revision = None
    if imported:
        change = run.store.last_change(run.branch, imported_path)
        imported_revision = change.id if change else None

    samples: list[CurationSample] = []
    for r in sorted(fused, key=lambda r: r["rel_path"]):
        q = quality.get(r["rel_path"])
        if q is None:
            raise dg.Failure(f"curated_samples {partition}: fused frame {r['rel_path']} has no "
                             f"row in {frames_path}; the day's tables disagree, re-run the day")
        sha = r["sha256"]
        rows, source = (labeled[sha], "labeled") if sha in labeled else (
            (imported[sha], "imported") if sha in imported else ([], "none"))
        revision = (rows[0].get("label_revision") if source == "labeled" else
                    imported_revision if source == "imported" else None)
        samples.append(CurationSample(
            sample_id=sample_id(partition, r["rel_path"]), sha256=sha,
            object_key=r["object_key"], rel_path=r["rel_path"], session_id=r.get("session_id"),
            camera=r.get("camera"), width=int(q["width"]), height=int(q["height"]),
            brightness=q.get("brightness"), contrast=q.get("contrast"),
            laplacian_var=q.get("laplacian_var"),
            boxes=tuple(sorted((_label_box(b) for b in rows), key=lambda b: b.annotation_id)),
            label_source=source, label_revision=revision))

    keys: dict[str, str] = {}
    for s in samples:
        keys.setdefault(s.sha256, s.object_key)
    cached = {r["sha256"]: r for r in read_table_rows(run, features_path)}
    features = _features(run, keys, cached, curation.FEATURE_VERSION, context.log)
    samples = [CurationSample(**{**s.__dict__, "phash": features[s.sha256]["phash"]})
               for s in samples]

    shas = sorted(keys)
    phash = np.array([curation.phash_from_hex(features[s]["phash"]) for s in shas],
                     dtype=np.uint64)
    emb = np.array([features[s]["embedding"] for s in shas], dtype=np.float32).reshape(
        len(shas), -1)
    found = curation.near_duplicate_pairs(phash, emb, near_config)
    pairs = [NearPair(shas[int(a)], shas[int(b)], int(h), float(c))
             for a, b, h, c in zip(found.i, found.j, found.hamming, found.cosine, strict=True)]

    issues, issue_rows, mislabel_note = _label_issues(run, partition, samples, config,
                                                      context.log)

    def select(useful: list[CurationSample], budget: int) -> list[int]:
        vectors = np.array([features[s.sha256]["embedding"] for s in useful], dtype=np.float32)
        return curation.select_diverse(vectors, budget,
                                       [[b.class_name for b in s.boxes] for s in useful])

    rows = decide(samples, spec, pairs, issues, config.budget, select)
    box_rows = [{"sample_id": s.sample_id, "sha256": s.sha256, "object_key": s.object_key,
                 "annotation_id": b.annotation_id, "class_name": b.class_name,
                 "class_id": b.class_id, "x_min": b.x_min, "y_min": b.y_min, "x_max": b.x_max,
                 "y_max": b.y_max, "label_source": s.label_source,
                 "label_revision": s.label_revision}
                for s in samples for b in s.boxes]
    run.put(table_path, to_parquet_bytes(rows, CURATED_SCHEMA), PARQUET_CONTENT_TYPE)
    run.put(features_path, to_parquet_bytes([features[s] for s in shas], FEATURES_SCHEMA),
            PARQUET_CONTENT_TYPE)
    run.put(boxes_path, to_parquet_bytes(box_rows, BOXES_SCHEMA), PARQUET_CONTENT_TYPE)
    run.put(issues_path, to_parquet_bytes(issue_rows, ISSUES_SCHEMA), PARQUET_CONTENT_TYPE)
    run.put(inputs_path, json.dumps(inputs, sort_keys=True).encode(), "application/json")
    counts = summary(rows)
    commit = run.commit(
        f"curated_samples {partition}: {counts['useful']} useful, {counts['useless']} useless, "
        f"{counts['harmful']} harmful of {counts['samples']} frames",
        {"curation_contract": contract.sha256[:12]})

    excluded = [r for r in rows if r["decision"] != "useful"]
    by_sha = {s.sha256: s for s in samples}
    preview = [(run.read(r["object_key"]),
                [(b.class_name, b.x_min, b.y_min, b.x_max, b.y_max)
                 for b in by_sha[r["sha256"]].boxes])
               for r in excluded[:PREVIEW_FRAMES]]
    table_md = "| frame | decision | reasons | detail |\n|---|---|---|---|\n" + "\n".join(
        f"| {r['rel_path']} | {r['decision']} | {', '.join(split_list(r['reasons']))} | "
        f"{(r['detail'] or '').replace('|', '/')} |" for r in excluded[:50])
    return dg.MaterializeResult(metadata={
        **commit_metadata(run, commit.id),
        "unchanged": False,
        **{f"count_curation_{k}": int(v) for k, v in counts.items()},
        "near_duplicate_pairs": len(pairs),
        "mislabel_check": dg.MetadataValue.text(mislabel_note),
        "excluded": dg.MetadataValue.md(table_md if excluded else "_nothing excluded_"),
        "preview_excluded": dg.MetadataValue.md(
            markdown_image(grid_png(preview)) if preview else "_nothing excluded_"),
        "table": dg.MetadataValue.path(table_path),
        "label_issues_table": dg.MetadataValue.path(issues_path),
    })
