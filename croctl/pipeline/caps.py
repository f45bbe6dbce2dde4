"""Pooled winsorization caps: the quantile of a capped metric's per-unit values over valid units.

Two exact ways, both with linear interpolation (numpy's default):

- **In the query** (`caps_frame`): units without a row in the metric's source have the value 0, so
  the quantile is taken over the units that do have rows, padded with the right number of zeros.
  The per-unit table then has two readers (the caps and the cells), so the query caches it: at 10
  M units that costs ~2 s and ~0.3 GiB.
- **From the tail** (`capped_cells`): a quick pass before the query sums the capped values of one
  unit in 16 (`sample_frames`), approximately (no windows, no de-duplication), to pick a threshold
  well below the cap (`thresholds_from_sample`). The query groups its cells by `CANDIDATE` as
  well, the unit's own key when a value passes its threshold, so every such unit comes back on a
  row of its own and all the others (below the cap, so unchanged by it) summed per cell. The cap
  is then the quantile of the values above the threshold, in the right places of the sorted
  order; when the threshold turns out too high to place it, the query runs again with the caps in
  it. Only for Parquet sources and CSV ones held in memory (`held`): a CSV would be read once
  more in full.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from croctl.io import FileFormat
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.keys import unit_id
from croctl.pipeline.names import CANDIDATE, UNIT, metric_col
from croctl.pipeline.table import cell_keys, moment_columns
from croctl.plan import Plan

TOTAL = "__total"  # number of valid units, broadcast beside the per-unit values
SAMPLE = 16  # the pass before the query reads one unit in 16, chosen by a hash of its key
MIN_SAMPLED = 2000  # fewer sampled units: the export is small and caps in the query cost little
CANDIDATES = 0.05  # the threshold's share of units above it: at least this,
MARGIN = 20  # or this many times the share the cap clips,
MOST_CANDIDATES = 0.25  # but no more than this (then the caps are taken in the query)


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
    for i, cap in plan.capped.items():
        value = pl.col(columns[f"num{i}"]).cast(pl.Float64).fill_null(0.0)  # a mean's sum
        caps.append(
            per_unit[plan.measured[i].numerator.source]
            .select(value.alias("value"))
            .join(total, how="cross")
            .select(
                # no unit with a row: the cross join is empty, and every value is zero
                padded_quantile(pl.col("value"), cap, pl.col(TOTAL).first())
                .fill_null(0.0)
                .alias(f"cap{i}")
            )
        )
    if not caps:
        return None
    row = caps[0]
    for other in caps[1:]:
        row = row.join(other, how="cross")
    return row


def _sampled(key: pl.Expr) -> pl.Expr:
    return key.hash(seed=0xCA95) % SAMPLE == 0


def sample_frames(bound: BoundPlan) -> dict[str, pl.LazyFrame] | None:
    """The pass before the query: `units` sampled, and each capped metric's sampled sums.

    `cap<i>` holds, per sampled unit with rows, the sum of metric i's values over the rows its
    filter keeps: no window, no exposure, no de-duplication, so only good for a threshold. None
    when no metric is capped, or a capped metric reads a CSV not held in memory.
    """
    capped = {i: bound.plan.measured[i] for i in bound.plan.capped}
    sources = {m.numerator.source for m in capped.values()}
    if not capped or not all(_cheap(bound.sources[s]) for s in sources):
        return None
    assert bound.exposures.scan is not None
    # the ids themselves, not `unit_key`: a hash of the text samples as well as a fingerprint
    exposed = bound.exposures.scan.raw.select(unit_id(bound, bound.exposures).alias(UNIT))
    frames = {"units": exposed.filter(_sampled(pl.col(UNIT))).select(pl.col(UNIT).n_unique())}
    for i, metric in capped.items():
        measure, source = metric.numerator, bound.sources[metric.numerator.source]
        assert source.scan is not None
        condition = bound.filters.get((metric.name, "num"))
        rows = source.scan.raw if condition is None else source.scan.filtered(condition)
        value = pl.lit(1.0) if measure.value is None else pl.col(measure.value).fill_null(0.0)
        keyed = rows.select(unit_id(bound, source).alias(UNIT), value.alias("value"))
        sampled = keyed.filter(_sampled(pl.col(UNIT)))
        frames[f"cap{i}"] = sampled.group_by(UNIT).agg(pl.col("value").sum())
    return frames


def _cheap(source: BoundSource) -> bool:
    """Is another read of the source cheap? Parquet reads a few columns, a CSV all of them."""
    return source.held or source.files.format is FileFormat.PARQUET


def thresholds_from_sample(plan: Plan, sample: dict[str, pl.DataFrame]) -> dict[int, float] | None:
    """Per capped metric i, a threshold well below its cap, that few units pass.

    None when caps are better taken in the query: too few units sampled, a cap so low that most
    units would pass, or a cap that looks no higher than zero (a threshold of zero would not be
    below it).
    """
    units = int(sample["units"].item())
    if units < MIN_SAMPLED:
        return None
    thresholds = {}
    for i, cap in plan.capped.items():
        # The sampled sums overstate values that a window or the exposure cuts, and the
        # threshold must stay below the cap: a wide margin (a 1-day window on 14 days of
        # revenue put the 0.99 cap below the sums' 0.95 quantile in the benchmark's data).
        share = max(CANDIDATES, MARGIN * (1 - cap))
        sums = sample[f"cap{i}"]["value"]
        finite = sums.filter(sums.is_finite()).to_numpy()
        padded = np.concatenate([finite, np.zeros(max(units - len(finite), 0))])
        if share > MOST_CANDIDATES or not np.quantile(padded, cap) > 0:
            return None
        thresholds[i] = max(float(np.quantile(padded, 1 - share)), 0.0)
    return thresholds


def candidate_key(thresholds: dict[int, float]) -> pl.Expr:
    """`CANDIDATE`: the unit's key when any capped value passes its threshold, else null."""
    passes = [pl.col(metric_col("y", i)) > threshold for i, threshold in thresholds.items()]
    return pl.when(pl.any_horizontal(passes)).then(pl.col(UNIT)).alias(CANDIDATE)


