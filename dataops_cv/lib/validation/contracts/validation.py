"""Contracts → Great Expectations 1.x suites → structured, JSON-able results.

GX runs every rule it can express, in one validation call per table, on a pandas batch of a
process-wide ephemeral context. Plain pandas/pyarrow handles only what GX cannot express here:

- ``schema`` (added/dropped/retyped columns): GX's type expectations read pandas dtypes, and with
  pandas 3 they report the default string dtype as ``str`` and tz-aware timestamps as
  ``Timestamp``, matching neither numpy nor Arrow names; one comparison of Arrow-level types
  (:func:`schema_changes`) serves the DataFrame and a Parquet schema before it is written.
- ``relation``: needs a second table; a GX batch holds one.
- ``quarantine_rate``: compares counts passed in by the caller; there is no column to expect on.

``mean_between``/``quantile`` with ``rows_per`` are GX expectations on a derived column holding
each group's row count once (null on the group's other rows), because GX has no group-by
aggregate for pandas batches; nulls are skipped by GX, so the statistic is over groups.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from dataops_cv.lib.validation.contracts.spec import (
    RESERVED_PREFIX,
    ColumnPair,
    Contract,
    MeanBetween,
    Quantile,
    QuarantineRate,
    Relation,
    Resolution,
    RowCount,
    Unique,
)

if TYPE_CHECKING:
    import great_expectations as gx

# great_expectations is imported inside the functions that use it: importing it takes seconds,
# and every process that loads the contracts (e.g. each Dagster step) would pay that up front.

SAMPLE_SIZE = 5
SCHEMA_RESULT = "schema"
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}
_GX_LOCK = threading.Lock()


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one rule (or one column's rule), ready for check metadata and evidence.

    ``unexpected_count``/``unexpected_fraction`` count rows (values, for relations) for row-level
    rules; aggregate rules (row count, mean, quantile) report 0 and None and put the statistic in
    ``observed``. ``sample`` holds a few failing values (GX ``partial_unexpected_list``) and
    ``records`` the same rows named by the contract's ``record_id`` columns, with the value.
    """

    name: str
    column: str | None
    severity: str  # "error" | "warn"
    passed: bool
    expected: str
    observed: str
    unexpected_count: int
    unexpected_fraction: float | None
    sample: list = field(default_factory=list)
    records: list = field(default_factory=list)


@dataclass
class ValidationReport:
    """Every rule's result for one table; ``success`` unless an error-severity rule failed."""

    table: str
    results: list[ExpectationResult]
    rows: int = 0
    contract_sha256: str = ""

    @property
    def success(self) -> bool:
        return not self.failed("error")

    def failed(self, severity: str | None = None) -> list[ExpectationResult]:
        """Failed results, of one severity ("error" | "warn") or of any when None."""
        return [r for r in self.results
                if not r.passed and (severity is None or r.severity == severity)]

    def to_json(self) -> str:
        """The full report as strict JSON (no NaN), for writing next to the data as evidence."""
        return json.dumps({
            "table": self.table,
            "contract_sha256": self.contract_sha256,
            "rows": self.rows,
            "success": self.success,
            "results": [asdict(r) for r in self.results],
        }, indent=2, allow_nan=False)


@functools.cache
def _batch_definition():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # One ephemeral context per process: creating one costs far more than a validation.
    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(name="dataops_cv").add_dataframe_asset(name="table")
    return asset.add_batch_definition_whole_dataframe("whole_table")


def build_suite(contract: Contract) -> gx.ExpectationSuite:
    """A GX suite with one expectation per column rule and per GX-expressible table rule.

    Each expectation's ``meta`` carries ``name``, ``column``, ``severity`` and ``expected`` (how
    :func:`validate` maps results back) and ``needs`` (the source columns it reads). Rules with
    ``rows_per`` read a derived column ``__rows_per__<column>`` that :func:`validate` adds.
    """
    import great_expectations as gx

    return gx.ExpectationSuite(name=f"{contract.table}_contract",
                               expectations=list(_expectations(contract)))


@functools.lru_cache(maxsize=64)
def _cached_suite(contract: Contract) -> gx.ExpectationSuite:
    return build_suite(contract)


def rows_per_column(column: str) -> str:
    """Name of the derived column holding the row count of each ``column`` value (once)."""
    return f"{RESERVED_PREFIX}rows_per__{column}"


def _meta(name: str, column: str | None, severity: str, expected: str,
          needs: list[str]) -> dict:
    return {"name": name, "column": column, "severity": severity, "expected": expected,
            "needs": needs}


