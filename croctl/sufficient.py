"""Sufficient statistics: what the pipeline hands to the statistics (no raw rows, no Polars)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Moments:
    """Sums over the units of one cell for one metric.

    y is the per-unit metric value (numerator for ratios), d the ratio denominator, x the CUPED
    covariate and r the uncapped value of a capped metric; `yy`, `yd`, ... are cross-product sums.
    """

    n: int = 0
    y: float = 0.0
    yy: float = 0.0
    d: float = 0.0
    dd: float = 0.0
    yd: float = 0.0
    x: float = 0.0
    xx: float = 0.0
    xy: float = 0.0
    r: float = 0.0
    rr: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments.total((self, other))

    @staticmethod
    def total(items: Iterable[Moments]) -> Moments:
        """Sum of many cells' moments, field by field in the items' order.

        In C loops (`attrgetter`, `zip`, `sum`): one addition through `dataclasses.fields` took
        ~5 µs. Summaries over many cells sum a `CellTable`'s array instead.
        """
        return Moments(*map(sum, zip(*map(_VALUES, items), strict=True)))


_FIELDS = tuple(f.name for f in fields(Moments))
_VALUES = attrgetter(*_FIELDS)  # a Moments' fields, in order


@dataclass(frozen=True, slots=True)
class Cell:
    """Units of one variant with one combination of segment values, and their metric moments."""

    variant: str
    segments: tuple[str, ...]
    units: int
    metrics: tuple[Moments, ...]


Rows = npt.NDArray[np.intp]  # positions of some cells in a `CellTable` (one segment value's)


@dataclass(frozen=True, slots=True, eq=False)
class CellTable:
    """Every cell (a variant and one value of each segment dimension), one row per cell.

    Columns rather than `Cell` objects: a dimension of thousands of values, or a few dimensions
    of tens, make tens of thousands of cells, and a `Moments` per cell and metric took ~2.5 s
    to build at ~75 k cells, their sums another 1.4 s. Rows are sorted by variant, then segment
    values, so a sum over any cells adds them in one order, whatever order an engine returned.
    """

    variants: tuple[str, ...]  # the distinct variants, sorted
    variant_of: npt.NDArray[np.intp]  # each row's variant: a position in `variants`
    segments: tuple[tuple[str, ...], ...]  # per dimension, each row's value
    units: npt.NDArray[np.int64]
    moments: npt.NDArray[np.float64]  # [row, metric, field in `Moments`' order]

    @staticmethod
    def build(
        variants: Sequence[str],
        segments: Sequence[Sequence[str]],
        units: npt.ArrayLike,
        moments: npt.ArrayLike,
    ) -> CellTable:
        """A table of rows sorted by (variant, segment values); `moments` shaped as the field."""
        names = tuple(sorted(set(variants)))
        at = {name: code for code, name in enumerate(names)}
        return CellTable(
            names,
            np.fromiter(map(at.__getitem__, variants), np.intp, len(variants)),
            tuple(tuple(column) for column in segments),
            np.asarray(units, np.int64),
            np.asarray(moments, np.float64),
        )

    @staticmethod
    def of(cells: Iterable[Cell]) -> CellTable:
        """The table of some `Cell`s (in any order), all with as many metrics."""
        rows = sorted(cells, key=lambda c: (c.variant, c.segments))
        dimensions, width = (len(rows[0].segments), len(rows[0].metrics)) if rows else (0, 0)
        moments = [[_VALUES(m) for m in c.metrics] for c in rows]
        return CellTable.build(
            [c.variant for c in rows],
            [[c.segments[d] for c in rows] for d in range(dimensions)],
            [c.units for c in rows],
            np.array(moments, np.float64).reshape(len(rows), width, len(_FIELDS)),
        )

    def __len__(self) -> int:
        return len(self.variant_of)

    def __iter__(self) -> Iterator[Cell]:
        """Each row as a `Cell` (to inspect; the statistics read the columns)."""
        for row, code in enumerate(self.variant_of.tolist()):
            metrics = tuple(Moments(int(m[0]), *m[1:]) for m in self.moments[row].tolist())
            values = tuple(column[row] for column in self.segments)
            yield Cell(self.variants[code], values, int(self.units[row]), metrics)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellTable):
            return NotImplemented
        return (
            self.variants == other.variants
            and self.segments == other.segments
            and np.array_equal(self.variant_of, other.variant_of)
            and np.array_equal(self.units, other.units)
            and np.array_equal(self.moments, other.moments)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class SourceCounts:
    """Per-variant row counts of one source, for the trust checks."""

    rows: dict[str, int] = field(default_factory=dict)
    pre_exposure: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    covered: dict[str, int] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)  # column -> rows with NaN/inf
    has_timestamp: bool = True
    has_id: bool = False


@dataclass(frozen=True, slots=True)
class ExposureCounts:
    """Exposure-log counts per variant label (including labels the plan does not know)."""

    rows: dict[str, int]
    before_start: dict[str, int]
    after_end: dict[str, int]
    no_timestamp: dict[str, int]
    nonfinite: dict[str, int]  # covariate column -> rows with NaN/inf
    units_seen: int  # distinct units with an in-window exposure
    multiple_variants: int  # of those, units seen in more than one variant
    first_start: datetime | None = None  # earliest and latest first exposure: the traffic rate
    last_start: datetime | None = None

    @property
    def units_per_day(self) -> float | None:
        """New units per day over the exposure period seen so far (None under one hour)."""
        if self.first_start is None or self.last_start is None:
            return None
        days = (self.last_start - self.first_start).total_seconds() / 86400
        return self.units_seen / days if days >= 1 / 24 else None


@dataclass(frozen=True, slots=True)
class SufficientStats:
    """Everything the statistics need, computed by one pass over the exports."""

    cells: CellTable
    exposures: ExposureCounts
    sources: dict[str, SourceCounts]
    caps: dict[str, float]  # metric name -> cap applied to per-unit values

    def units_by_variant(self, rows: Rows | None = None) -> dict[str, int]:
        """Units per variant, summed over the given (default: all) cells."""
        table = self.cells
        chosen = slice(None) if rows is None else rows
        units, of = table.units[chosen], table.variant_of[chosen]
        return {
            variant: int(units[mine].sum())
            for code, variant in enumerate(table.variants)
            if (mine := of == code).any()
        }

    def by_variant(self, rows: Rows | None = None) -> dict[str, tuple[int, list[Moments]]]:
        """Units and per-metric moments per variant, summed over the given (default: all) cells.

        The cells are added in the table's order, whatever order `rows` lists them in: numpy
        reduces the first axis row after row, as `Moments.total` adds its items.
        """
        table = self.cells
        rows = np.arange(len(table)) if rows is None else np.sort(rows)
        of = table.variant_of[rows]
        totals: dict[str, tuple[int, list[Moments]]] = {}
        for code, variant in enumerate(table.variants):
            mine = rows[of == code]
            if len(mine):
                sums = table.moments[mine].sum(axis=0).tolist()
                totals[variant] = (
                    int(table.units[mine].sum()),
                    [Moments(int(m[0]), *m[1:]) for m in sums],
                )
        return totals

    def segment_groups(self, dimension: int) -> list[tuple[str, Rows]]:
        """Each distinct value of one segment dimension with its cells' rows, most units first.

        One pass over the cells: a dimension of thousands of values (a campaign, a page) has
        thousands of times as many cells, so looking each value's cells up anew was quadratic
        (11 k values, ~45 k cells: past two minutes).
        """
        groups: dict[str, list[int]] = {}
        for row, value in enumerate(self.cells.segments[dimension]):
            groups.setdefault(value, []).append(row)
        rows = {value: np.array(found, np.intp) for value, found in groups.items()}
        units = {value: int(self.cells.units[found].sum()) for value, found in rows.items()}
        return sorted(rows.items(), key=lambda group: (-units[group[0]], group[0]))
