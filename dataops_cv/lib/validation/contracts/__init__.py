"""Data contracts: one YAML file per table → Great Expectations 1.x suite → structured results.

Contract format (``data_contracts/<table>.yaml``)
-------------------------------------------------
One key per line and one list item per line, so a change to a contract is a one-line diff::

    table: raw_frames                # must equal the file name's stem
    description: One row per ingested image file of a daily partition.
    record_id: [rel_path]            # optional: columns that name a failing row in the evidence
    schema_drift: error              # error | warn: severity of an added, dropped or retyped column
    extra_columns: forbid            # forbid (default) | allow: columns not listed below
    extra_column_type: float64       # optional, with allow: the only type an extra column may have
    columns:
      width:
        type: int32                  # string|int8|int16|int32|int64|float32|float64|bool|timestamp
        nullable: false              # required; false adds a not-null expectation
        unique: false                # optional
        min: 1                       # optional, inclusive, numeric columns only
        max: 100000                  # optional, inclusive
        in_set: [1, 2]               # optional; or in_set_from: taxonomy (string columns)
        pattern: "^[0-9a-f]{64}$"    # optional regex, string columns only
        severity: error              # error (default) | warn: applies to this column's rules
        description: ...             # optional
    expectations:                    # table-level rules; each has a stable snake_case name
      - name: non_empty_partition
        rule: row_count              # min and/or max
        min: 1
        severity: error              # error (default) | warn
      - {name: ..., rule: column_pair, left: x_max, op: greater_than, right: x_min}
                                     # op: greater_than | greater_or_equal
      - {name: ..., rule: unique, columns: [a, b], where_null: c}   # where_null optional
      - {name: ..., rule: relation, column: image_sha256, references: raw_frames.sha256}
        # across_sources: true on a self-reference also accepts the same day's other sources
      - {name: ..., rule: quarantine_rate, max_fraction: 0.01}
      - {name: ..., rule: mean_between, column: score, min: 0.2, max: 0.9}
      - {name: ..., rule: quantile, rows_per: image_sha256, quantile: 0.95, max: 60}
                                     # column: <numeric> or rows_per: <column> (rows per value)
      - {name: ..., rule: resolution, min_width: 64, min_height: 64}
                                     # width_column / height_column default to width / height
    drift:                           # optional: a warn-only check against earlier partitions
      columns: [brightness, class_name]  # numeric: PSI + KS; string: PSI + chi-square
      reference_partitions: 7        # the latest N earlier partitions on main (default 7)
      min_rows: 30                   # fewer values on either side: not compared (default 30)
      psi_max: 0.2                   # > 0; PSI above it flags the column
      p_min: 0.01                    # in (0, 1]; a test p below it flags the column ...
      min_effect: 0.1                # ... if KS D / largest class-share change >= this
    curation:                        # optional: quality thresholds curation applies (null: off)
      robust_z: 3.5                  # relative: robust SDs beyond the source's median
      history_days: 7                # earlier curated days in the reference
      min_reference_frames: 20       # fewer distinct frames: the floors only
      min_laplacian_var: null        # absolute floors: blur (variance of the Laplacian of luma)
      min_brightness: 10             # exposure: mean luma, 0-255
      max_brightness: 245
      min_contrast: 2                # standard deviation of luma
      min_box_side_px: 5             # a box whose shorter side is smaller is tiny
      max_excluded_share: 0.5        # one reason excluding more of a day fails the check
      sources:                       # optional: any key above, for one source
        microscope: {robust_z: 5}
    boxes:                           # optional, tables with x_min..y_max: plausible boxes
      min_side_px: 1                 # a side must be longer (after the format's convention)
      max_aspect_ratio: 50           # longer side / shorter side; null: off

``taxonomy.yaml`` is not a table: ``classes:`` lists the class names (one per line, snake_case)
that ``in_set_from: taxonomy`` expands to; pass ``taxonomy=[...]`` to :func:`load_contract` to
relax it for one run. ``error`` failures block publishing (``ValidationReport.success`` is False);
``warn`` failures are reported only.

API
---
- :func:`load_contract`, :func:`load_contracts`, :func:`load_taxonomy` → :class:`Contract`, or
  :class:`ContractError` naming the file and key path.
- :func:`build_suite` → ``great_expectations.ExpectationSuite``.
- :func:`validate` → :class:`ValidationReport` of :class:`ExpectationResult`.
- :func:`schema_changes` → messages for added, dropped and retyped columns.
"""

from dataops_cv.lib.validation.contracts.loader import load_contract, load_contracts, load_taxonomy
from dataops_cv.lib.validation.contracts.spec import (
    SEVERITIES,
    TYPES,
    ColumnPair,
    ColumnSpec,
    Contract,
    ContractError,
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
from dataops_cv.lib.validation.contracts.validation import (
    SCHEMA_RESULT,
    ExpectationResult,
    ValidationReport,
    build_suite,
    rows_per_column,
    schema_changes,
    validate,
)

__all__ = [
    "SCHEMA_RESULT", "SEVERITIES", "TYPES", "ColumnPair", "ColumnSpec", "Contract",
    "ContractError", "CurationSpec", "DriftSpec", "ExpectationResult", "MeanBetween", "Quantile",
    "QuarantineRate", "Relation", "Resolution", "RowCount", "Rule", "Unique", "ValidationReport",
    "build_suite", "load_contract", "load_contracts", "load_taxonomy", "rows_per_column",
    "schema_changes", "validate",
]