def _expectations(contract: Contract) -> Iterator[gx.expectations.Expectation]:
    for order, expectation in enumerate(_unordered_expectations(contract)):
        expectation.meta["order"] = order
        yield expectation


def _unordered_expectations(contract: Contract) -> Iterator[gx.expectations.Expectation]:
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    E = gx.expectations  # noqa: N806 - reads like the GX docs
    for c in contract.columns:
        def meta(name: str, expected: str, c=c) -> dict:
            return _meta(name, c.name, c.severity, expected, [c.name])

        if not c.nullable:
            yield E.ExpectColumnValuesToNotBeNull(column=c.name, meta=meta("not_null", "no nulls"))
        if c.unique:
            yield E.ExpectColumnValuesToBeUnique(column=c.name, meta=meta("unique", "unique"))
        if c.min is not None or c.max is not None:
            yield E.ExpectColumnValuesToBeBetween(column=c.name, min_value=c.min, max_value=c.max,
                                                  meta=meta("range", _between(c.min, c.max)))
        if c.in_set is not None:
            origin = f"{c.in_set_from} " if c.in_set_from else ""
            yield E.ExpectColumnValuesToBeInSet(
                column=c.name, value_set=list(c.in_set),
                meta=meta("in_set", f"one of {origin}{list(c.in_set)}"))
        if c.pattern is not None:
            yield E.ExpectColumnValuesToMatchRegex(column=c.name, regex=c.pattern,
                                                   meta=meta("pattern", f"matches {c.pattern}"))
    for rule in contract.rules:
        if isinstance(rule, RowCount):
            yield E.ExpectTableRowCountToBeBetween(
                min_value=rule.min, max_value=rule.max,
                meta=_meta(rule.name, None, rule.severity,
                           f"row count {_between(rule.min, rule.max)}", []))
        elif isinstance(rule, ColumnPair):
            strict = rule.op == "greater_than"
            yield E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=rule.left, column_B=rule.right, or_equal=not strict,
                # A missing value is not_null's business, not a failed comparison.
                ignore_row_if="either_value_is_missing",
                meta=_meta(rule.name, None, rule.severity,
                           f"{rule.left} {'>' if strict else '>='} {rule.right}",
                           [rule.left, rule.right]))
        elif isinstance(rule, Unique):
            condition = Column(rule.where_null).is_null() if rule.where_null else None
            scope = f" among rows where {rule.where_null} is null" if rule.where_null else ""
            meta = _meta(rule.name, rule.columns[0] if len(rule.columns) == 1 else None,
                         rule.severity, f"{' + '.join(rule.columns)} unique{scope}",
                         [*rule.columns, *([rule.where_null] if rule.where_null else [])])
            if len(rule.columns) == 1:
                yield E.ExpectColumnValuesToBeUnique(column=rule.columns[0],
                                                     row_condition=condition, meta=meta)
            else:
                yield E.ExpectCompoundColumnsToBeUnique(column_list=list(rule.columns),
                                                        row_condition=condition, meta=meta)
        elif isinstance(rule, MeanBetween | Quantile):
            source = rule.column or rule.rows_per
            target = rule.column or rows_per_column(rule.rows_per)
            what = rule.column or f"rows per {rule.rows_per}"
            if isinstance(rule, MeanBetween):
                yield E.ExpectColumnMeanToBeBetween(
                    column=target, min_value=rule.min, max_value=rule.max,
                    meta=_meta(rule.name, source, rule.severity,
                               f"mean of {what} {_between(rule.min, rule.max)}", [source]))
            else:
                yield E.ExpectColumnQuantileValuesToBeBetween(
                    column=target, quantile_ranges={"quantiles": [rule.quantile],
                                                    "value_ranges": [[rule.min, rule.max]]},
                    meta=_meta(rule.name, source, rule.severity,
                               f"{_q(rule.quantile)} of {what} {_between(rule.min, rule.max)}",
                               [source]))
        elif isinstance(rule, Resolution):
            # One GX expectation per axis; both results carry the rule's name.
            for column, minimum in ((rule.width_column, rule.min_width),
                                    (rule.height_column, rule.min_height)):
                yield E.ExpectColumnValuesToBeBetween(
                    column=column, min_value=minimum,
                    meta=_meta(rule.name, column, rule.severity,
                               f"{column} >= {minimum} (minimum {rule.min_width}x"
                               f"{rule.min_height})", [column]))


