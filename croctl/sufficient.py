"""Sufficient statistics: what the pipeline hands to the statistics (no raw rows, no Polars)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime


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
        return Moments(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @staticmethod
    def total(items: Iterable[Moments]) -> Moments:
        """Sum of many cells' moments."""
        result = Moments()
        for item in items:
            result = result + item
        return result


@dataclass(frozen=True, slots=True)
class Cell:
    """Units of one variant with one combination of segment values, and their metric moments."""

    variant: str
    segments: tuple[str, ...]
    units: int
    metrics: tuple[Moments, ...]


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

    cells: tuple[Cell, ...]
    exposures: ExposureCounts
    sources: dict[str, SourceCounts]
    caps: dict[str, float]  # metric name -> cap applied to per-unit values

    def by_variant(
        self, cells: Iterable[Cell] | None = None
    ) -> dict[str, tuple[int, list[Moments]]]:
        """Units and per-metric moments per variant, summed over the given (default: all) cells."""
        grouped: dict[str, list[Cell]] = {}
        for cell in self.cells if cells is None else cells:
            grouped.setdefault(cell.variant, []).append(cell)
        return {
            v: (
                sum(c.units for c in cs),
                [Moments.total(m) for m in zip(*(c.metrics for c in cs), strict=True)],
            )
            for v, cs in grouped.items()
        }

    def segment_values(self, dimension: int) -> list[str]:
        """Distinct values of one segment dimension, most units first."""
        totals: dict[str, int] = {}
        for cell in self.cells:
            totals[cell.segments[dimension]] = totals.get(cell.segments[dimension], 0) + cell.units
        return sorted(totals, key=lambda v: (-totals[v], v))

    def segment_cells(self, dimension: int, value: str) -> list[Cell]:
        """Cells whose segment `dimension` equals `value`."""
        return [c for c in self.cells if c.segments[dimension] == value]
