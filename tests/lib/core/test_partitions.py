"""Partition keys (day × source) and the table paths and listings built from them."""

import pytest

from dataops_cv.lib.core import partitions as p
from dataops_cv.lib.lakefs import layout


def test_a_key_is_dagsters_multi_partition_string_and_names_its_folder():
    import dagster as dg

    key = p.partition_key("2026-01-05", "rig-a")
    assert key == str(dg.MultiPartitionKey({"source": "rig-a", "date": "2026-01-05"}))
    assert p.split_key(key) == ("2026-01-05", "rig-a")
    assert p.folder(key) == "date=2026-01-05/source=rig-a"
    assert p.from_folder(p.folder(key)) == key
    assert layout.table_key("raw_frames", key) == \
        "tables/raw_frames/date=2026-01-05/source=rig-a/part-00000.parquet"
    # a bare day is the single-source layout, still readable
    assert p.split_key("2026-01-05") == ("2026-01-05", None)
    assert layout.table_key("raw_frames", "2026-01-05") == \
        "tables/raw_frames/date=2026-01-05/part-00000.parquet"


@pytest.mark.parametrize("bad", ["d", "2026-13-01|a", "2026-01-05|Rig", "2026-01-05|a/b",
                                 "2026-01-05|", "2026-01-05|" + "a" * 64])
def test_malformed_keys_are_refused(bad):
    with pytest.raises(ValueError):
        p.split_key(bad) if not bad.endswith("|") else p.partition_key(*bad.split("|"))


def test_history_is_per_source_and_the_window_spans_every_source():
    keys = [layout.table_key("curated_samples", k) for k in (
        "2026-01-01|a", "2026-01-02|a", "2026-01-02|b", "2026-01-03|b", "2026-01-04|a")]
    keys.append("tables/curated_samples/date=2026-01-04/source=a/_features.parquet")
    assert layout.table_partitions(keys, "curated_samples") == [
        "2026-01-01|a", "2026-01-02|a", "2026-01-02|b", "2026-01-03|b", "2026-01-04|a"]
    assert layout.earlier_partitions(keys, "curated_samples", "2026-01-04|a", 7) == [
        "2026-01-01|a", "2026-01-02|a"]
    assert layout.earlier_partitions(keys, "curated_samples", "2026-01-04|b", 1) == [
        "2026-01-03|b"]
    assert layout.window_partitions(keys, "curated_samples", "2026-01-04|a", 2) == [
        "2026-01-03|b", "2026-01-04|a"]
    assert layout.window_partitions(keys, "curated_samples", "2026-01-02|b", 0) == [
        "2026-01-01|a", "2026-01-02|a", "2026-01-02|b"]