def validate(
    contract: Contract,
    df: pd.DataFrame,
    *,
    related: Mapping[str, pd.DataFrame] = MappingProxyType({}),
    quarantined: int | None = None,
    quarantine_sample: Sequence[Mapping[str, object]] = (),
) -> ValidationReport:
    """Check ``df`` against ``contract``: schema, every GX expectation (one call), then the
    relation and quarantine-rate rules.

    Rules that read a column ``df`` lacks are reported failed as "not evaluated" with their own
    severity (besides the ``schema`` result), so dropping a column never silently drops its rules.

    Args:
        contract: from :func:`~dataops_cv.lib.validation.contracts.load_contract`.
        df: the table, e.g. ``pyarrow_table.to_pandas()``.
        related: referenced tables by name, for ``relation`` rules (a rule referencing the
            contract's own table uses ``df``).
        quarantined: records set aside while producing ``df``, for ``quarantine_rate`` rules.
        quarantine_sample: a few of those records (e.g. source and reason), shown as the
            ``records`` of a failing ``quarantine_rate`` result.

    Raises:
        ValueError: the contract has a rule whose input was not passed (a referenced table, its
            column, or ``quarantined``): a caller's mistake, not bad data.
    """
    _check_inputs(contract, related, quarantined)
    present = set(df.columns)
    suite = _cached_suite(contract)
    # Keyed by suite order, so results read in contract order whatever order GX returns them in.
    by_order: dict[int, ExpectationResult] = {}
    for e in suite.expectations:
        missing = sorted(set(e.meta["needs"]) - present)
        if missing:
            by_order[e.meta["order"]] = _not_evaluated(e.meta, missing)
    if by_order:
        import great_expectations as gx

        suite = gx.ExpectationSuite(name=suite.name, expectations=[
            e for e in _expectations(contract) if e.meta["order"] not in by_order])
    if suite.expectations:
        frame = _with_rows_per(contract, df)
        with _GX_LOCK:
            batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
            ids = [c for c in contract.record_id if c in present]
            result_format = ({**_RESULT_FORMAT, "unexpected_index_column_names": ids}
                             if ids else _RESULT_FORMAT)
            outcome = batch.validate(suite, result_format=result_format)
        for r in outcome.results:
            by_order[r.expectation_config.meta["order"]] = _from_gx(r)
    results = [_schema_result(contract, df), *(by_order[k] for k in sorted(by_order))]
    for rule in contract.rules:
        if isinstance(rule, Relation):
            results.append(_relation(contract, rule, df, related))
        elif isinstance(rule, QuarantineRate):
            result = _quarantine_rate(rule, len(df), quarantined)
            if not result.passed:
                result = dataclasses.replace(
                    result, records=_plain([dict(r) for r in quarantine_sample[:SAMPLE_SIZE]]))
            results.append(result)
    return ValidationReport(table=contract.table, results=results, rows=len(df),
                            contract_sha256=contract.sha256)


def _check_inputs(contract: Contract, related: Mapping[str, pd.DataFrame],
                  quarantined: int | None) -> None:
    for rule in contract.rules:
        if isinstance(rule, Relation) and rule.table != contract.table:
            ref = related.get(rule.table)
            if ref is None:
                raise ValueError(
                    f"{contract.path}: rule {rule.name} checks {rule.column} against "
                    f"{rule.table}.{rule.ref_column}; pass related={{'{rule.table}': <table>}}")
            if rule.ref_column not in ref.columns:
                raise ValueError(
                    f"{contract.path}: rule {rule.name}: related table {rule.table} has no column "
                    f"{rule.ref_column!r}; found {list(ref.columns)}")
        if isinstance(rule, QuarantineRate) and (quarantined is None or quarantined < 0):
            raise ValueError(
                f"{contract.path}: rule {rule.name} needs the number of quarantined records; "
                f"pass quarantined=<count >= 0>, found {quarantined!r}")


def _with_rows_per(contract: Contract, df: pd.DataFrame) -> pd.DataFrame:
    derived = {}
    for rule in contract.rules:
        if isinstance(rule, MeanBetween | Quantile) and rule.rows_per and rule.rows_per in df:
            key = df[rule.rows_per]
            counts = key.map(key.value_counts(dropna=True))
            first = key.notna() & ~key.duplicated()
            derived[rows_per_column(rule.rows_per)] = counts.where(first).astype("float64")
    return df.assign(**derived) if derived else df


