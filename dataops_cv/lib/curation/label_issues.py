"""Likely mislabeled boxes of a day: confident learning on out-of-fold predictions of the crop
classifier (:mod:`dataops_cv.lib.curation.mislabels`), with earlier days' boxes as extra
training data that is never scored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from dataops_cv.lib.core.parallel import chunked, resolve_workers
from dataops_cv.lib.curation.decisions import BoxIssue, CurationSample, LabelBox


@dataclass(frozen=True)
class LabelIssueParams:
    min_boxes: int = 200  # fewer boxes (day + context) than this: no model, and the note says so
    min_agreement: float = 0.8  # a weaker model's disputes are not used
    # Folds are whole frames: with only a few, each fold's model learns other scenes, and what it
    # disputes is the difference between scenes (or sub-datasets), not labels.
    min_frames: int = 20
    workers: int = 0  # threads decoding crops and training folds; <= 0: every CPU (same result)


# A re-run may score at most this share of the day's boxes with the models of an earlier run
# (late frames, corrected labels) before the folds are trained again on everything.
MAX_LATE_SHARE = 0.1


@dataclass
class LabelIssues:
    issues: dict[str, BoxIssue] = field(default_factory=dict)  # annotation id -> dispute
    rows: list[dict] = field(default_factory=list)  # every scored box (ISSUES_SCHEMA)
    note: str = ""  # what was checked, or why nothing was
    scores: list[dict] = field(default_factory=list)  # every box's probabilities (SCORES_SCHEMA)
    models: bytes | None = None  # the fold models that scored them (mislabels.save_models)


@dataclass(frozen=True)
class EarlierScores:
    """What an earlier run of the day left: its fold models and every box's scores."""

    models: bytes
    scores: Sequence[Mapping]  # SCORES_SCHEMA rows


def box_key(object_key: str, b: LabelBox) -> str:
    """What a box's probabilities depend on: its image, id, label and place."""
    return hashlib.sha256("\x1f".join(map(str, (
        object_key, b.annotation_id, b.class_name, b.x_min, b.y_min, b.x_max, b.y_max)))
        .encode()).hexdigest()[:32]


def _crops(read: Callable[[str], bytes], boxes_by_key: Mapping[str, Sequence[LabelBox]],
           workers: int = 1):
    """Crops, geometry, labels, image ids, annotation ids and whether each box can be judged
    (not too small, not hidden under other boxes), decoding each image once.

    Bytes are read here, in key order, a bounded chunk at a time; the chunk's images decode and
    crop in ``workers`` threads (Pillow releases the GIL while decoding and resizing), so the
    result does not depend on ``workers``."""
    from dataops_cv.lib.curation import mislabels

    keys = sorted(boxes_by_key)
    if not keys:
        return None
    xyxy_of = {k: [(b.x_min, b.y_min, b.x_max, b.y_max) for b in boxes_by_key[k]] for k in keys}
    workers = min(resolve_workers(workers), len(keys))
    crops, geometry, judged, names, groups, ids = [], [], [], [], [], []
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for chunk in chunked(keys, 8 * workers):
            data = [read(k) for k in chunk]
            jobs = [(d, xyxy_of[k]) for d, k in zip(data, chunk)]
            done = (pool.map(lambda j: mislabels.crop_boxes(*j), jobs) if pool
                    else (mislabels.crop_boxes(*j) for j in jobs))
            for key, (c, g) in zip(chunk, done):
                boxes = boxes_by_key[key]
                crops.append(c)
                geometry.append(g)
                judged.append(mislabels.judgeable(xyxy_of[key]))
                names += [b.class_name for b in boxes]
                groups += [key] * len(boxes)
                ids += [b.annotation_id for b in boxes]
    finally:
        if pool:
            pool.shutdown()
    return (np.concatenate(crops), np.concatenate(geometry), names, groups, ids,
            np.concatenate(judged))


