"""The registered capture sources: one JSON document per source under ``sources/`` on main.

The registry lives in the lakeFS repository, not in one machine's Dagster instance, so every
process and host that runs the pipeline sees the same sources, and adding or removing one is a
commit on main with its own history. Changes are made on a short-lived branch and merged, so
they go through the same door as every run (main takes merges only). Dagster's dynamic
``source`` partitions follow the registry (``dataops-cv sources add`` and the
``source_registry_sensor`` add them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from dataops_cv.lib.core.partitions import validate_source_name
from dataops_cv.lib.lakefs import layout
from dataops_cv.lib.lakefs.run_branch import RefView
from dataops_cv.lib.lakefs.store import LakeFSNoChanges, LakeFSStore

FORMATS = ("auto", "images", "coco", "voc", "yolo", "labelstudio")


class RegistryError(ValueError):
    """A source that cannot be registered, or one that is not registered."""


@dataclass(frozen=True)
class SourceEntry:
    name: str
    uri: str
    format: str = "auto"

    def __post_init__(self) -> None:
        try:
            validate_source_name(self.name)
        except ValueError as exc:
            raise RegistryError(str(exc)) from exc
        if not self.uri:
            raise RegistryError(f"source {self.name}: the URI is empty")
        if self.format not in FORMATS:
            raise RegistryError(f"source {self.name}: format {self.format!r} is not one of "
                                + ", ".join(FORMATS))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes | Mapping) -> SourceEntry:
        doc = json.loads(data) if isinstance(data, bytes | str) else dict(data)
        return cls(name=doc["name"], uri=doc["uri"], format=doc.get("format", "auto"))


def registered_sources(view: RefView) -> dict[str, SourceEntry]:
    """Every source registered at ``view``'s ref, by name."""
    out = {}
    for o in view.list(layout.SOURCES):
        if o.path.endswith(".json"):
            entry = SourceEntry.from_json(view.read(o.path))
            out[entry.name] = entry
    return dict(sorted(out.items()))


def registered_source(view: RefView, name: str) -> SourceEntry | None:
    doc = view.read_json(layout.source_key(name))
    return None if doc is None else SourceEntry.from_json(doc)


def _change_main(store: LakeFSStore, main: str, what: str, apply) -> str | None:
    """Run ``apply(branch)`` on a fresh branch from main, commit, merge; return main's new
    head (None when nothing changed)."""
    branch = f"sources-{hashlib.sha256(what.encode()).hexdigest()[:12]}"
    store.delete_branch(branch)
    store.create_branch(branch, source=main, exist_ok=False)
    try:
        apply(branch)
        try:
            store.commit(branch, what, {"dataops_cv_change": "sources"})
        except LakeFSNoChanges:
            return None
        return store.merge(branch, main, what, {"dataops_cv_change": "sources"})
    finally:
        store.delete_branch(branch)


def register_source(store: LakeFSStore, main: str, entry: SourceEntry,
                    replace: bool = False) -> bool:
    """Register ``entry`` on main; True when main changed (False: already registered as is).

    Raises:
        RegistryError: the name is registered with another URI or format and not ``replace``.
    """
    current = registered_source(RefView(store, main), entry.name)
    if current == entry:
        return False
    if current is not None and not replace:
        raise RegistryError(f"source {entry.name} is registered as {current.uri} "
                            f"(format {current.format}); remove it first or pass --replace")
    return _change_main(
        store, main, f"sources: register {entry.name} ({entry.uri}, format {entry.format})",
        lambda b: store.put_object(b, layout.source_key(entry.name), entry.to_json(),
                                   "application/json")) is not None


def unregister_source(store: LakeFSStore, main: str, name: str) -> SourceEntry:
    """Remove ``name`` from the registry on main (its published tables stay); the entry removed.

    Raises:
        RegistryError: it is not registered.
    """
    current = registered_source(RefView(store, main), name)
    if current is None:
        raise RegistryError(f"source {name} is not registered")
    _change_main(store, main, f"sources: remove {name}",
                 lambda b: store.delete_object(b, layout.source_key(name)))
    return current
