"""The curation decision of every sample of a day: useful, useless or harmful, and why.

One row per frame of the day (exact copies keep their own row). The evidence (quality metrics
from ingest, the contract's thresholds, near-duplicate pairs, label issues) is computed elsewhere;
:func:`decide` only combines it, so the rules are in one place and can be read in one sitting:

* **harmful** (kept out because training on it hurts): ``likely_mislabeled`` (boxes whose class
  an out-of-fold model confidently disputes), ``tiny_box`` (boxes too small to learn from) —
  both when they are more than ``max_bad_box_share`` of the frame's boxes (its disputed boxes
  are counted in ``mislabeled_boxes`` either way, for the audit queue),
  ``blurry``, ``underexposed``, ``overexposed``, ``low_contrast`` (an outlier of its source's
  own frames, or past an absolute floor: :mod:`dataops_cv.lib.curation.thresholds`);
* **useless** (kept out because it adds nothing): ``exact_duplicate`` (same bytes as another
  frame of the day), ``near_duplicate`` (a re-encoded, resized or cropped copy of a frame that is
  kept), ``unlabeled`` (no boxes from labeling or import yet), ``not_selected`` (left out by
  diversity selection under a budget);
* **useful**: everything else, and only these reach training sets.

A sample keeps every reason that applies (``reasons``); ``reason`` is the first by the order
above, and ``decision`` follows from it. Of a group of near-duplicates the best frame is kept:
not harmful, labeled, sharpest, then most boxes, then the smallest sample id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from dataops_cv.lib.curation.thresholds import Limit, Reference, limits, reference_from_rows
from dataops_cv.lib.validation.contracts import CurationSpec

USEFUL, USELESS, HARMFUL = "useful", "useless", "harmful"
DECISIONS = (USEFUL, USELESS, HARMFUL)
HARMFUL_REASONS = ("likely_mislabeled", "tiny_box", "blurry", "underexposed", "overexposed",
                   "low_contrast")
USELESS_REASONS = ("exact_duplicate", "near_duplicate", "unlabeled", "not_selected")
REASONS = HARMFUL_REASONS + USELESS_REASONS

CURATED_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("sha256", pa.string()),
    ("object_key", pa.string()),
    ("rel_path", pa.string()),
    ("source", pa.string()),  # the frame's source: its quality limits are the source's own
    ("session_id", pa.string()),
    ("camera", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("decision", pa.string()),
    ("reason", pa.string()),  # the first of reasons; null for useful samples
    ("reasons", pa.string()),  # every reason that applies, comma-separated, in REASONS order
    ("detail", pa.string()),  # what a person reads: thresholds, boxes, the copy kept
    ("duplicate_of", pa.string()),  # sample_id of the kept frame (exact or near duplicates)
    ("near_dup_group", pa.string()),  # sample_id of the kept frame of its near-duplicate group
    ("phash", pa.string()),
    ("brightness", pa.float32()),
    ("contrast", pa.float32()),
    ("laplacian_var", pa.float32()),
    ("n_boxes", pa.int32()),
    ("classes", pa.string()),  # distinct class names of its boxes, sorted, comma-separated
    ("label_source", pa.string()),  # labeled | imported | none
    ("label_revision", pa.string()),
    ("mislabeled_boxes", pa.int32()),
    ("selection_rank", pa.int32()),  # order of the pick under a budget; null without a budget
])


def sample_id(partition: str, rel_path: str) -> str:
    """Stable id of a frame: its capture day and path in the drop (exact copies differ)."""
    return hashlib.sha256(f"{partition}\x00{rel_path}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Match:
    """A frame of another source that a frame copies: it is kept there, so not here."""

    sample_id: str
    reason: str  # exact_duplicate | near_duplicate
    detail: str


@dataclass(frozen=True)
class LabelBox:
    annotation_id: str
    class_name: str
    class_id: int | None
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def short_side(self) -> float:
        return min(self.x_max - self.x_min, self.y_max - self.y_min)


@dataclass(frozen=True)
class CurationSample:
    sample_id: str
    sha256: str
    object_key: str
    rel_path: str
    session_id: str | None
    camera: str | None
    width: int
    height: int
    brightness: float | None
    contrast: float | None
    laplacian_var: float | None
    boxes: tuple[LabelBox, ...]
    label_source: str  # labeled | imported | none
    label_revision: str | None
    phash: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class BoxIssue:
    """A box an out-of-fold model disputes: its given class and what the model says."""

    given: str
    suggested: str
    given_prob: float
    suggested_prob: float


@dataclass(frozen=True)
class NearPair:
    """Two distinct contents (sha256) found to be near-duplicates, with the evidence."""

    a: str
    b: str
    hamming: int
    cosine: float


@dataclass
class _State:
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    group: str | None = None
    rank: int | None = None
    mislabeled: int = 0


def _quality(s: CurationSample, limits: Sequence[Limit], min_box_side_px: float | None,
             max_bad_box_share: float, st: _State) -> None:
    for limit in limits:
        value = getattr(s, limit.column)
        if limit.breached(value):
            st.reasons.append(limit.reason)
            st.details.append(limit.detail(value))
    if min_box_side_px is not None:
        tiny = [b for b in s.boxes if b.short_side < min_box_side_px]
        if _too_many(len(tiny), len(s.boxes), max_bad_box_share):
            st.reasons.append("tiny_box")
            st.details.append(
                f"{len(tiny)} of {len(s.boxes)} box(es) with a side < {min_box_side_px:g} px "
                f"(> {max_bad_box_share:.0%} of the frame's boxes; "
                + ", ".join(f"{b.class_name} {b.x_max - b.x_min:.0f}x{b.y_max - b.y_min:.0f}"
                            for b in tiny[:3]) + ")")


def _too_many(bad: int, boxes: int, share: float) -> bool:
    """Whether a frame's bad boxes make the whole frame harmful. One bad box in a handful is a
    frame not worth training on; one in the hundreds of a dense scene (tree crowns, cells,
    crowds) is not a reason to throw away all the others."""
    return bad > 0 and bad > share * boxes


def day_reference(samples: Sequence[CurationSample], days: Sequence[str] = (),
                  history: Sequence[Mapping] = ()) -> Reference:
    """The reference a day's thresholds come from: its own frames and ``history`` (rows with
    the metric columns from earlier days of the same source)."""
    rows = [{"sha256": s.sha256, "laplacian_var": s.laplacian_var, "brightness": s.brightness,
             "contrast": s.contrast} for s in samples]
    return reference_from_rows([*rows, *history], days)


def _labels(s: CurationSample, issues: Mapping[str, BoxIssue], max_bad_box_share: float,
            st: _State) -> None:
    if s.label_source == "none":
        st.reasons.append("unlabeled")
        st.details.append("no boxes from labeling or import")
        return
    disputed = [(b, issues[b.annotation_id]) for b in s.boxes if b.annotation_id in issues]
    st.mislabeled = len(disputed)
    if _too_many(len(disputed), len(s.boxes), max_bad_box_share):
        st.reasons.append("likely_mislabeled")
        st.details.append(f"{len(disputed)} of {len(s.boxes)} box(es) disputed: " + "; ".join(
            f"box {b.annotation_id[:8]} labeled {i.given} (p={i.given_prob:.2f}), model says "
            f"{i.suggested} (p={i.suggested_prob:.2f})" for b, i in disputed[:3]))


def _clusters(shas: Sequence[str], pairs: Sequence[NearPair]) -> dict[str, str]:
    """sha -> smallest sha of its connected component."""
    parent = {s: s for s in shas}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        if p.a in parent and p.b in parent:
            ra, rb = find(p.a), find(p.b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in shas}


def decide(
    samples: Sequence[CurationSample],
    spec: CurationSpec,
    near_pairs: Sequence[NearPair] = (),
    issues: Mapping[str, BoxIssue] | None = None,
    budget: int = 0,
    select: Callable[[list[CurationSample], int], list[int]] | None = None,
    quality_limits: Sequence[Limit] | None = None,
    elsewhere: Mapping[str, Match] | None = None,
) -> list[dict]:
    """One row per sample (``CURATED_SCHEMA``), in sample order.

    Args:
        quality_limits: the blur / exposure / contrast limits (see
            :func:`~dataops_cv.lib.curation.thresholds.limits`); None computes them from
            ``spec`` with the samples themselves as the reference.
        near_pairs: near-duplicate pairs by sha256 (exact copies are found here from sha256).
        issues: disputed boxes by annotation id.
        elsewhere: by sha256, the useful frame of another source that this one copies (exact
            or near): the frame is a duplicate of it.
        budget: keep at most this many useful samples (0: no budget); ``select`` picks them
            (given the useful samples and the budget, returns their indices in pick order).

    Raises:
        ValueError: two samples share a sample id, or a budget without ``select``.
    """
    issues = issues or {}
    if len({s.sample_id for s in samples}) != len(samples):
        raise ValueError("sample ids must be unique within a curation")
    if budget > 0 and select is None:
        raise ValueError("a budget needs a select function")
    if quality_limits is None:
        quality_limits, _ = limits(spec, day_reference(samples))
    state = {s.sample_id: _State() for s in samples}
    holders: dict[str, CurationSample] = {}
    for s in sorted(samples, key=lambda s: (s.rel_path, s.sample_id)):
        holders.setdefault(s.sha256, s)
    for s in samples:
        st = state[s.sample_id]
        holder = holders[s.sha256]
        if holder is not s:
            st.reasons.append("exact_duplicate")
            st.details.append(f"same bytes as {holder.rel_path}")
            st.duplicate_of = holder.sample_id
        elif s.sha256 in (elsewhere or {}):
            m = elsewhere[s.sha256]
            st.reasons.append(m.reason)
            st.details.append(m.detail)
            st.duplicate_of = m.sample_id
        _quality(s, quality_limits, spec.min_box_side_px, spec.max_bad_box_share, st)
        _labels(s, issues, spec.max_bad_box_share, st)

    def harmful(s: CurationSample) -> bool:
        return any(r in HARMFUL_REASONS for r in state[s.sample_id].reasons)

    component = _clusters(sorted(holders), near_pairs)
    members: dict[str, list[CurationSample]] = {}
    for sha, root in component.items():
        members.setdefault(root, []).append(holders[sha])
    evidence = {(p.a, p.b): p for p in near_pairs} | {(p.b, p.a): p for p in near_pairs}
    for group in members.values():
        kept = min(group, key=lambda s: (harmful(s), s.sha256 in (elsewhere or {}),
                                         s.label_source == "none",
                                         -(s.laplacian_var or 0.0), -len(s.boxes), s.sample_id))
        for s in group:
            state[s.sample_id].group = kept.sample_id
            if s is kept:
                continue
            st = state[s.sample_id]
            st.reasons.append("near_duplicate")
            if s.sha256 not in (elsewhere or {}):  # a copy of another source's frame stays one
                st.duplicate_of = kept.sample_id
            p = evidence.get((s.sha256, kept.sha256))
            st.details.append(f"near copy of {kept.rel_path}" + (
                f" (phash distance {p.hamming}, cosine {p.cosine:.3f})" if p else
                " (same near-duplicate group)"))
    for s in samples:
        st = state[s.sample_id]
        if st.group is None:
            st.group = state[holders[s.sha256].sample_id].group

    if budget > 0:
        useful = [s for s in samples if not state[s.sample_id].reasons]
        if len(useful) > budget:
            assert select is not None
            picked = select(useful, budget)
            for rank, i in enumerate(picked):
                state[useful[i].sample_id].rank = rank
            chosen = set(picked)
            for i, s in enumerate(useful):
                if i not in chosen:
                    state[s.sample_id].reasons.append("not_selected")
                    state[s.sample_id].details.append(
                        f"diversity selection kept {budget} of {len(useful)} useful samples")

    rows = []
    for s in samples:
        st = state[s.sample_id]
        reasons = sorted(set(st.reasons), key=REASONS.index)
        decision = (HARMFUL if any(r in HARMFUL_REASONS for r in reasons) else
                    USELESS if reasons else USEFUL)
        rows.append({
            "sample_id": s.sample_id, "sha256": s.sha256, "object_key": s.object_key,
            "rel_path": s.rel_path, "source": s.source, "session_id": s.session_id,
            "camera": s.camera,
            "width": s.width, "height": s.height, "decision": decision,
            "reason": reasons[0] if reasons else None, "reasons": ",".join(reasons),
            "detail": "; ".join(st.details) or None, "duplicate_of": st.duplicate_of,
            "near_dup_group": st.group, "phash": s.phash, "brightness": s.brightness,
            "contrast": s.contrast, "laplacian_var": s.laplacian_var, "n_boxes": len(s.boxes),
            "classes": ",".join(sorted({b.class_name for b in s.boxes})),
            "label_source": s.label_source, "label_revision": s.label_revision,
            "mislabeled_boxes": st.mislabeled, "selection_rank": st.rank,
        })
    return rows


def split_list(value: str | None) -> list[str]:
    """The items of a comma-separated column (reasons, classes)."""
    return [x for x in (value or "").split(",") if x]


def summary(rows: Sequence[Mapping]) -> dict[str, int]:
    """Counts by decision and by reason (a sample counts once per reason it has)."""
    out = {f"{d}": 0 for d in DECISIONS} | {f"reason_{r}": 0 for r in REASONS}
    for r in rows:
        out[r["decision"]] += 1
        for reason in split_list(r["reasons"]):
            out[f"reason_{reason}"] += 1
    out["samples"] = len(rows)
    return out


def check_rows(rows: Sequence[Mapping], expected_ids: Sequence[str],
               kept_elsewhere: Collection[str] = ()) -> list[str]:
    """What is wrong with a curated table: every expected sample exactly once, every excluded
    sample with a reason, no useful sample with one, decisions that follow the reasons, and a
    kept frame named by every duplicate (in the table, or among ``kept_elsewhere``: the useful
    sample ids of the same day's other sources). Empty when all holds."""
    problems: list[str] = []
    ids = [r["sample_id"] for r in rows]
    missing = sorted(set(expected_ids) - set(ids))
    extra = sorted(set(ids) - set(expected_ids))
    repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if missing:
        problems.append(f"{len(missing)} sample(s) of the day have no decision, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} decision(s) for samples not in the day, e.g. {extra[:3]}")
    if repeated:
        problems.append(f"{len(repeated)} sample(s) decided more than once, e.g. {repeated[:3]}")
    by_id = {r["sample_id"]: r for r in rows}
    for r in rows:
        reasons = split_list(r["reasons"])
        unknown = [x for x in reasons if x not in REASONS]
        want = (HARMFUL if any(x in HARMFUL_REASONS for x in reasons) else
                USELESS if reasons else USEFUL)
        if unknown:
            problems.append(f"{r['sample_id']}: unknown reason(s) {unknown}")
        elif r["decision"] != want:
            problems.append(f"{r['sample_id']}: decision {r['decision']} but reasons {reasons} "
                            f"mean {want}")
        elif (r["reason"] or None) != (reasons[0] if reasons else None):
            problems.append(f"{r['sample_id']}: reason {r['reason']!r} is not the first of "
                            f"{reasons}")
        if {"exact_duplicate", "near_duplicate"} & set(reasons):
            if r["duplicate_of"] in kept_elsewhere:
                continue
            kept = by_id.get(r["duplicate_of"] or "")
            if kept is None or kept["sample_id"] == r["sample_id"]:
                problems.append(f"{r['sample_id']}: a duplicate must name the kept frame, "
                                f"found {r['duplicate_of']!r}")
    return problems
