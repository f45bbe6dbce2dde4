"""Build (never collect) the lazy query from exports to per-cell sufficient statistics.

The data rules of SPEC §4 live here: first exposure in the window defines a unit's variant, start
and segments; multi-variant units are dropped; rows count from the unit's start (and within the
metric's window); units without rows count as zero. `dense` applies the same rules over per-unit
arrays from 2 M exposure rows; `tests/test_dense.py` holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.caps import caps_frame
from croctl.pipeline.cells import cells_frame
from croctl.pipeline.coverage import Bitmap, Coverage
from croctl.pipeline.keys import (
    coverage_key,
    fingerprint,
    segment_words,
    segments_from_words,
    source_ids,
    unit_key,
)
from croctl.pipeline.names import (
    EVENT_KEY,
    FIRST_OF_ID,
    MISSING_SEGMENT,
    MULTIPLE,
    START,
    UNIT,
    VARIANT,
    check_col,
    seg_col,
)
from croctl.pipeline.table import source_counts
from croctl.plan import MeasureSpec, MetricSpec


@dataclass(frozen=True, slots=True)
class Query:
    """Every lazy frame the readout needs; collected together so shared scans run once."""

    frames: dict[str, pl.LazyFrame]


def build_query(
    bound: BoundPlan,
    covered: Mapping[str, Coverage] | None = None,
    thresholds: dict[int, float] | None = None,
) -> Query:
    """Build the whole aggregation lazily; see module docstring for the data rules applied.

    `covered` holds, per source, the unit ids it has rows for, when read before the query (a
    bitmap, or a set of keys: `coverage`); a source without gets a set of its ids built here.
    With `thresholds` (per capped metric, `caps.thresholds_from_sample`), the cells are grouped
    by `CANDIDATE` too and left uncapped, for `caps.capped_cells`; without, the query takes the
    caps itself.
    """
    plan = bound.plan
    exposures = exposure_rows(bound)
    units = _first_exposures(bound, exposures).cache()
    valid = units.filter(~pl.col(MULTIPLE)).drop(MULTIPLE)
    frames: dict[str, pl.LazyFrame] = {
        "exposures": _exposure_counts(bound, exposures),
        "multiple_variants": units.select(
            pl.len().alias("units"),
            pl.col(MULTIPLE).sum().alias("multiple"),
            (pl.col(START).min().dt.epoch("us") / 1e6).alias("first_start"),
            (pl.col(START).max().dt.epoch("us") / 1e6).alias("last_start"),
        ),
    }
    unit_table = valid
    columns: dict[str, str] = {}
    per_units: dict[str, pl.LazyFrame] = {}
    capped_sources = {plan.measured[i].numerator.source for i in plan.capped}
    for name, source in bound.sources.items():
        rows = _flag_duplicates(bound, source, _source_rows(bound, source, valid))
        frames[f"coverage:{name}"] = _coverage(bound, source, (covered or {}).get(name), valid)
        per_unit, measured = _per_unit(bound, source, rows)
        columns |= measured
        if name in capped_sources and thresholds is None:  # the caps read it too
            per_unit = per_unit.cache()
        per_units[name] = per_unit
        unit_table = unit_table.join(per_unit, on=UNIT, how="left")
    caps = caps_frame(plan, per_units, columns, valid) if thresholds is None else None
    frames["cells"] = cells_frame(bound, unit_table, columns, caps, thresholds)
    return Query(frames)


def exposure_rows(bound: BoundPlan, keys: list[pl.Expr] | None = None) -> pl.LazyFrame:
    """Every exposure row: unit key, variant and segment labels, start, covariates.

    `keys`: the unit's columns, if not the key `UNIT` (`slots` hands its own).
    """
    spec, plan = bound.plan.exposures, bound.plan
    assert bound.exposures.frame is not None
    segments = [
        pl.col(c).cast(pl.String).fill_null(MISSING_SEGMENT).cast(pl.Categorical).alias(seg_col(i))
        for i, c in enumerate(plan.segments.values())
    ]
    covariates = plan.covariate_columns
    return bound.exposures.frame.select(
        *(keys or [unit_key(bound, bound.exposures)]),
        pl.col(spec.variant).cast(pl.String).cast(pl.Categorical).alias(VARIANT),
        pl.col(spec.timestamp).alias(START),
        *segments,
        *[pl.col(c) for c in covariates],
    )


def _in_window(bound: BoundPlan) -> pl.Expr:
    """An exposure row's start is in the experiment's window (and before `as_of`)."""
    experiment = bound.plan.experiment
    condition = pl.col(START).is_not_null()
    if experiment.start is not None:
        condition &= pl.col(START) >= pl.lit(experiment.start)
    if experiment.end is not None:
        condition &= pl.col(START) < pl.lit(experiment.end)
    if bound.plan.as_of is not None:
        condition &= pl.col(START) < pl.lit(bound.plan.as_of)
    return condition


def _exposure_counts(bound: BoundPlan, rows: pl.LazyFrame) -> pl.LazyFrame:
    """The `exposures` section: rows per variant, outside the window, without a time, NaN/inf."""
    experiment = bound.plan.experiment
    before = pl.lit(experiment.start) if experiment.start else None
    after = pl.lit(experiment.end) if experiment.end else None
    numbers = [c for c in rows.collect_schema().names() if not c.startswith("__")]
    return rows.group_by(VARIANT).agg(
        pl.len().alias("rows"),
        pl.col(START).is_null().sum().alias("no_timestamp"),
        (pl.col(START) < before).sum().alias("before_start")
        if before is not None
        else pl.lit(0, pl.UInt32).alias("before_start"),
        (pl.col(START) >= after).sum().alias("after_end")
        if after is not None
        else pl.lit(0, pl.UInt32).alias("after_end"),
        *[(~pl.col(c).is_finite()).sum().alias(f"nonfinite:{c}") for c in numbers],
    )


def _first_exposures(bound: BoundPlan, rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per unit: variant, start and segments of its first in-window exposure."""
    segments = [seg_col(i) for i in range(len(bound.plan.segments))]
    keys = (UNIT, VARIANT, START, *segments)
    covariates = [c for c in rows.collect_schema().names() if c not in keys]
    code = pl.col(VARIANT).to_physical()
    # Each `min_by` keeps its own copy of every unit's earliest start (~0.3 GiB at 10 M units),
    # so segment codes travel two to a word, and the variant needs none: a unit that keeps one
    # variant in the window has it on every row, and one that does not is dropped.
    firsts = (
        # an exposure row without a unit id is no unit (as a join on the id never matches it)
        rows.filter(_in_window(bound) & pl.col(UNIT).is_not_null())
        .group_by(UNIT)
        .agg(
            # min/max of the codes, not n_unique: a per-group set costs memory on 10 M units
            code.min().alias(VARIANT),
            (code.min() != code.max()).alias(MULTIPLE),
            # min_by is a streaming reduction; get(arg_min) gathers each group at twice the cost
            # (first() is worse still: it tracks row order)
            *[word.min_by(START) for word in segment_words(len(segments))],
            *[pl.col(c).min_by(START) for c in covariates],
            pl.col(START).min(),
        )
    )
    return firsts.select(
        UNIT,
        pl.col(VARIANT).cat.to(pl.Categorical),
        MULTIPLE,
        START,
        *segments_from_words(len(segments)),
        *covariates,
    )


