"""Partitions shared by every stage: a capture day × a source (rig, vendor, public set).

The source dimension is dynamic: ``dataops-cv sources add`` (and ``run --source``) register a
source and add its name here; ``source_registry_sensor`` adds every source registered on lakeFS
to an instance that has not seen it. A key's string form is ``<day>|<source>``, the same string
:mod:`dataops_cv.lib.core.partitions` builds paths from.
"""

import dagster as dg

from dataops_cv.lib.core.partitions import partition_key

CAPTURE_START_DATE = "2026-01-01"
DATE_DIM = "date"
SOURCE_DIM = "source"
SOURCES_PARTITIONS = "source"  # the name of the dynamic partitions definition

daily_partitions = dg.DailyPartitionsDefinition(start_date=CAPTURE_START_DATE, timezone="UTC")
source_partitions = dg.DynamicPartitionsDefinition(name=SOURCES_PARTITIONS)
day_source_partitions = dg.MultiPartitionsDefinition(
    {DATE_DIM: daily_partitions, SOURCE_DIM: source_partitions})


def day_source_key(day: str, source: str) -> dg.MultiPartitionKey:
    """The Dagster key of ``source``'s files of ``day`` (validated; ``str()`` of it is the
    ``<day>|<source>`` key tables are written under)."""
    partition_key(day, source)
    return dg.MultiPartitionKey({DATE_DIM: day, SOURCE_DIM: source})
