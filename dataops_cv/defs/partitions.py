"""Partitions shared by every stage: one partition per capture day."""

import dagster as dg

CAPTURE_START_DATE = "2026-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=CAPTURE_START_DATE, timezone="UTC")
