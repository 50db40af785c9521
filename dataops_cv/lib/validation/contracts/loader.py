"""Loading data-contract YAML files into frozen
:class:`~dataops_cv.lib.validation.contracts.spec.Contract` objects, and the taxonomy they use.

The format is documented in :mod:`dataops_cv.lib.validation.contracts`. Every mistake in a
contract raises :class:`~dataops_cv.lib.validation.contracts.spec.ContractError` naming the file
and the key path (``columns.width.min``), what was expected and what was found: a contract is
code, and a typo in it must not silently weaken a check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from dataops_cv.lib.core.annotations import XYXY, BoxRules
from dataops_cv.lib.validation.contracts.spec import (
    NUMERIC_TYPES,
    PAIR_OPS,
    RESERVED_PREFIX,
    SEVERITIES,
    TYPES,
    ColumnPair,
    ColumnSpec,
    Contract,
    CurationSpec,
    DriftSpec,
    MeanBetween,
    Quantile,
    QuarantineRate,
    Relation,
    Resolution,
    RowCount,
    Rule,
    Unique,
)
from dataops_cv.lib.validation.contracts.yaml_reader import YamlReader, key_path, read_yaml, shown

TAXONOMY_FILE = "taxonomy.yaml"
# Files next to the contracts that configure a stage rather than describe a table
# (augmentation_policy.yaml); load_contracts skips them.
POLICY_SUFFIX = "_policy.yaml"
TAXONOMY = "taxonomy"  # the one value ``in_set_from`` accepts

_REFERENCE = re.compile(r"^(?P<table>[a-z][a-z0-9_]*)\.(?P<column>[A-Za-z_][A-Za-z0-9_]*)$")


def load_taxonomy(path: Path) -> tuple[str, ...]:
    """The class names of a taxonomy file (``classes:`` list of snake_case names, in order).

    Raises:
        ContractError: the file is missing, not YAML, or its class list is empty, repeated or
            not snake_case.
    """
    r = YamlReader(str(path))
    m = r.mapping(read_yaml(path, r)[1], "")
    r.keys(m, "", ["classes"], ["description"])
    classes = r.string_list(m["classes"], "classes")
    for i, c in enumerate(classes):
        r.snake(c, f"classes[{i}]")
    return classes


def load_contract(path: Path, taxonomy: Sequence[str] | None = None) -> Contract:
    """Parse and validate one contract file.

    Args:
        path: the ``<table>.yaml`` file; ``table:`` must equal the file stem.
        taxonomy: class names for ``in_set_from: taxonomy``; when None, they are read from
            ``taxonomy.yaml`` next to ``path`` (only if a column needs them). Pass a list to
            relax the taxonomy for one run, e.g. a dataset with its own classes.

    Raises:
        ContractError: anything wrong in the file, naming the key path.
    """
    if taxonomy is not None and (isinstance(taxonomy, str) or not taxonomy or not all(
            isinstance(c, str) and c for c in taxonomy)):
        raise ValueError(f"taxonomy must be a non-empty list of class names, got {taxonomy!r}")
    r = YamlReader(str(path))
    raw, data = read_yaml(path, r)
    m = r.mapping(data, "")
    r.keys(m, "", ["table", "columns"],
           ["description", "record_id", "schema_drift", "extra_columns", "extra_column_type",
            "expectations", "drift", "curation", "boxes"])
    table = r.snake(m["table"], "table")
    if table != path.stem:
        r.fail("table", f"expected {path.stem!r} (the file name), found {table!r}")
    description = r.string(m["description"], "description") if "description" in m else ""

    cols_m = r.mapping(m["columns"], "columns")
    if not cols_m:
        r.fail("columns", "expected at least one column, found none")
    classes = _lazy_classes(r, path, taxonomy)
    columns = tuple(_column(r, name, spec, classes) for name, spec in cols_m.items())
    names = {c.name for c in columns}

    record_id: tuple[str, ...] = ()
    if "record_id" in m:
        record_id = r.string_list(m["record_id"], "record_id")
        for i, c in enumerate(record_id):
            _existing(r, c, f"record_id[{i}]", names)
    schema_drift = r.choice(m.get("schema_drift", "error"), "schema_drift", SEVERITIES)
    extra = r.choice(m.get("extra_columns", "forbid"), "extra_columns", ("forbid", "allow"))
    extra_type = None
    if "extra_column_type" in m:
        if extra != "allow":
            r.fail("extra_column_type", "only applies with extra_columns: allow")
        extra_type = r.choice(m["extra_column_type"], "extra_column_type", TYPES)

    rules = _rules(r, m.get("expectations", []), names, columns, table)
    drift = _drift(r, m["drift"], columns) if "drift" in m else None
    curation = _curation(r, m["curation"]) if "curation" in m else None
    boxes = _boxes(r, m["boxes"], names) if "boxes" in m else None
    return Contract(table=table, description=description, columns=columns, rules=rules,
                    schema_drift=schema_drift, extra_columns=extra, extra_column_type=extra_type,
                    drift=drift, record_id=record_id, path=str(path),
                    sha256=hashlib.sha256(raw).hexdigest(), curation=curation,
                    boxes=boxes)


def _lazy_classes(r: YamlReader, path: Path, taxonomy: Sequence[str] | None
                  ) -> Callable[[], tuple[str, ...]]:
    """The class names ``in_set_from: taxonomy`` expands to, read on first use: a contract
    without in_set_from must not depend on the taxonomy file."""
    resolved = tuple(taxonomy) if taxonomy is not None else None

    def classes() -> tuple[str, ...]:
        nonlocal resolved
        if resolved is None:
            tax_path = path.parent / TAXONOMY_FILE
            if not tax_path.exists():
                r.fail("columns", f"in_set_from: taxonomy needs {tax_path} or a taxonomy argument")
            resolved = load_taxonomy(tax_path)
        return resolved

    return classes


def _rules(r: YamlReader, value: object, names: set[str], columns: tuple[ColumnSpec, ...],
           table: str) -> tuple[Rule, ...]:
    """The ``expectations`` list, each rule with a name no earlier rule has."""
    if not isinstance(value, list):
        r.fail("expectations", f"expected a list of rules, found {shown(value)}")
    rules = tuple(_rule(r, f"expectations[{i}]", v, names, columns, table)
                  for i, v in enumerate(value))
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            r.fail(f"expectations[{i}].name", f"{rule.name!r} is used by an earlier rule; names "
                   "are stable ids and must be unique")
        seen.add(rule.name)
    return rules


def load_contracts(folder: Path, taxonomy: Sequence[str] | None = None) -> dict[str, Contract]:
    """Every ``*.yaml`` contract in ``folder`` (all but ``taxonomy.yaml`` and ``*_policy.yaml``),
    keyed by table name.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ContractError: the first bad contract, in file-name order.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"data contracts folder {folder} does not exist")
    files = sorted(p for p in folder.glob("*.yaml")
                   if p.name != TAXONOMY_FILE and not p.name.endswith(POLICY_SUFFIX))
    if taxonomy is None and (folder / TAXONOMY_FILE).exists():
        taxonomy = load_taxonomy(folder / TAXONOMY_FILE)
    return {c.table: c for c in (load_contract(p, taxonomy) for p in files)}


