"""Pooled winsorization caps, computed from the units that have rows.

A capped metric's cap is the pooled quantile of its per-unit values over every valid unit. Units
without a row in the metric's source have the value 0, so the quantile can be taken over the units
that do have rows, padded with the right number of zeros, without ever holding the whole unit
table: the cells pass stays a stream, and the sort covers only units with rows.
"""

from __future__ import annotations

import polars as pl

from croctl.plan import Plan

TOTAL = "__total"  # number of valid units, broadcast beside the per-unit values


def padded_quantile(values: pl.Expr, q: float, total: pl.Expr) -> pl.Expr:
    """The q-quantile (linear interpolation, as numpy's default) of `values` plus zeros.

    `total` is the count of values after padding with zeros, so `total - len(values)` zeros
    join the sorted values between the negative ones and the rest.
    """
    total = total.cast(pl.Int64)
    zeros = total - values.len().cast(pl.Int64)
    below = (values < 0).sum().cast(pl.Int64)
    ordered = values.sort()
    rank = (total - 1).cast(pl.Float64) * q
    low = rank.floor().cast(pl.Int64)
    high = (low + 1).clip(upper_bound=total - 1)

    def at(k: pl.Expr) -> pl.Expr:  # the k-th smallest of the padded values
        return (
            pl.when(k < below)
            .then(ordered.get(k, null_on_oob=True))
            .when(k < below + zeros)
            .then(pl.lit(0.0))
            .otherwise(ordered.get(k - zeros, null_on_oob=True))
        )

    return at(low) + (rank - low) * (at(high) - at(low))


def caps_frame(
    plan: Plan,
    per_unit: dict[str, pl.LazyFrame],
    columns: dict[str, str],
    units: pl.LazyFrame,
) -> pl.LazyFrame | None:
    """One row with `cap<i>` for every capped metric i, or None when no metric is capped.

    `per_unit` maps each source to its per-unit sums (only units with rows), `columns` maps
    `num<i>` to the column holding metric i's sum, `units` is the valid unit table.
    """
    total = units.select(pl.len().alias(TOTAL))
    caps = []
    for i, metric in enumerate(plan.measured):
        if metric.cap is None:
            continue
        value = pl.col(columns[f"num{i}"]).cast(pl.Float64).fill_null(0.0)  # a mean's sum
        caps.append(
            per_unit[metric.numerator.source]
            .select(value.alias("value"))
            .join(total, how="cross")
            .select(
                padded_quantile(pl.col("value"), metric.cap, pl.col(TOTAL).first()).alias(f"cap{i}")
            )
        )
    if not caps:
        return None
    row = caps[0]
    for cap in caps[1:]:
        row = row.join(cap, how="cross")
    return row
