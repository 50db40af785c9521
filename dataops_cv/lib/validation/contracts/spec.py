"""The parsed form of a data contract: frozen dataclasses for its columns, table rules, drift and
curation settings, and :class:`ContractError`.

The YAML format is documented in :mod:`dataops_cv.lib.validation.contracts`;
:mod:`dataops_cv.lib.validation.contracts.loader` turns a file into a :class:`Contract`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataops_cv.lib.core.annotations import BoxRules

TYPES = ("string", "int8", "int16", "int32", "int64", "float32", "float64", "bool", "timestamp")
NUMERIC_TYPES = frozenset({"int8", "int16", "int32", "int64", "float32", "float64"})
SEVERITIES = ("error", "warn")
PAIR_OPS = ("greater_than", "greater_or_equal")
# Column names starting with this are reserved for columns validate() derives (rows per group).
RESERVED_PREFIX = "__"


class ContractError(ValueError):
    """A malformed contract file; the message names the file, key path, expected and found."""

    def __init__(self, file: str, key: str, message: str):
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file = file
        self.key = key


@dataclass(frozen=True)
class ColumnSpec:
    """One column: type and nullability, plus optional value rules (all share ``severity``)."""

    name: str
    type: str
    nullable: bool
    unique: bool = False
    min: float | None = None
    max: float | None = None
    in_set: tuple[object, ...] | None = None
    in_set_from: str | None = None  # where in_set came from ("taxonomy"), for messages
    pattern: str | None = None
    severity: str = "error"
    description: str | None = None


@dataclass(frozen=True)
class RowCount:
    name: str
    severity: str
    min: int | None
    max: int | None


@dataclass(frozen=True)
class ColumnPair:
    """``left`` is greater than (or equal to) ``right`` on every row where both are set."""

    name: str
    severity: str
    left: str
    op: str
    right: str


@dataclass(frozen=True)
class Unique:
    """The combination of ``columns`` is unique, among rows where ``where_null`` is null if set."""

    name: str
    severity: str
    columns: tuple[str, ...]
    where_null: str | None


@dataclass(frozen=True)
class Relation:
    """Every non-null ``column`` value exists in ``table.ref_column`` (passed to validate);
    ``across_sources``: in the partition's table or the same day's tables of other sources."""

    name: str
    severity: str
    column: str
    table: str
    ref_column: str
    across_sources: bool = False


@dataclass(frozen=True)
class QuarantineRate:
    """quarantined / (quarantined + kept) is at most ``max_fraction``."""

    name: str
    severity: str
    max_fraction: float


@dataclass(frozen=True)
class MeanBetween:
    """The mean of ``column``, or of the number of rows per distinct ``rows_per`` value."""

    name: str
    severity: str
    column: str | None
    rows_per: str | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Quantile:
    """One quantile of ``column`` (or of rows per ``rows_per`` value) lies in [min, max]."""

    name: str
    severity: str
    column: str | None
    rows_per: str | None
    quantile: float
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Resolution:
    """Every frame is at least ``min_width`` x ``min_height`` pixels."""

    name: str
    severity: str
    min_width: int
    min_height: int
    width_column: str
    height_column: str


Rule = (RowCount | ColumnPair | Unique | Relation | QuarantineRate | MeanBetween | Quantile
        | Resolution)


@dataclass(frozen=True)
class DriftSpec:
    """How a partition is compared with the partitions before it (see dataops_cv.lib.validation.drift).

    A column drifts when every threshold set is crossed: the effect is at least ``min_effect``
    (the KS statistic D for numbers, the largest change of a category's share for strings), PSI
    is above ``psi_max`` and the test's p-value (KS, chi-square) is below ``p_min``. Significance
    alone flags tiny shifts once partitions hold thousands of rows; PSI alone flags noise in
    small ones; and rows captured in one session are not independent, so an effect size is the
    threshold that keeps a nightly warning meaningful.
    """

    columns: tuple[str, ...]
    psi_max: float | None
    p_min: float | None
    min_effect: float = 0.1
    reference_partitions: int = 7
    min_rows: int = 30


@dataclass(frozen=True)
class CurationSpec:
    """Quality thresholds curation applies to a table's samples (a ``curation`` section): a
    sample beyond one of them is kept out of training sets as harmful, with the threshold named.

    Blur is the variance of the Laplacian of luma, exposure the mean luma (0-255), contrast its
    standard deviation, and a tiny box one whose shorter side in pixels is below
    ``min_box_side_px``. ``min_laplacian_var`` ... ``min_contrast`` are absolute floors for
    frames no domain can use (black, white, near-constant); ``robust_z`` sets the thresholds
    relative to the source's own recent frames (see :mod:`dataops_cv.lib.curation.thresholds`):
    ``history_days`` earlier curated days join the day in the reference, which needs at least
    ``min_reference_frames`` frames. ``max_excluded_share``: one reason excluding more of a day
    than this fails the curation check. ``max_bad_box_share``: tiny or disputed boxes make their
    frame harmful when they are more than this share of its boxes (0: any one). ``sources``
    overrides any of these for one source. ``None`` turns a threshold off.
    """

    min_laplacian_var: float | None = None
    min_brightness: float | None = None
    max_brightness: float | None = None
    min_contrast: float | None = None
    min_box_side_px: float | None = None
    robust_z: float | None = None
    history_days: int = 7
    min_reference_frames: int = 20
    max_excluded_share: float = 0.5
    max_bad_box_share: float = 0.0
    sources: tuple[tuple[str, CurationSpec], ...] = ()

    def for_source(self, source: str | None) -> CurationSpec:
        """The thresholds of one source: its override where the contract has one."""
        for name, spec in self.sources:
            if name == source:
                return spec
        return self


@dataclass(frozen=True)
class Contract:
    """A parsed, validated contract for one table (hashable: suites are cached per contract)."""

    table: str
    description: str
    columns: tuple[ColumnSpec, ...]
    rules: tuple[Rule, ...]
    schema_drift: str  # severity of an added, dropped or retyped column
    extra_columns: str  # "forbid" | "allow"
    extra_column_type: str | None  # when extra columns are allowed, the only type they may have
    drift: DriftSpec | None
    record_id: tuple[str, ...]  # columns naming a row in evidence (e.g. rel_path); may be empty
    path: str
    sha256: str  # of the contract file's bytes: names the exact contract a report was made with
    curation: CurationSpec | None = None
    boxes: BoxRules | None = None  # plausibility of the boxes of an annotations table

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``; KeyError naming the contract if it has none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.path}: contract {self.table} has no column {name!r}")