def tail_quantile(above: pl.Series, total: int, q: float) -> float | None:
    """The q-quantile of `total` values of which `above` are the highest, or None.

    None when the quantile falls below them (their threshold was too high) or is not finite.
    """
    rank = (total - 1) * q
    low = math.floor(rank)
    first = total - len(above)  # where the highest values start in the sorted order
    if total == 0 or low < first:
        return None
    ordered = above.sort()
    at_low, at_high = ordered[low - first], ordered[min(low + 1, total - 1) - first]
    cap = float(at_low + (rank - low) * (at_high - at_low))
    return cap if math.isfinite(cap) else None


def capped_cells(
    plan: Plan, cells: pl.DataFrame, thresholds: dict[int, float]
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Cells with capped values and the one-row caps table, from cells grouped by `CANDIDATE`.

    A candidate's row holds one unit, so its sums are its values; every other row's values are
    at most their thresholds, below the caps, and stay as they are. None when a threshold was
    too high to place its cap (`tail_quantile`).
    """
    total = int(cells["n"].sum())
    units = cells.filter(pl.col(CANDIDATE).is_not_null())
    caps = {}
    for i, threshold in thresholds.items():
        values = units[metric_col("y", i)]
        cap = tail_quantile(values.filter(values > threshold), total, plan.capped[i])
        if cap is None:
            return None
        caps[i] = cap

    capped = {metric_col("y", i): cap for i, cap in caps.items()}

    def value(column: str) -> pl.Expr:
        if column in capped:
            return pl.col(column).clip(upper_bound=capped[column])
        return pl.col(column)

    recomputed = [  # the moments of a capped value, from the unit's (capped) values
        (value(left) if right is None else value(left) * value(right)).alias(name)
        for name, left, right in moment_columns(plan)
        if left in capped or right in capped
    ]
    keys = cell_keys(plan)
    rows = pl.concat([cells.filter(pl.col(CANDIDATE).is_null()), units.with_columns(recomputed)])
    summed = rows.drop(CANDIDATE).group_by(keys).agg(pl.all().sum())
    return summed, pl.DataFrame({f"cap{i}": [cap] for i, cap in caps.items()})
