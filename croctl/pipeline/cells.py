"""From a unit table with per-unit sums to the cells: metric values, caps, sums per cell.

Shared by the hash query (`build`) and the dense arrays (`dense`): whichever way each unit's sums
were found, the statistics are taken from them here.
"""

from __future__ import annotations

import polars as pl

from croctl.errors import PlanError
from croctl.pipeline.bound import BoundPlan
from croctl.pipeline.caps import candidate_key
from croctl.pipeline.names import metric_col
from croctl.pipeline.table import cap_columns, cell_keys, check_columns, moment_columns
from croctl.plan import MetricType, Plan

# Cells (variant × every dimension's value) a readout takes: each costs ~1.4 KB and ~8 µs to read
# out, and dimensions multiply (10 M units over four dimensions: 10 M cells, 84 s and 14 GB)
MAX_CELLS = 1_000_000


def refuse_too_many_cells(plan: Plan, cells: int) -> None:
    """Raise `PlanError` when the segments split the units into more than `MAX_CELLS` cells."""
    if cells > MAX_CELLS:
        raise PlanError(
            f"segments: {' × '.join(plan.segments)} split the units into {cells:,} cells, "
            f"more than the {MAX_CELLS:,} a readout takes",
            hint="read out fewer or coarser dimensions at once, or pass --no-segments",
        )


def cells_frame(
    bound: BoundPlan,
    units: pl.LazyFrame,
    columns: dict[str, str],
    caps: pl.LazyFrame | None,
    thresholds: dict[int, float] | None = None,
    *,
    with_checks: bool = True,
) -> pl.LazyFrame:
    """The cells from the unit table and its per-unit sums (`columns` names them).

    `caps`: one row of `cap<i>` for the capped metrics, when taken in the query. The cells carry
    them and, `with_checks`, the sources' per-unit check counts; `collect` splits them off.
    """
    plan = bound.plan
    units = _uncapped_copies(plan, _metric_values(plan, units.fill_null(0), columns))
    if caps is not None:
        units = _apply_caps(plan, units.join(caps, how="cross"))
    return _cells(bound, units, thresholds, with_checks=with_checks)


def _metric_values(plan: Plan, units: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """Per-unit metric values: y (and d for ratios, x for CUPED).

    `columns` maps each metric side (`num3`, `den3`, `pre3`) to the per-unit sum holding it. A
    funnel step's y is 1 when the unit did every step up to it (reach), else 0.
    """

    def sum_of(name: str) -> pl.Expr:
        return pl.col(columns[name]).cast(pl.Float64)

    exprs = []
    for i, metric in enumerate(plan.measured):
        value = sum_of(f"num{i}")
        if chain := plan.reach_chain(i):
            value = pl.all_horizontal([sum_of(f"num{j}") > 0 for j in chain]).cast(pl.Float64)
        elif metric.type is MetricType.PROPORTION:
            value = (value > 0).cast(pl.Float64)
        exprs.append(value.alias(metric_col("y", i)))
        if metric.type is MetricType.RATIO:
            exprs.append(sum_of(f"den{i}").alias(metric_col("d", i)))
        if metric.covariate is not None:
            column = metric.covariate.column or ""  # a column when there is no lookback
            pre = sum_of(f"pre{i}") if f"pre{i}" in columns else pl.col(column)
            if metric.covariate.lookback and metric.type is MetricType.PROPORTION:
                pre = (pre > 0).cast(pl.Float64)
            exprs.append(pre.cast(pl.Float64).fill_null(0.0).alias(metric_col("x", i)))
    return units.with_columns(exprs)


def _uncapped_copies(plan: Plan, units: pl.LazyFrame) -> pl.LazyFrame:
    """Keep each capped metric's value before the cap as r<i>."""
    return units.with_columns(
        *[pl.col(metric_col("y", i)).alias(metric_col("r", i)) for i in plan.capped]
    )


def _apply_caps(plan: Plan, units: pl.LazyFrame) -> pl.LazyFrame:
    """Winsorize capped metrics at their cap column `cap<i>`."""
    return units.with_columns(
        *[pl.col(metric_col("y", i)).clip(upper_bound=pl.col(f"cap{i}")) for i in plan.capped]
    )


def _cells(
    bound: BoundPlan,
    units: pl.LazyFrame,
    thresholds: dict[int, float] | None,
    *,
    with_checks: bool,
) -> pl.LazyFrame:
    """Sums, squares and cross-products per (variant, segment values[, candidate unit]).

    Sums are additive, so every coarser breakdown (overall, one dimension) is a sum of cells.
    """
    aggs = [pl.len().alias("n")]
    for name, left, right in moment_columns(bound.plan):
        term = pl.col(left) if right is None else pl.col(left) * pl.col(right)
        aggs.append(term.sum().alias(name))
    if thresholds is None:
        aggs += [pl.col(c).first() for c in cap_columns(bound.plan)]
    if with_checks:
        aggs += [pl.col(c).sum() for c in check_columns(bound.plan)]
    keys: list[str | pl.Expr] = [*cell_keys(bound.plan)]
    if thresholds is not None:
        keys.append(candidate_key(thresholds))
    return units.group_by(keys).agg(aggs)