def _column(r: YamlReader, name: str, spec: object,
            classes: Callable[[], tuple[str, ...]]) -> ColumnSpec:
    key = f"columns.{name}"
    if name.startswith(RESERVED_PREFIX):
        r.fail(key, f"column names starting with {RESERVED_PREFIX!r} are reserved")
    m = r.mapping(spec, key)
    r.keys(m, key, ["type", "nullable"],
           ["unique", "min", "max", "in_set", "in_set_from", "pattern", "severity", "description"])
    type_ = r.choice(m["type"], f"{key}.type", TYPES)
    nullable = r.boolean(m["nullable"], f"{key}.nullable")
    unique = r.boolean(m.get("unique", False), f"{key}.unique")
    low, high = r.bounds(m, key)
    if (low is not None or high is not None) and type_ not in NUMERIC_TYPES:
        r.fail(f"{key}.{'min' if low is not None else 'max'}",
               f"min/max apply to numeric columns, found type {type_}")
    in_set = None
    in_set_from = None
    if "in_set" in m and "in_set_from" in m:
        r.fail(f"{key}.in_set_from", "give either in_set or in_set_from, not both")
    if "in_set" in m:
        values = m["in_set"]
        if not isinstance(values, list) or not values:
            r.fail(f"{key}.in_set", f"expected a non-empty list, found {shown(values)}")
        in_set = tuple(_set_value(r, f"{key}.in_set[{i}]", v, type_) for i, v in enumerate(values))
    if "in_set_from" in m:
        in_set_from = r.choice(m["in_set_from"], f"{key}.in_set_from", (TAXONOMY,))
        if type_ != "string":
            r.fail(f"{key}.in_set_from", f"class names are strings, found column type {type_}")
        in_set = classes()
    pattern = None
    if "pattern" in m:
        pattern = r.string(m["pattern"], f"{key}.pattern")
        if type_ != "string":
            r.fail(f"{key}.pattern", f"pattern applies to string columns, found type {type_}")
        try:
            re.compile(pattern)
        except re.error as exc:
            r.fail(f"{key}.pattern", f"expected a regular expression, found {pattern!r} ({exc})")
    severity = r.choice(m.get("severity", "error"), f"{key}.severity", SEVERITIES)
    description = r.string(m["description"], f"{key}.description") if "description" in m else None
    return ColumnSpec(name=name, type=type_, nullable=nullable, unique=unique, min=low, max=high,
                      in_set=in_set, in_set_from=in_set_from, pattern=pattern, severity=severity,
                      description=description)


