"""Partition keys: a capture day and the source its files came from.

A key is ``<YYYY-MM-DD>|<source>``, exactly the string form of Dagster's multi-partition key
over the dimensions ``date`` and ``source`` (dimensions in name order, joined by ``|``), so the
key a step gets from Dagster is the key every table path and sample id is built from. A bare
day (``YYYY-MM-DD``) is the key of a repository written before sources were a dimension (see
``dataops-cv sources migrate``).
"""

from __future__ import annotations

import datetime as dt
import re

SEPARATOR = "|"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def validate_source_name(name: str) -> str:
    """``name`` if it can name a source (lowercase letters, digits, ``-`` and ``_``, at most 63
    characters: it is part of object keys, branch-safe ids and Dagster partition keys).

    Raises:
        ValueError: it cannot.
    """
    if not isinstance(name, str) or not SOURCE_NAME.fullmatch(name):
        raise ValueError(f"source name {name!r}: expected lowercase letters, digits, '-' and "
                         "'_', starting with a letter or digit, at most 63 characters")
    return name


def validate_day(day: str) -> str:
    """``day`` if it is a calendar day ``YYYY-MM-DD``.

    Raises:
        ValueError: it is not.
    """
    if not isinstance(day, str) or not _DAY.fullmatch(day):
        raise ValueError(f"capture day {day!r}: expected YYYY-MM-DD")
    dt.date.fromisoformat(day)
    return day


def partition_key(day: str, source: str) -> str:
    """The key of ``source``'s files of ``day``."""
    return f"{validate_day(day)}{SEPARATOR}{validate_source_name(source)}"


def key_of(day: str, source: str | None) -> str:
    """The key of ``day`` and ``source`` (a bare day when ``source`` is None)."""
    return validate_day(day) if source is None else partition_key(day, source)


def split_key(key: str) -> tuple[str, str | None]:
    """``(day, source)`` of a key; the source is None for a bare day (the single-source layout).

    Raises:
        ValueError: not a partition key.
    """
    day, sep, source = str(key).partition(SEPARATOR)
    validate_day(day)
    if sep:
        validate_source_name(source)
        return day, source
    return day, None


def day_of(key: str) -> str:
    return split_key(key)[0]


def source_of(key: str) -> str | None:
    return split_key(key)[1]


def folder(key: str) -> str:
    """The folder of a key under a table: ``date=<day>/source=<source>`` (``date=<day>`` for a
    bare day)."""
    day, source = split_key(key)
    return f"date={day}" if source is None else f"date={day}/source={source}"


def from_folder(path: str) -> str | None:
    """The key of a folder made by :func:`folder` (None for anything else)."""
    parts = path.strip("/").split("/")
    try:
        if len(parts) == 1 and parts[0].startswith("date="):
            return validate_day(parts[0][5:])
        if len(parts) == 2 and parts[0].startswith("date=") and parts[1].startswith("source="):
            return partition_key(parts[0][5:], parts[1][7:])
    except ValueError:
        return None
    return None


def sort_key(key: str) -> tuple[str, str]:
    day, source = split_key(key)
    return day, source or ""