def _from_gx(r) -> ExpectationResult:
    meta = r.expectation_config.meta
    res = r.result or {}
    base = {"name": meta["name"], "column": meta["column"], "severity": meta["severity"],
            "expected": meta["expected"]}
    error = _exception_message(r.exception_info)
    if error is not None:
        # A rule GX could not evaluate (e.g. text in a numeric column) did not pass.
        return ExpectationResult(**base, passed=False, observed=f"not evaluated: {error}",
                                 unexpected_count=0, unexpected_fraction=None)
    if "unexpected_count" in res:
        total, bad = res.get("element_count") or 0, int(res["unexpected_count"] or 0)
        pct = res.get("unexpected_percent")
        return ExpectationResult(
            **base, passed=bool(r.success),
            observed=f"{bad} of {total} rows unexpected" + (f" ({pct:.3g}%)" if pct else ""),
            unexpected_count=bad, unexpected_fraction=None if pct is None else pct / 100,
            sample=_plain(list(res.get("partial_unexpected_list") or [])),
            records=_plain(list(res.get("partial_unexpected_index_list") or [])))
    observed = res.get("observed_value")
    if _no_values(observed) and r.expectation_config.type in _STATISTICS:
        # A mean or quantile of no values judges nothing; an empty table is row_count's to flag.
        return ExpectationResult(**base, passed=True, observed="no values to judge",
                                 unexpected_count=0, unexpected_fraction=None)
    return ExpectationResult(**base, passed=bool(r.success), observed=_observed(observed),
                             unexpected_count=0, unexpected_fraction=None)


_STATISTICS = frozenset({"expect_column_mean_to_be_between",
                         "expect_column_quantile_values_to_be_between"})


def _no_values(observed: object) -> bool:
    """A statistic of no values: None for a mean; None or NaN for every quantile."""
    if isinstance(observed, Mapping) and "values" in observed:
        return all(v is None or (isinstance(v, float) and math.isnan(v))
                   for v in observed["values"] or [None])
    return observed is None


def _exception_message(info: Mapping[str, object] | None) -> str | None:
    if not info:
        return None
    # Either one flat record or one record per failed metric, keyed by metric id.
    records = [info] if "raised_exception" in info else list(info.values())
    for rec in records:
        if isinstance(rec, Mapping) and rec.get("raised_exception"):
            return str(rec.get("exception_message") or "GX raised an exception")
    return None


def _not_evaluated(meta: Mapping[str, object], missing: list[str]) -> ExpectationResult:
    return ExpectationResult(
        name=str(meta["name"]), column=meta["column"], severity=str(meta["severity"]),
        passed=False, expected=str(meta["expected"]),
        observed=f"not evaluated: column(s) {missing} missing from the table",
        unexpected_count=0, unexpected_fraction=None)


def _relation(contract: Contract, rule: Relation, df: pd.DataFrame,
              related: Mapping[str, pd.DataFrame]) -> ExpectationResult:
    # Plain pandas: the rule spans two tables and a GX batch holds one.
    expected = f"every {rule.column} is a {rule.table}.{rule.ref_column}"
    if rule.column not in df:
        return _not_evaluated(_meta(rule.name, rule.column, rule.severity, expected, []),
                              [rule.column])
    if rule.table == contract.table:
        # A table referencing itself: its own rows, and with across_sources the same day's
        # other sources' rows the caller gives (a duplicate may name a frame another keeps).
        ref = pd.concat([df, related[rule.table]]) \
            if rule.across_sources and rule.table in related else df
    else:
        ref = related[rule.table]
    if rule.ref_column not in ref:
        return _not_evaluated(_meta(rule.name, rule.column, rule.severity, expected, []),
                              [rule.ref_column])
    values = df[rule.column]
    known = values.notna()
    dangling = known & ~values.isin(ref[rule.ref_column].dropna())
    bad, total = int(dangling.sum()), int(known.sum())
    return ExpectationResult(
        name=rule.name, column=rule.column, severity=rule.severity, passed=bad == 0,
        expected=expected,
        observed=f"{bad} of {total} values not found in {rule.table} ({len(ref)} rows)",
        unexpected_count=bad, unexpected_fraction=bad / total if total else None,
        sample=_plain(list(pd.unique(values[dangling])[:SAMPLE_SIZE])),
        records=_records(contract, df, dangling, rule.column))


def _records(contract: Contract, df: pd.DataFrame, mask: pd.Series, column: str) -> list:
    """The first failing rows, named by the contract's record_id columns, with the value."""
    ids = [c for c in contract.record_id if c in df.columns]
    if not ids:
        return []
    cols = list(dict.fromkeys([*ids, column]))
    return _plain(df.loc[mask, cols].head(SAMPLE_SIZE).to_dict("records"))


def _quarantine_rate(rule: QuarantineRate, kept: int, quarantined: int | None) -> ExpectationResult:
    # Plain arithmetic: the quarantined records are not in the table GX sees.
    q = int(quarantined or 0)
    total = q + kept
    fraction = q / total if total else 0.0
    return ExpectationResult(
        name=rule.name, column=None, severity=rule.severity,
        passed=fraction <= rule.max_fraction,
        expected=f"at most {rule.max_fraction:.4g} of records quarantined",
        observed=f"{q} of {total} records quarantined ({fraction:.4g})",
        unexpected_count=q, unexpected_fraction=fraction)