def _set_value(r: YamlReader, key: str, value: object, type_: str) -> object:
    if type_ == "string":
        return r.string(value, key)
    if type_ == "bool":
        return r.boolean(value, key)
    if type_.startswith("int"):
        return r.integer(value, key)
    if type_.startswith("float"):
        return float(r.number(value, key))
    r.fail(key, f"in_set is not supported for {type_} columns")


def _existing(r: YamlReader, value: object, key: str, names: set[str]) -> str:
    name = r.string(value, key)
    if name not in names:
        r.fail(key, f"expected a column of this contract, found {name!r}")
    return name


def _numeric(r: YamlReader, name: str, key: str, columns: tuple[ColumnSpec, ...]) -> str:
    type_ = next(c.type for c in columns if c.name == name)
    if type_ not in NUMERIC_TYPES:
        r.fail(key, f"expected a numeric column, found {name!r} of type {type_}")
    return name


_RULE_KEYS: dict[str, tuple[list[str], list[str]]] = {
    "row_count": ([], ["min", "max"]),
    "column_pair": (["left", "op", "right"], []),
    "unique": (["columns"], ["where_null"]),
    "relation": (["column", "references"], ["across_sources"]),
    "quarantine_rate": (["max_fraction"], []),
    "mean_between": ([], ["column", "rows_per", "min", "max"]),
    "quantile": (["quantile"], ["column", "rows_per", "min", "max"]),
    "resolution": (["min_width", "min_height"], ["width_column", "height_column"]),
}


