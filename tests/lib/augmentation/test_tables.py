"""Tables: the rows of streamed variants fill exactly the columns of their schemas."""

from __future__ import annotations

import hashlib

import pyarrow as pa

from dataops_cv.lib.augmentation.params import AugParams
from dataops_cv.lib.augmentation.stream import SourceBox, SourceSample, augment_stream, encode_png
from dataops_cv.lib.augmentation.tables import (
    AUGMENTED_BOXES_SCHEMA,
    AUGMENTED_SCHEMA,
    variant_box_rows,
    variant_row,
)
from dataops_cv.lib.lakefs.layout import augmented_key
from tests.lib.augmentation.conftest import scene


def test_rows_match_the_schemas_and_record_the_applied_parameters(policy):
    data = encode_png(scene())
    box = SourceBox("ann1", "car", 1, (40.0, 30.0, 90.0, 70.0))
    sample = SourceSample("abc", lambda: data, (box,), "labeled")
    variants = list(augment_stream([sample], policy, variants=4))
    rows = [variant_row(v, policy, "raw/ab/abc.png") for v in variants]
    box_rows = [b for v in variants for b in variant_box_rows(v)]
    assert pa.Table.from_pylist(rows, AUGMENTED_SCHEMA).column_names == AUGMENTED_SCHEMA.names
    assert all(set(r) == set(AUGMENTED_SCHEMA.names) for r in rows)
    assert all(set(b) == set(AUGMENTED_BOXES_SCHEMA.names) for b in box_rows)
    pa.Table.from_pylist(box_rows, AUGMENTED_BOXES_SCHEMA)
    for v, row in zip(variants, rows):
        assert row["object_key"] == augmented_key(v.sha256)
        assert augmented_key(v.sha256) == f"augmented/{v.sha256[:2]}/{v.sha256}.png"
        assert hashlib.sha256(v.png).hexdigest() == row["sha256"]
        assert AugParams.from_json(row["params"]) == v.params
        assert (row["policy_version"], row["label_source"]) == (policy.version, "labeled")
        assert row["boxes"] + row["boxes_dropped"] == 1
