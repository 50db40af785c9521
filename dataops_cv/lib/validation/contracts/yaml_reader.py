"""Typed access to a contract file's parsed YAML: every accessor raises
:class:`~dataops_cv.lib.validation.contracts.spec.ContractError` naming the file, the key path
(``columns.width.min``), what was expected and what was found.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import yaml

from dataops_cv.lib.validation.contracts.spec import ContractError

_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


class YamlReader:
    """Typed access to parsed YAML that raises ContractError with the file and key path."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, message: str) -> NoReturn:
        """Raise ContractError for this file at ``key``."""
        raise ContractError(self.file, key, message)

    def mapping(self, value: object, key: str) -> Mapping[str, object]:
        """``value`` as a mapping with string keys."""
        if not isinstance(value, Mapping):
            self.fail(key, f"expected a mapping, found {shown(value)}")
        for k in value:
            if not isinstance(k, str):
                self.fail(key, f"expected string keys, found {shown(k)}")
        return value

    def keys(self, m: Mapping[str, object], key: str, required: Sequence[str],
             optional: Sequence[str]) -> None:
        """Every ``required`` key is in ``m``, and no key but those and ``optional``."""
        for k in required:
            if k not in m:
                self.fail(key_path(key, k), "required key is missing")
        unknown = sorted(set(m) - set(required) - set(optional))
        if unknown:
            self.fail(key_path(key, unknown[0]),
                      f"unknown key; expected one of {sorted([*required, *optional])}")

    def string(self, value: object, key: str) -> str:
        """``value`` as a non-blank string."""
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty string, found {shown(value)}")
        return value

    def snake(self, value: object, key: str) -> str:
        """``value`` as a snake_case name."""
        s = self.string(value, key)
        if not _SNAKE.match(s):
            self.fail(key, f"expected a snake_case name, found {s!r}")
        return s

    def choice(self, value: object, key: str, options: Sequence[str]) -> str:
        """``value``, one of ``options``."""
        if value not in options:
            self.fail(key, f"expected one of {list(options)}, found {shown(value)}")
        return str(value)

    def boolean(self, value: object, key: str) -> bool:
        """``value`` as true or false."""
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, found {shown(value)}")
        return value

    def number(self, value: object, key: str) -> float | int:
        """``value`` as a finite int or float."""
        # bool is an int in Python, but `min: yes` is a typo, not the number 1.
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not math.isfinite(value)):
            self.fail(key, f"expected a number, found {shown(value)}")
        return value

    def integer(self, value: object, key: str, minimum: int | None = None) -> int:
        """``value`` as an int, at least ``minimum`` if given."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, found {shown(value)}")
        if minimum is not None and value < minimum:
            self.fail(key, f"expected an integer >= {minimum}, found {value}")
        return value

    def fraction(self, value: object, key: str, *, open_low: bool = False) -> float:
        """``value`` in [0, 1], or in (0, 1] with ``open_low``."""
        v = self.number(value, key)
        if not (0 < v <= 1 if open_low else 0 <= v <= 1):
            bounds = "(0, 1]" if open_low else "[0, 1]"
            self.fail(key, f"expected a number in {bounds}, found {v}")
        return float(v)

    def string_list(self, value: object, key: str) -> tuple[str, ...]:
        """``value`` as a non-empty list of distinct non-blank strings."""
        if not isinstance(value, list) or not value:
            self.fail(key, f"expected a non-empty list, found {shown(value)}")
        items = tuple(self.string(v, f"{key}[{i}]") for i, v in enumerate(value))
        dupes = sorted({v for v in items if items.count(v) > 1})
        if dupes:
            self.fail(key, f"expected distinct values, found {dupes[0]!r} more than once")
        return items

    def bounds(self, m: Mapping[str, object], key: str, lo: str = "min", hi: str = "max",
               required: bool = False) -> tuple[float | None, float | None]:
        """``m[lo]``, ``m[hi]`` as numbers (None: absent), low <= high."""
        low = self.number(m[lo], key_path(key, lo)) if lo in m else None
        high = self.number(m[hi], key_path(key, hi)) if hi in m else None
        if required and low is None and high is None:
            self.fail(key, f"expected at least one of {lo!r}, {hi!r}")
        if low is not None and high is not None and low > high:
            self.fail(key_path(key, lo), f"{low} is greater than {hi} {high}")
        return low, high


def key_path(key: str, sub: str) -> str:
    """``sub`` below ``key``: ``columns`` + ``width`` is ``columns.width``."""
    return f"{key}.{sub}" if key else sub


def shown(value: object) -> str:
    """A found value as a message quotes it."""
    return "nothing" if value is None else repr(value)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last one
    silently, so a column duplicated by a bad merge would lose its first definition)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int):
        super().__init__(f"key {key!r} appears twice")
        self.key = key
        self.line = line


def read_yaml(path: Path, r: YamlReader) -> tuple[bytes, object]:
    """The file's bytes (for its hash) and its YAML; a key given twice in a mapping is an
    error, reported through ``r``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        r.fail("", "file not found")
    try:
        return raw, yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)  # noqa: S506 - safe loader
    except UnicodeDecodeError as exc:
        r.fail("", f"expected UTF-8 text: {exc}")
    except _DuplicateKey as exc:
        r.fail(f"line {exc.line}", f"key {exc.key!r} appears twice in the same mapping")
    except yaml.YAMLError as exc:
        r.fail("", f"not valid YAML: {exc}")