def _rule(r: YamlReader, key: str, value: object, names: set[str],
          columns: tuple[ColumnSpec, ...], table: str) -> Rule:
    m = r.mapping(value, key)
    for k in ("name", "rule"):
        if k not in m:
            r.fail(key_path(key, k), "required key is missing")
    kind = r.choice(m["rule"], f"{key}.rule", tuple(_RULE_KEYS))
    required, optional = _RULE_KEYS[kind]
    r.keys(m, key, ["name", "rule", *required], ["severity", "description", *optional])
    name = r.snake(m["name"], f"{key}.name")
    sev = r.choice(m.get("severity", "error"), f"{key}.severity", SEVERITIES)

    if kind == "row_count":
        lo, hi = r.bounds(m, key, required=True)
        return RowCount(name, sev, None if lo is None else r.integer(lo, f"{key}.min", 0),
                        None if hi is None else r.integer(hi, f"{key}.max", 0))
    if kind == "column_pair":
        left = _numeric(r, _existing(r, m["left"], f"{key}.left", names), f"{key}.left", columns)
        right = _numeric(r, _existing(r, m["right"], f"{key}.right", names), f"{key}.right",
                         columns)
        return ColumnPair(name, sev, left, r.choice(m["op"], f"{key}.op", PAIR_OPS), right)
    if kind == "unique":
        cols = r.string_list(m["columns"], f"{key}.columns")
        for i, c in enumerate(cols):
            _existing(r, c, f"{key}.columns[{i}]", names)
        where = _existing(r, m["where_null"], f"{key}.where_null", names) \
            if "where_null" in m else None
        return Unique(name, sev, cols, where)
    if kind == "relation":
        column = _existing(r, m["column"], f"{key}.column", names)
        ref = r.string(m["references"], f"{key}.references")
        match = _REFERENCE.match(ref)
        if not match:
            r.fail(f"{key}.references", f"expected '<table>.<column>', found {ref!r}")
        if match["table"] == table and match["column"] not in names:
            r.fail(f"{key}.references", f"this contract has no column {match['column']!r}")
        across = r.boolean(m.get("across_sources", False), f"{key}.across_sources")
        return Relation(name, sev, column, match["table"], match["column"], across)
    if kind == "quarantine_rate":
        return QuarantineRate(name, sev, r.fraction(m["max_fraction"], f"{key}.max_fraction"))
    if kind in ("mean_between", "quantile"):
        if ("column" in m) == ("rows_per" in m):
            r.fail(key, "expected exactly one of 'column' (a statistic of its values) or "
                        "'rows_per' (a statistic of the number of rows per distinct value)")
        column = _numeric(r, _existing(r, m["column"], f"{key}.column", names), f"{key}.column",
                          columns) if "column" in m else None
        rows_per = _existing(r, m["rows_per"], f"{key}.rows_per", names) \
            if "rows_per" in m else None
        lo, hi = r.bounds(m, key, required=True)
        if kind == "mean_between":
            return MeanBetween(name, sev, column, rows_per, lo, hi)
        return Quantile(name, sev, column, rows_per, r.fraction(m["quantile"], f"{key}.quantile"),
                        lo, hi)
    # resolution
    width = _existing(r, m.get("width_column", "width"), f"{key}.width_column", names)
    height = _existing(r, m.get("height_column", "height"), f"{key}.height_column", names)
    return Resolution(name, sev, r.integer(m["min_width"], f"{key}.min_width", 1),
                      r.integer(m["min_height"], f"{key}.min_height", 1), width, height)


