"""From a plan and its exports to sufficient statistics: bind, build one query, collect once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np

from croctl.errors import DataError, did_you_mean
from croctl.pipeline.bind import bind_plan
from croctl.pipeline.bound import BoundPlan
from croctl.pipeline.collect import collect_query, distinct_variants
from croctl.pipeline.engines import collect_from_file, collect_with_duckdb, collect_with_spark
from croctl.pipeline.table import RERUN, no_units_in_window
from croctl.plan import Plan
from croctl.sufficient import SufficientStats

__all__ = ["BoundPlan", "Engine", "bind_plan", "collect_stats", "validate_plan"]


class Engine(StrEnum):
    """Where the aggregation runs (`--engine`)."""

    POLARS = "polars"
    DUCKDB = "duckdb"
    SPARK = "spark"


def collect_stats(
    plan: Plan, *, engine: Engine = Engine.POLARS, stats_file: Path | None = None
) -> SufficientStats:
    """Reduce the plan's exports to sufficient statistics.

    Polars runs one lazy query collected once (streaming); DuckDB and Spark run the plan's SQL;
    `stats_file` is a statistics table already computed elsewhere.

    Raises:
        DataError: unreadable exports, unknown variant labels, a planned variant with no units,
            or NaN/inf in a value column.
        PlanErrors: columns or filters that the exports cannot satisfy.
    """
    if stats_file is not None:
        stats = collect_from_file(plan, stats_file)
    else:
        bound = bind_plan(plan)
        if engine is Engine.DUCKDB:
            stats = collect_with_duckdb(bound)
        elif engine is Engine.SPARK:
            stats = collect_with_spark(bound)
        else:
            stats = collect_query(bound)
    refuse_bad_data(plan, stats, from_table=stats_file is not None)
    return stats


def refuse_unknown_labels(plan: Plan, seen: set[str]) -> None:
    """Raise `DataError` for variant labels the plan does not list (with the closest one)."""
    planned = plan.experiment.variants
    unknown = sorted(seen - set(planned))
    if unknown:
        hint = did_you_mean(unknown[0], planned) or "planned: " + ", ".join(planned)
        raise DataError(
            f"{plan.exposures.path.name}: variant label(s) not in the plan: {', '.join(unknown)}",
            hint=hint,
        )


def validate_plan(plan: Plan) -> BoundPlan:
    """Check the plan against its exports without computing the readout.

    Columns, types and filters are checked on headers and a few rows; variant labels with one
    scan of the exposures' variant column.

    Raises:
        DataError: unreadable exports, unknown variant labels, a planned variant never seen.
        PlanErrors: columns or filters that the exports cannot satisfy.
    """
    bound = bind_plan(plan)
    seen = distinct_variants(bound)
    refuse_unknown_labels(plan, seen)
    missing = [v for v in plan.experiment.variants if v not in seen]
    if missing:
        raise DataError(
            f"{plan.exposures.path.name}: planned variant(s) never exposed: {', '.join(missing)}",
            hint="check experiment.variants against the variant column",
        )
    return bound


def refuse_bad_data(plan: Plan, stats: SufficientStats, *, from_table: bool = False) -> None:
    """Raise `DataError` for data that no readout can be trusted on (SPEC §4 rule 5, §9).

    `from_table`: the statistics came from a table file (`--stats`), which may have been edited.

    Raises:
        DataError: see `collect_stats`.
    """
    refuse_unknown_labels(plan, set(stats.exposures.rows))
    label = plan.exposures.path.name
    planned = plan.experiment.variants
    units = stats.units_by_variant()
    if not units:
        raise no_units_in_window(plan)
    empty = [v for v in planned if not units.get(v)]
    if empty:
        raise DataError(
            f"{label}: planned variant(s) with no exposed units: {', '.join(empty)}",
            hint="check the variant labels and the experiment window",
        )
    _refuse_nonfinite(label, stats.exposures.nonfinite)
    for name, source in stats.sources.items():
        _refuse_nonfinite(str(plan.sources[name].path.name), source.nonfinite)
    _refuse_overflow(plan, stats, from_table)


def _refuse_overflow(plan: Plan, stats: SufficientStats, from_table: bool) -> None:
    """Sums past 64-bit floats: a value column's values of ~1e154 and more overflow squared.

    Some systems write the largest double as a missing value. Their statistics would be NaN.
    """
    for k, metric in enumerate(plan.measured):
        if not np.isfinite(stats.cells.moments[:, k]).all():
            raise DataError(
                f"metric '{metric.name}': its sums are not finite (values or squares past 1.8e308)",
                hint=RERUN if from_table else "rescale the value column or drop its outliers",
            )


def _refuse_nonfinite(label: str, counts: dict[str, int]) -> None:
    for column, n in counts.items():
        if n:
            raise DataError(
                f"{label}: column '{column}' has {n} NaN or infinite value(s)",
                hint="fix or drop those rows; empty cells count as zero",
            )