def measures_on(bound: BoundPlan, source: str) -> list[tuple[int, str, MetricSpec, MeasureSpec]]:
    """Every measure reading `source`: (metric index, side, metric, measure)."""
    return [
        (i, side, metric, m)
        for i, metric in enumerate(bound.plan.measured)
        for side, m in metric.measures()
        if m.source == source
    ]


def _source_rows(bound: BoundPlan, source: BoundSource, valid: pl.LazyFrame) -> pl.LazyFrame:
    """Rows some metric could use, tagged with their unit's variant and start (inner join)."""
    assert source.scan is not None
    # Push every metric filter down: rows no metric uses (page views) drop at the scan, before
    # their timestamps are parsed.
    used = rows_used(bound, source.name)
    rows = source.scan.frame if used is None else source.scan.filtered(used)
    rows = rows.with_columns(unit_key(bound, source), *_event_key(bound, source))
    return rows.join(valid.select(UNIT, VARIANT, START), on=UNIT, how="inner")


def metric_filters(bound: BoundPlan, source: str) -> list[pl.Expr | None]:
    """The filter of every measure reading `source` (None: the measure reads every row)."""
    return [bound.filters.get((m.name, side)) for _, side, m, _ in measures_on(bound, source)]


def rows_used(bound: BoundPlan, source: str) -> pl.Expr | None:
    """The rows of `source` some metric could use: the OR of their filters (None: every row)."""
    filters = metric_filters(bound, source)
    if not filters or any(f is None for f in filters):
        return None
    unique = {str(f): f for f in filters if f is not None}
    return pl.any_horizontal(list(unique.values()))


def _event_key(bound: BoundPlan, source: BoundSource) -> list[pl.Expr]:
    """The source's event id as `EVENT_KEY` (text by `fingerprint`), if it declares one.

    Taken before the join, so that the rows the duplicate flag holds (all of them: it depends
    on row order) carry 16 bytes per id instead of the text (32-character ids: 2.8 -> 1.3 GiB
    at 3 M users).
    """
    spec = bound.plan.sources[source.name]
    if not spec.id:
        return []
    assert source.scan is not None
    ids = pl.col(spec.id)
    if source.scan.raw.collect_schema()[spec.id] == pl.String:
        ids = fingerprint(ids)
    return [ids.alias(EVENT_KEY)]


