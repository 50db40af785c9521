"""The side tables curation writes beside each day's decisions."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from dataops_cv.lib.core.annotations import BOX_FIELDS
from dataops_cv.lib.curation.decisions import CurationSample

# Features per sha256, cached so that a re-run decodes only frames it has not seen.
FEATURES_SCHEMA = pa.schema([
    ("sha256", pa.string()),
    ("feature_version", pa.string()),
    ("phash", pa.string()),
    ("embedding", pa.list_(pa.float32())),
])
# The day's near-duplicate pairs (a < b), kept so that a re-run searches only pairs with a new
# frame: the pairs of the frames of the last run are still what they were.
NEAR_PAIRS_SCHEMA = pa.schema([
    ("a", pa.string()),
    ("b", pa.string()),
    ("hamming", pa.int32()),
    ("cosine", pa.float32()),
])
# Every scored box's class probabilities, the fold whose model scored it and whether that was a
# later run scoring with stored models (what a re-run keeps for unchanged boxes).
SCORES_SCHEMA = pa.schema([
    ("box_key", pa.string()),
    ("annotation_id", pa.string()),
    ("object_key", pa.string()),
    ("fold", pa.int32()),
    ("late", pa.bool_()),
    ("probs", pa.list_(pa.float32())),
])
# The boxes curation judged each sample by (what training sets are built from).
BOXES_SCHEMA = pa.schema([
    ("sample_id", pa.string()),
    ("sha256", pa.string()),
    ("object_key", pa.string()),
    *BOX_FIELDS,
    ("label_source", pa.string()),
    ("label_revision", pa.string()),
])
# Every box the mislabel model scored, and whether it disputes the label.
ISSUES_SCHEMA = pa.schema([
    ("annotation_id", pa.string()),
    ("sha256", pa.string()),
    ("given", pa.string()),
    ("suggested", pa.string()),
    ("given_prob", pa.float32()),
    ("suggested_prob", pa.float32()),
    ("is_issue", pa.bool_()),
])


def box_rows(samples: Iterable[CurationSample]) -> list[dict]:
    """``BOXES_SCHEMA`` rows: every box of every sample with its label source and revision."""
    return [{"sample_id": s.sample_id, "sha256": s.sha256, "object_key": s.object_key,
             "annotation_id": b.annotation_id, "class_name": b.class_name,
             "class_id": b.class_id, "x_min": b.x_min, "y_min": b.y_min, "x_max": b.x_max,
             "y_max": b.y_max, "label_source": s.label_source,
             "label_revision": s.label_revision}
            for s in samples for b in s.boxes]
