"""The frames curation decides about: each fused frame with its quality metrics and the one set
of boxes it is judged by."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from dataops_cv.lib.core.annotations import label_source
from dataops_cv.lib.curation.decisions import CurationSample, LabelBox, sample_id


class CurationInputError(ValueError):
    """The day's tables disagree (a fused frame without its frame row)."""


def one_annotator(rows: Iterable[Mapping]) -> dict[str, list[Mapping]]:
    """Boxes per image; of several annotators of one image, the first by name (their boxes
    would otherwise double every object)."""
    rows = list(rows)
    chosen: dict[str, str] = {}
    for r in rows:
        who = str(r.get("annotator") or "")
        chosen[r["image_sha256"]] = min(chosen.get(r["image_sha256"], who), who)
    out: dict[str, list[Mapping]] = {}
    for r in rows:
        if str(r.get("annotator") or "") == chosen[r["image_sha256"]]:
            out.setdefault(r["image_sha256"], []).append(r)
    return out


def label_box(r: Mapping) -> LabelBox:
    return LabelBox(r["annotation_id"], r["class_name"], r["class_id"], float(r["x_min"]),
                    float(r["y_min"]), float(r["x_max"]), float(r["y_max"]))


def curation_samples(
    partition: str, fused: Sequence[Mapping], frames: Sequence[Mapping],
    labeled: Mapping[str, list[Mapping]], imported: Mapping[str, list[Mapping]],
    imported_revision: str | None,
) -> list[CurationSample]:
    """Every fused frame of the day, by path, with its frame's size and quality metrics and the
    boxes it is judged by (human labels over imported ones, see ``label_source``).

    Args:
        labeled, imported: boxes per image sha256 (one annotator each, see :func:`one_annotator`).
        imported_revision: the lakeFS commit that last changed the day's imported labels.

    Raises:
        CurationInputError: a fused frame has no row among ``frames``.
    """
    quality = {r["rel_path"]: r for r in frames}
    samples: list[CurationSample] = []
    for r in sorted(fused, key=lambda r: r["rel_path"]):
        q = quality.get(r["rel_path"])
        if q is None:
            raise CurationInputError(f"fused frame {r['rel_path']} has no row in the day's "
                                     "raw_frames table; the day's tables disagree, re-run the day")
        sha = r["sha256"]
        rows, source = label_source(sha, labeled, imported)
        revision = (rows[0].get("label_revision") if source == "labeled" else
                    imported_revision if source == "imported" else None)
        samples.append(CurationSample(
            sample_id=sample_id(partition, r["rel_path"]), sha256=sha,
            object_key=r["object_key"], rel_path=r["rel_path"], session_id=r.get("session_id"),
            camera=r.get("camera"), width=int(q["width"]), height=int(q["height"]),
            brightness=q.get("brightness"), contrast=q.get("contrast"),
            laplacian_var=q.get("laplacian_var"),
            boxes=tuple(sorted((label_box(b) for b in rows), key=lambda b: b.annotation_id)),
            label_source=source, label_revision=revision, source=q.get("source")))
    return samples