def _flag_duplicates(bound: BoundPlan, source: BoundSource, rows: pl.LazyFrame) -> pl.LazyFrame:
    """With an `id` column, mark each id's first row; the others are counted and dropped.

    A flag needs only a set of ids (`EVENT_KEY`), not the whole rows a `unique` would hold.
    """
    if not bound.plan.sources[source.name].id:
        return rows
    return rows.with_columns(pl.col(EVENT_KEY).is_first_distinct().alias(FIRST_OF_ID))


def _check_counts(bound: BoundPlan, source: BoundSource) -> list[pl.Expr]:
    """Per unit: each of the source's `source_counts` (rows, pre-exposure, duplicates, NaN/inf).

    Summed per variant they are the source's `rows:<name>` section; counting them in the per-unit
    pass means the source is read and joined once.
    """
    name, spec = source.name, bound.plan.sources[source.name]

    def count(kind: str) -> pl.Expr:
        if kind == "rows":
            return pl.len()
        if kind == "pre_exposure":
            return (pl.col(spec.timestamp or "") < pl.col(START)).sum()
        if kind == "duplicates":
            return (~pl.col(FIRST_OF_ID)).sum()
        return (~pl.col(kind.removeprefix("nonfinite:")).is_finite()).sum()

    return [count(kind).alias(check_col(name, kind)) for kind in source_counts(bound.plan, name)]


def _coverage(
    bound: BoundPlan, source: BoundSource, read: Coverage | None, valid: pl.LazyFrame
) -> pl.LazyFrame:
    """Per variant: exposed units with at least one row (any row) in the source.

    `read`: the source's ids as read before the query (`coverage`, `held`); else a set of them
    is built here.
    """
    if isinstance(read, Bitmap):  # a lookup per unit instead of a join
        flagged = valid.select(VARIANT, read.covered_expr().alias("covered"))
        return flagged.group_by(VARIANT).agg(pl.col("covered").sum())
    # unique first: a set of ids is smaller and faster to probe than every row's id
    ids = read.frame.lazy() if read is not None else source_ids(bound, source).unique()
    covered = valid.with_columns(coverage_key(bound)).join(ids, on=UNIT, how="semi")
    return covered.group_by(VARIANT).agg(pl.len().alias("covered"))


def _per_unit(
    bound: BoundPlan, source: BoundSource, rows: pl.LazyFrame
) -> tuple[pl.LazyFrame, dict[str, str]]:
    """Aggregate a source's rows per unit once, for every metric that reads it.

    Returns the per-unit frame (measures and check counts) and, for each metric side, the column
    holding its sum.
    """
    spec = bound.plan.sources[source.name]
    ts = pl.col(spec.timestamp) if spec.timestamp else None
    aggs: dict[tuple[object, ...], pl.Expr] = {}
    columns: dict[str, str] = {}  # f"{side}{i}" / f"pre{i}" -> the column holding that sum

    def add(name: str, key: tuple[object, ...], expr: pl.Expr) -> None:
        # a measure several metrics share (same filter, value, window) is summed once
        if key not in aggs:
            aggs[key] = expr.alias(name)
        columns[name] = aggs[key].meta.output_name()

    for i, side, metric, measure in measures_on(bound, source.name):
        condition = bound.filters.get((metric.name, side))
        condition = pl.lit(True) if condition is None else condition.fill_null(False)
        if spec.id:  # a repeated id counts once
            condition = condition & pl.col(FIRST_OF_ID)
        counted = condition
        if ts is not None:  # rule 3: rows before exposure never count
            counted = counted & (ts >= pl.col(START))
            if measure.window is not None:
                counted = counted & (ts < pl.col(START) + pl.lit(measure.window))
            if bound.plan.as_of is not None:
                counted = counted & (ts < pl.lit(bound.plan.as_of))
        key = (measure.filter, measure.value, measure.window)
        add(f"{side}{i}", key, _measure_agg(measure, counted))
        lookback = metric.covariate.lookback if metric.covariate else None
        if side == "num" and lookback is not None and ts is not None:
            before = condition & (ts < pl.col(START)) & (ts >= pl.col(START) - pl.lit(lookback))
            add(f"pre{i}", ("pre", lookback, *key), _measure_agg(measure, before))
    return rows.group_by(UNIT).agg(*aggs.values(), *_check_counts(bound, source)), columns


def _measure_agg(measure: MeasureSpec, condition: pl.Expr) -> pl.Expr:
    if measure.value is None:
        # a count stays UInt32 in the per-unit table (half the memory of a float on 10 M units)
        return condition.sum()
    return pl.when(condition).then(pl.col(measure.value)).otherwise(0.0).fill_null(0.0).sum()