def _rows(found, ids, groups, labels, classes, sha_of) -> LabelIssues:
    out = LabelIssues()
    for k, aid in enumerate(ids):
        given, suggested = classes[labels[k]], classes[int(found.suggested[k])]
        row = {"annotation_id": aid, "sha256": sha_of[groups[k]], "given": given,
               "suggested": suggested, "given_prob": float(found.self_confidence[k]),
               "suggested_prob": float(found.suggested_prob[k]),
               "is_issue": bool(found.is_issue[k])}
        out.rows.append(row)
        if row["is_issue"]:
            out.issues[aid] = BoxIssue(given, suggested, row["given_prob"],
                                       row["suggested_prob"])
    return out


def context_boxes(days: Iterable[Iterable[Mapping]], samples: Sequence[CurationSample],
                  max_boxes: int) -> dict[str, list[LabelBox]]:
    """Boxes of earlier days (``days``: their curated boxes rows, newest day first) by object
    key, leaving out the images the day itself labels, up to about ``max_boxes``."""
    from dataops_cv.lib.curation.samples import label_box

    own = {s.object_key for s in samples if s.boxes}
    out: dict[str, list[LabelBox]] = {}
    for rows in days:
        for r in rows:
            if sum(len(v) for v in out.values()) >= max_boxes:
                break
            if r["object_key"] not in own:
                out.setdefault(r["object_key"], []).append(label_box(r))
    return out


def _signature(config, classes: Sequence[str], context: Mapping[str, Sequence[LabelBox]]
               ) -> str:
    """What an earlier run's models must have been trained under to score today's boxes."""
    from dataops_cv.lib.curation import mislabels

    ctx = sorted(box_key(k, b) for k, boxes in context.items() for b in boxes)
    return hashlib.sha256(json.dumps([mislabels.MODEL_VERSION, repr(config), list(classes),
                                      ctx]).encode()).hexdigest()


def _rescore(read, day: Mapping[str, Sequence[LabelBox]], keys: Sequence[str], groups,
             classes: Sequence[str], signature: str, earlier: EarlierScores | None,
             workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bytes] | None:
    """Probabilities, folds and late flags of every box (in ``_crops`` order) from an earlier
    run of the day: its scores where a box is unchanged, its models for the rest (a box of an
    image it saw by that image's fold model, a new image's by all of them). None when there is
    no such run, it trained under another signature, or more than ``MAX_LATE_SHARE`` of the
    boxes would then be scored late."""
    from dataops_cv.lib.curation import mislabels

    if earlier is None:
        return None
    loaded = mislabels.load_models(earlier.models)
    if loaded is None or loaded[1].get("signature") != signature:
        return None
    models, _ = loaded
    before = {r["box_key"]: r for r in earlier.scores}
    image_fold = {r["object_key"]: int(r["fold"]) for r in earlier.scores
                  if not r["late"] and r["fold"] >= 0}
    changed = [k for k, key in enumerate(keys) if key not in before]
    late = np.array([key not in before or bool(before[key]["late"]) for key in keys])
    if late.sum() > MAX_LATE_SHARE * len(keys):
        return None
    probs = np.zeros((len(keys), len(classes)), dtype=np.float32)
    fold = np.full(len(keys), -1, dtype=np.int64)
    for k, key in enumerate(keys):
        if key in before:
            probs[k] = np.asarray(before[key]["probs"], dtype=np.float32)
            fold[k] = int(before[key]["fold"])
    if changed:
        images = sorted({groups[k] for k in changed})
        cropped = _crops(read, {i: day[i] for i in images}, workers)
        assert cropped is not None
        at = {(g, aid): n for n, (g, aid) in enumerate(zip(cropped[3], cropped[4]))}
        ids = [b.annotation_id for i in sorted(day) for b in day[i]]
        rows = np.array([at[groups[k], ids[k]] for k in changed])
        fold[changed] = [image_fold.get(groups[k], -1) for k in changed]
        probs[changed] = mislabels.score_with(models, cropped[0][rows], cropped[1][rows],
                                              fold[changed], len(classes))
    return probs, fold, late, earlier.models