def _schema_result(contract: Contract, df: pd.DataFrame) -> ExpectationResult:
    changes = schema_changes(contract, df)
    extras = ""
    if contract.extra_columns == "allow":
        extras = f"; extra {contract.extra_column_type or 'any'}-typed columns allowed"
    return ExpectationResult(
        name=SCHEMA_RESULT, column=None, severity=contract.schema_drift, passed=not changes,
        expected=f"the contract's {len(contract.columns)} columns and types{extras}",
        observed="; ".join(changes) if changes else "as in the contract",
        unexpected_count=len(changes), unexpected_fraction=None, sample=changes[:SAMPLE_SIZE])


def schema_changes(contract: Contract, schema: pa.Schema | pd.DataFrame) -> list[str]:
    """Human messages naming each column added, dropped or retyped relative to ``contract``.

    ``schema`` is an Arrow schema (e.g. of a table about to be written) or a DataFrame. Types are
    compared at contract level: any timestamp unit or zone is ``timestamp``, any string storage is
    ``string``. In a DataFrame, an integer column read from Arrow with nulls arrives as float64
    with integral values: that is accepted as the contract's integer type.
    """
    if isinstance(schema, pa.Schema):
        found = {f.name: _arrow_type(f.type) for f in schema}
    elif isinstance(schema, pd.DataFrame):
        found = {str(name): _pandas_type(schema[name], contract, str(name))
                 for name in schema.columns}
    else:
        raise TypeError(f"schema_changes: expected a pyarrow.Schema or pandas.DataFrame, found "
                        f"{type(schema).__name__}")
    changes = []
    for c in contract.columns:
        if c.name not in found:
            changes.append(f"column {c.name!r} dropped: contract {c.type}, not found")
        elif found[c.name] != c.type:
            changes.append(f"column {c.name!r} retyped: contract {c.type}, found {found[c.name]}")
    names = set(contract.column_names)
    for name, type_ in found.items():
        if name in names:
            continue
        if contract.extra_columns == "forbid":
            changes.append(f"column {name!r} added: found {type_}, not in the contract")
        elif contract.extra_column_type and type_ != contract.extra_column_type:
            changes.append(f"column {name!r} added with type {type_}: the contract allows extra "
                           f"columns of type {contract.extra_column_type} only")
    return changes


def _arrow_type(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _arrow_type(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return f"{'u' if pa.types.is_unsigned_integer(t) else ''}int{t.bit_width}"
    if pa.types.is_floating(t):
        return f"float{t.bit_width}"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return str(t)


def _pandas_type(s: pd.Series, contract: Contract, name: str) -> str:
    dtype = s.dtype
    wanted = contract.column(name).type if name in contract.column_names else None
    if isinstance(dtype, pd.ArrowDtype):
        return _arrow_type(dtype.pyarrow_dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        return f"category[{_pandas_type(s.astype(dtype.categories.dtype), contract, name)}]"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return f"{'u' if dtype.kind == 'u' else ''}int{dtype.itemsize * 8}"
    if pd.api.types.is_float_dtype(dtype):
        if wanted and wanted.startswith("int") and _nullable_int(s):
            return wanted
        return f"float{dtype.itemsize * 8}"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if dtype == object:
        # Arrow bool with nulls arrives as object; an all-null column fits any contract type.
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred == "empty":
            return wanted or "null"
        return {"string": "string", "boolean": "bool"}.get(inferred, f"object[{inferred}]")
    return str(dtype)


def _nullable_int(s: pd.Series) -> bool:
    # The signature of Arrow integers with nulls converted by to_pandas(): float64, some NaN,
    # every other value whole.
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    known = values[~np.isnan(values)]
    return len(known) < len(values) and bool(np.all(np.mod(known, 1) == 0))


def _between(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _q(quantile: float) -> str:
    return f"p{quantile * 100:g}"


def _observed(value: object) -> str:
    value = _plain(value)
    if isinstance(value, dict) and "quantiles" in value and "values" in value:
        return ", ".join(f"{_q(q)} = {_fmt(v)}" for q, v in zip(value["quantiles"],
                                                               value["values"], strict=False))
    return _fmt(value)


def _fmt(value: object) -> str:
    if value is None:
        return "no value (no non-null rows)"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plain(value: object) -> object:
    """``value`` as plain JSON-able Python: numpy scalars unwrapped, NaN/NA/NaT as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else (None if math.isnan(value) else str(value))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if pd.isna(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)