def _drift(r: YamlReader, value: object, columns: tuple[ColumnSpec, ...]) -> DriftSpec:
    m = r.mapping(value, "drift")
    r.keys(m, "drift", ["columns"],
           ["psi_max", "p_min", "min_effect", "reference_partitions", "min_rows"])
    cols = r.string_list(m["columns"], "drift.columns")
    types = {c.name: c.type for c in columns}
    for i, c in enumerate(cols):
        _existing(r, c, f"drift.columns[{i}]", set(types))
        if types[c] in ("bool", "timestamp"):
            r.fail(f"drift.columns[{i}]",
                   f"expected a numeric or string column, found {c!r} of type {types[c]}")
    if "psi_max" not in m and "p_min" not in m:
        r.fail("drift", "expected at least one of 'psi_max', 'p_min'")
    psi = None
    if "psi_max" in m:
        psi = float(r.number(m["psi_max"], "drift.psi_max"))
        if psi <= 0:
            r.fail("drift.psi_max", f"expected a number > 0, found {psi}")
    p_min = r.fraction(m["p_min"], "drift.p_min", open_low=True) if "p_min" in m else None
    effect = r.fraction(m.get("min_effect", 0.1), "drift.min_effect")
    n_ref = r.integer(m.get("reference_partitions", 7), "drift.reference_partitions", 1)
    min_rows = r.integer(m.get("min_rows", 30), "drift.min_rows", 1)
    return DriftSpec(cols, psi, p_min, effect, n_ref, min_rows)


def _boxes(r: YamlReader, value: object, names: set[str]) -> BoxRules:
    m = r.mapping(value, "boxes")
    r.keys(m, "boxes", [], ["min_side_px", "max_aspect_ratio"])
    missing = [c for c in XYXY if c not in names]
    if missing:
        r.fail("boxes", f"box rules need the columns {list(XYXY)}; the table lacks {missing}")
    side = float(r.number(m.get("min_side_px", BoxRules.min_side_px), "boxes.min_side_px"))
    if side < 0:
        r.fail("boxes.min_side_px", f"expected a number >= 0, found {side}")
    aspect: float | None = BoxRules.max_aspect_ratio
    if "max_aspect_ratio" in m:
        aspect = None if m["max_aspect_ratio"] is None else float(
            r.number(m["max_aspect_ratio"], "boxes.max_aspect_ratio"))
        if aspect is not None and aspect < 1:
            r.fail("boxes.max_aspect_ratio", f"expected a ratio >= 1 (or null), found {aspect}")
    return BoxRules(min_side_px=side, max_aspect_ratio=aspect)


_CURATION_NUMBERS = ("min_laplacian_var", "min_brightness", "max_brightness", "min_contrast",
                     "min_box_side_px", "robust_z")
_CURATION_INTEGERS = ("history_days", "min_reference_frames")


def _curation(r: YamlReader, value: object, key: str = "curation",
              base: CurationSpec | None = None) -> CurationSpec:
    """The ``curation`` section; under ``sources:``, each source's keys override ``base``."""
    m = r.mapping(value, key)
    names = [f.name for f in dataclasses.fields(CurationSpec)]
    r.keys(m, key, [], names if base is None else [n for n in names if n != "sources"])
    found: dict[str, object] = {}
    for name in _CURATION_NUMBERS:
        if name not in m:
            continue
        if m[name] is None:
            found[name] = None
            continue
        number = float(r.number(m[name], f"{key}.{name}"))
        if number < 0:
            r.fail(f"{key}.{name}", f"expected a number >= 0 (or null), found {number}")
        found[name] = number
    for name in _CURATION_INTEGERS:
        if name in m:
            found[name] = r.integer(m[name], f"{key}.{name}", 0 if name == "history_days" else 1)
    for name in ("max_excluded_share", "max_bad_box_share"):
        if name in m:
            found[name] = r.fraction(m[name], f"{key}.{name}")
    spec = dataclasses.replace(base, **found) if base is not None else CurationSpec(**found)
    if spec.min_brightness is not None and spec.max_brightness is not None \
            and spec.min_brightness >= spec.max_brightness:
        r.fail(f"{key}.max_brightness", f"expected more than min_brightness "
               f"{spec.min_brightness}, found {spec.max_brightness}")
    if base is None and "sources" in m:
        overrides = r.mapping(m["sources"], f"{key}.sources")
        spec = dataclasses.replace(spec, sources=tuple(
            (str(name), _curation(r, v, f"{key}.sources.{name}", spec))
            for name, v in sorted(overrides.items())))
    return spec
