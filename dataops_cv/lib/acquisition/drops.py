"""Discovering daily drops in a landing source: ``<source>/<YYYY-MM-DD>/...`` folders whose
content changed since they were last seen, told apart by a fingerprint of their listing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from dataops_cv.lib.acquisition.sources import Source

DATE_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})/")


def drop_fingerprints(source: Source) -> dict[str, str]:
    """``{date: fingerprint}`` for every dated top-level folder; the fingerprint changes when a
    file is added, removed, resized or rewritten (mtime / ETag), and costs one listing."""
    digests: dict[str, hashlib._Hash] = {}
    for obj in source.list():
        m = DATE_FOLDER.match(obj.rel_path)
        if not m:
            continue
        h = digests.setdefault(m.group(1), hashlib.sha256())
        h.update(f"{obj.rel_path}\x00{obj.size}\x00{obj.fingerprint}\n".encode())
    return {date: h.hexdigest()[:16] for date, h in sorted(digests.items())}


def changed_drops(current: Mapping[str, str], seen: Mapping[str, str]) -> list[str]:
    """Dates whose drop is new or changed since ``seen``."""
    return [d for d, fp in sorted(current.items()) if seen.get(d) != fp]