def find_day_label_issues(read: Callable[[str], bytes], samples: Sequence[CurationSample],
                          context: Mapping[str, Sequence[LabelBox]],
                          params: LabelIssueParams,
                          earlier: EarlierScores | None = None) -> LabelIssues:
    """Score every box of the day's samples with a model that never trained on its image.

    A re-run of the day with ``earlier`` (what the last run left) under the same model,
    settings, classes and earlier-day boxes keeps the scores of unchanged boxes and scores the
    others with the last run's fold models, each by a model that never trained on its image,
    decoding only their images; once more than ``MAX_LATE_SHARE`` of the boxes would be scored
    that way, the folds train again on everything.

    Args:
        read: object key -> image bytes.
        context: boxes of earlier days by object key (see :func:`context_boxes`): they join
            every fold's training data and are never scored.
    """
    from dataops_cv.lib.curation import mislabels

    day: dict[str, list[LabelBox]] = {}
    sha_of: dict[str, str] = {}
    for s in samples:
        if s.boxes and s.object_key not in day:
            day[s.object_key] = list(s.boxes)
            sha_of[s.object_key] = s.sha256
    n_day = sum(len(v) for v in day.values())
    n_context = sum(len(v) for v in context.values())
    if n_day == 0:
        return LabelIssues(note="no labeled boxes")
    if n_day + n_context < params.min_boxes:
        return LabelIssues(note=f"not checked: {n_day} boxes of the day and {n_context} of "
                           f"earlier days are fewer than mislabel_min_boxes={params.min_boxes}")
    if len(day) + len(context) < params.min_frames:
        return LabelIssues(note=f"not checked: {len(day)} labeled frames of the day and "
                           f"{len(context)} of earlier days are fewer than "
                           f"mislabel_min_frames={params.min_frames}")
    order = sorted(day)
    names = [b.class_name for k in order for b in day[k]]
    groups = [k for k in order for _ in day[k]]
    ids = [b.annotation_id for k in order for b in day[k]]
    keys = [box_key(k, b) for k in order for b in day[k]]
    judged = np.concatenate([mislabels.judgeable(
        [(b.x_min, b.y_min, b.x_max, b.y_max) for b in day[k]]) for k in order])
    classes = sorted(set(names) | {b.class_name for v in context.values() for b in v})
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    config = mislabels.MislabelConfig(min_boxes=params.min_boxes)
    signature = _signature(config, classes, context)
    again = _rescore(read, day, keys, groups, classes, signature, earlier,
                     params.workers)
    if again is not None:
        probs, fold, late, models = again
    else:
        crops, geometry, *_ = _crops(read, day, params.workers)
        extra = None
        if context:
            ctx = _crops(read, context, params.workers)
            assert ctx is not None
            extra = (ctx[0], ctx[1], np.array([index[n] for n in ctx[2]], dtype=np.int64))
        try:
            result = mislabels.out_of_fold(crops, geometry, labels, groups, len(classes),
                                           config, extra_train=extra, workers=params.workers)
        except mislabels.NotEnoughData as exc:
            return LabelIssues(note=f"not checked: {exc}")
        probs, fold, late = result.probs, result.fold, np.zeros(len(keys), dtype=bool)
        models = mislabels.save_models(result.models, {"signature": signature,
                                                       "classes": list(classes)})
    scores = [{"box_key": key, "annotation_id": aid, "object_key": g, "fold": int(f),
               "late": bool(lt), "probs": p.tolist()}
              for key, aid, g, f, lt, p in zip(keys, ids, groups, fold, late, probs)]
    agreement = float((probs.argmax(axis=1) == labels).mean())
    if agreement < params.min_agreement:
        # Confident learning needs a model that mostly agrees with the labels; a weak one's
        # doubts are noise, not evidence against a label.
        return LabelIssues(note=f"not checked: the out-of-fold model agrees with only "
                           f"{agreement:.0%} of {n_day} labels (< {params.min_agreement:.0%})")
    found = mislabels.find_label_issues(labels, probs, judged=judged)
    out = _rows(found, ids, groups, labels, classes, sha_of)
    out.scores, out.models = scores, models
    how = (f"{int(late.sum())} by the last run's models, the rest kept"
           if again is not None else f"{n_context} earlier boxes in training")
    out.note = (f"{n_day} boxes scored ({how}), model agrees with {agreement:.0%} of labels, "
                f"{len(out.issues)} disputed")
    return out
