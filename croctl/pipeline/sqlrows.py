"""Row-level SQL of the statistics query: exposures to valid units, sources to per-unit sums.

The same data rules, in the same order, as the Polars query in `build.py`.
"""

from __future__ import annotations

import polars as pl
from sqlglot import exp

from croctl.io import FileFormat
from croctl.io.epoch import EPOCH_UNITS, epoch_bounds
from croctl.io.iso import SPACED_ZONES
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.filter_sql import filter_sql
from croctl.pipeline.names import N_VARIANTS, START, UNIT, VARIANT, seg_col
from croctl.pipeline.sqlexpr import (
    cast,
    col,
    epoch_time,
    integral_text,
    local_instant,
    minus_seconds,
    nonfinite,
    num,
    plus_seconds,
    sum_if,
    time_literal,
    wall_micros,
    whole_number_text,
)
from croctl.plan import EXPOSURES, MeasureSpec


class RowSql:
    """The row-level CTEs: exposures to valid units, and each source to per-unit sums."""

    def __init__(
        self,
        bound: BoundPlan,
        tables: dict[str, str] | None = None,
        *,
        files: bool,
        dialect: str = "duckdb",
    ):
        self.bound = bound
        self.dialect = dialect
        self.plan = bound.plan
        self.tables = tables or {}
        self.files = files  # read the plan's files (DuckDB) instead of named tables
        self.ctes: list[tuple[str, exp.Expression]] = []

    # --- relations ------------------------------------------------------------------------

    def _relation(self, source: BoundSource) -> exp.Expression:
        if not self.files:
            return exp.to_table(self.tables.get(source.name, source.name))
        files = source.files
        paths = exp.Array(expressions=[exp.Literal.string(str(p)) for p in files.paths])
        partitioned = (  # key=value directories: their values are text, as in the Polars engine
            [_option("hive_partitioning", exp.true()), _option("hive_types_autocast", exp.false())]
            if files.partitions
            else []
        )
        if files.format is FileFormat.PARQUET:
            return exp.Anonymous(this="read_parquet", expressions=[paths, *partitioned])
        text = sorted(
            (source.needs.keys | source.needs.timestamps | _text_filter_columns(source))
            - set(files.partitions)
        )
        types = exp.Struct(
            expressions=[_option(c, exp.Literal.string("VARCHAR"), quoted=True) for c in text]
        )
        options = [paths, _option("header", exp.true()), _option("types", types), *partitioned]
        return exp.Anonymous(this="read_csv", expressions=options)

    def _timestamp(self, source: BoundSource, name: str) -> exp.Expression:
        """The column as an absolute time: naive values are local times in the plan's zone."""
        assert source.scan is not None  # bound with its scan, which read the column's kind
        kind = source.scan.kinds[name]
        if kind.epoch is not None:
            scale, bounds = EPOCH_UNITS[kind.epoch], epoch_bounds(kind.epoch)
            return epoch_time(col(name), scale, bounds, kind.fraction, self.dialect)
        truncated = kind.nanos and self.dialect == "duckdb"  # its cast would round nanoseconds
        local = wall_micros(col(name)) if truncated else col(name)
        if not kind.aware:  # a wall time in the plan's zone
            return local_instant(local, self.plan.timezone or "UTC", self.dialect)
        if truncated:  # a wall time in UTC
            return exp.AtTimeZone(this=local, zone=exp.Literal.string("UTC"))
        text: exp.Expression = col(name)
        if kind.spaced_zone:  # `12:00:00 UTC` becomes `12:00:00Z`, as in the Polars engine
            for old, new in SPACED_ZONES:
                text = exp.Anonymous(
                    this="REPLACE",
                    expressions=[text, exp.Literal.string(old), exp.Literal.string(new)],
                )
        return cast(text, "TIMESTAMPTZ")

    def _unit(self, source: BoundSource) -> exp.Expression:
        name = (
            self.plan.exposures.unit
            if source.name == EXPOSURES
            else self.plan.sources[source.name].unit
        )
        # the type the Polars engine joins on: integers when every export has them (a join on
        # integer keys took DuckDB 5.5 s against 7 s on text at 3 M users), else text
        key = "BIGINT" if self.bound.unit_dtype.is_integer() else "VARCHAR"
        if self.bound.unit_dtype == pl.UInt64:
            key = "DECIMAL(20, 0)"  # ids past 2^63 (hashed ones): every dialect has this type
        stored = source.files.types.get(name)
        if key == "VARCHAR" and stored is not None and stored.is_float():
            return exp.alias_(integral_text(col(name)), UNIT, quoted=True)
        if key == "VARCHAR" and name in source.files.whole_floats:  # `123.0` in a CSV
            return exp.alias_(whole_number_text(col(name)), UNIT, quoted=True)
        return exp.alias_(cast(col(name), key), UNIT, quoted=True)

    def _cte(self, name: str, query: exp.Expression) -> str:
        self.ctes.append((name, query))
        return name

    # --- exposures --------------------------------------------------------------------------

    def _exposure_rows(self) -> str:
        spec, source = self.plan.exposures, self.bound.exposures
        segments = [
            exp.alias_(
                exp.Coalesce(
                    this=cast(col(c), "VARCHAR"), expressions=[exp.Literal.string("(missing)")]
                ),
                seg_col(i),
                quoted=True,
            )
            for i, c in enumerate(self.plan.segments.values())
        ]
        covariates = self.plan.covariate_columns
        query = exp.select(
            self._unit(source),
            exp.alias_(cast(col(spec.variant), "VARCHAR"), VARIANT, quoted=True),
            exp.alias_(self._timestamp(source, spec.timestamp), START, quoted=True),
            *segments,
            *[exp.alias_(cast(col(c), "DOUBLE"), c, quoted=True) for c in covariates],
        ).from_(self._relation(source))
        return self._cte("exposure_rows", query)

    def _in_window(self) -> exp.Expression:
        experiment = self.plan.experiment
        conditions: list[exp.Expression] = [
            exp.Not(this=exp.Is(this=col(START), expression=exp.Null()))
        ]
        if experiment.start is not None:
            conditions.append(exp.GTE(this=col(START), expression=time_literal(experiment.start)))
        if experiment.end is not None:
            conditions.append(exp.LT(this=col(START), expression=time_literal(experiment.end)))
        if self.plan.as_of is not None:
            conditions.append(exp.LT(this=col(START), expression=time_literal(self.plan.as_of)))
        return exp.and_(*conditions)

    def _exposure_counts(self, rows: str) -> exp.Select:
        experiment = self.plan.experiment
        null_start = exp.Is(this=col(START), expression=exp.Null())
        numbers = self.plan.covariate_columns
        return (
            exp.select(
                col(VARIANT),
                exp.alias_(exp.Count(this=exp.Star()), "rows"),
                exp.alias_(sum_if(null_start), "no_timestamp"),
                exp.alias_(
                    sum_if(exp.LT(this=col(START), expression=time_literal(experiment.start)))
                    if experiment.start
                    else num(0),
                    "before_start",
                ),
                exp.alias_(
                    sum_if(exp.GTE(this=col(START), expression=time_literal(experiment.end)))
                    if experiment.end
                    else num(0),
                    "after_end",
                ),
                *[exp.alias_(sum_if(nonfinite(c)), f"nonfinite:{c}", quoted=True) for c in numbers],
            )
            .from_(rows)
            .group_by(col(VARIANT))
        )

    def _first_exposures(self, rows: str) -> tuple[str, str]:
        """Per unit: its first in-window exposure row, and how many variants it saw."""
        carried = [seg_col(i) for i in range(len(self.plan.segments))] + self.plan.covariate_columns
        order = exp.Window(
            this=exp.RowNumber(),
            partition_by=[col(UNIT)],
            order=exp.Order(expressions=[exp.Ordered(this=col(START))]),
        )
        ranked = self._cte(
            "ranked_exposures",
            exp.select(
                col(UNIT), col(VARIANT), col(START), *map(col, carried), exp.alias_(order, "__rank")
            )
            .from_(rows)
            .where(self._in_window()),
        )
        variants = self._cte(
            "unit_variants",
            exp.select(
                col(UNIT),
                exp.alias_(
                    exp.Count(this=exp.Distinct(expressions=[col(VARIANT)])),
                    N_VARIANTS,
                    quoted=True,
                ),
                exp.alias_(exp.Min(this=col(START)), "__first", quoted=True),
            )
            .from_(ranked)
            .group_by(col(UNIT)),
        )
        units = self._cte(
            "units",
            exp.select(
                col(UNIT, "r"),
                col(VARIANT, "r"),
                col(START, "r"),
                *[col(c, "r") for c in carried],
                col(N_VARIANTS, "v"),
            )
            .from_(exp.alias_(exp.to_table(ranked), "r", table=True))
            .join(
                exp.alias_(exp.to_table(variants), "v", table=True),
                on=exp.EQ(this=col(UNIT, "r"), expression=col(UNIT, "v")),
            )
            .where(exp.EQ(this=col("__rank", "r"), expression=num(1))),
        )
        valid = self._cte(
            "valid_units",
            exp.select(col(UNIT), col(VARIANT), col(START), *map(col, carried))
            .from_(units)
            .where(exp.EQ(this=col(N_VARIANTS), expression=num(1))),
        )
        return units, valid

    # --- sources ------------------------------------------------------------------------------

    def _measures_on(self, source: str) -> list[tuple[int, str, MeasureSpec]]:
        return [
            (i, side, m)
            for i, metric in enumerate(self.plan.measured)
            for side, m in metric.measures()
            if m.source == source
        ]

    def _filter(self, measure: MeasureSpec) -> exp.Expression | None:
        if not measure.filter:
            return None
        return exp.paren(filter_sql(measure.filter))

    def _source(self, source: BoundSource, valid: str) -> tuple[str, str, str]:
        """CTEs: the source's rows joined to valid units, its per-unit sums, and its coverage."""
        spec = self.plan.sources[source.name]
        measures = self._measures_on(source.name)
        columns = [self._unit(source)]
        if spec.timestamp:
            columns.append(
                exp.alias_(self._timestamp(source, spec.timestamp), spec.timestamp, quoted=True)
            )
        for name in sorted(source.needs.numbers):
            columns.append(exp.alias_(cast(col(name), "DOUBLE"), name, quoted=True))
        # the unit column is `UNIT` here, and as itself only when a filter reads it
        others = sorted(
            (source.needs.keys - {spec.unit} | source.needs.inferred) - {spec.timestamp or ""}
        )
        columns += [col(c) for c in others if c not in source.needs.numbers]
        scan = exp.select(*columns).from_(self._relation(source))
        filters = [self._filter(m) for _, _, m in measures]
        if filters and all(f is not None for f in filters):  # push every metric filter down
            unique = {f.sql(): f for f in filters if f is not None}
            scan = scan.where(exp.or_(*unique.values()))
        raw = self._cte(f"scan_{source.name}", scan)
        joined = self._cte(
            f"rows_{source.name}",
            exp.select(
                exp.Column(this=exp.Star(), table=exp.to_identifier("s")),
                col(VARIANT, "v"),
                col(START, "v"),
            )
            .from_(exp.alias_(exp.to_table(raw), "s", table=True))
            .join(
                exp.alias_(exp.to_table(valid), "v", table=True),
                on=exp.EQ(this=col(UNIT, "s"), expression=col(UNIT, "v")),
            ),
        )
        joined = self._flag_duplicates(source, joined)
        counts = self._cte(f"counts_{source.name}", self._source_counts(source, joined))
        per_unit = self._cte(f"per_unit_{source.name}", self._per_unit(source, joined, measures))
        coverage = self._cte(
            f"coverage_{source.name}",
            exp.select(col(VARIANT), exp.alias_(exp.Count(this=exp.Star()), "covered"))
            .from_(valid)
            .where(
                exp.In(
                    this=col(UNIT),
                    query=exp.select(self._unit(source)).from_(self._relation(source)).subquery(),
                )
            )
            .group_by(col(VARIANT)),
        )
        return counts, per_unit, coverage

    def _flag_duplicates(self, source: BoundSource, joined: str) -> str:
        """With an `id` column, number each id's rows (`__dup`): 1 is kept, the rest counted."""
        spec = self.plan.sources[source.name]
        if not spec.id:
            return joined
        rank = exp.Window(
            this=exp.RowNumber(),
            partition_by=[col(spec.id)],
            order=exp.Order(expressions=[exp.Ordered(this=col(spec.id))]),
        )
        return self._cte(
            f"ranked_{source.name}",
            exp.select(exp.Star(), exp.alias_(rank, "__dup")).from_(joined),
        )

    def _source_counts(self, source: BoundSource, joined: str) -> exp.Select:
        spec = self.plan.sources[source.name]
        aggs: list[exp.Expression] = [exp.alias_(exp.Count(this=exp.Star()), "rows")]
        if spec.timestamp:
            aggs.append(
                exp.alias_(
                    sum_if(exp.LT(this=col(spec.timestamp), expression=col(START))), "pre_exposure"
                )
            )
        if spec.id:
            aggs.append(
                exp.alias_(sum_if(exp.GT(this=col("__dup"), expression=num(1))), "duplicates")
            )
        aggs += [
            exp.alias_(sum_if(nonfinite(c)), f"nonfinite:{c}", quoted=True)
            for c in sorted(source.needs.numbers)
        ]
        return exp.select(col(VARIANT), *aggs).from_(joined).group_by(col(VARIANT))

    def _per_unit(
        self, source: BoundSource, joined: str, measures: list[tuple[int, str, MeasureSpec]]
    ) -> exp.Select:
        spec = self.plan.sources[source.name]
        rows: exp.Expression = exp.to_table(joined)
        if spec.id:  # duplicate ids: keep the first row of each
            rows = (
                exp.select(exp.Star())
                .from_(joined)
                .where(exp.EQ(this=col("__dup"), expression=num(1)))
                .subquery("d")
            )
        ts = col(spec.timestamp) if spec.timestamp else None
        aggs = []
        for i, side, measure in measures:
            metric = self.plan.measured[i]
            base = self._filter(measure) or exp.true()
            counted = base
            if ts is not None:
                counted = exp.and_(counted, exp.GTE(this=ts, expression=col(START)))
                if measure.window is not None:
                    end = plus_seconds(col(START), measure.window.total_seconds())
                    counted = exp.and_(counted, exp.LT(this=ts, expression=end))
                if self.plan.as_of is not None:
                    counted = exp.and_(
                        counted, exp.LT(this=ts, expression=time_literal(self.plan.as_of))
                    )
            value = (
                exp.Coalesce(this=col(measure.value), expressions=[num(0.0)])
                if measure.value
                else None
            )
            aggs.append(exp.alias_(sum_if(counted, value), f"{side}{i}", quoted=True))
            lookback = metric.covariate.lookback if metric.covariate else None
            if side == "num" and lookback is not None and ts is not None:
                before = exp.and_(
                    base,
                    exp.LT(this=ts, expression=col(START)),
                    exp.GTE(
                        this=ts, expression=minus_seconds(col(START), lookback.total_seconds())
                    ),
                )
                aggs.append(exp.alias_(sum_if(before, value), f"pre{i}", quoted=True))
        return exp.select(col(UNIT), *aggs).from_(rows).group_by(col(UNIT))


def _option(name: str, value: exp.Expression, *, quoted: bool = False) -> exp.Expression:
    """`name = value`: a named argument of a DuckDB table function, or a struct's field."""
    return exp.PropertyEQ(this=exp.to_identifier(name, quoted=quoted), expression=value)


def _text_filter_columns(source: BoundSource) -> set[str]:
    """A CSV's filter columns the Polars engine reads as text, read as text here too.

    DuckDB types the others by its own sample of rows; a column of digits then text (typed by
    every row when binding, `bind_plan`) would be a number there, and fail at the first text.
    """
    if source.scan is None or not source.needs.inferred:
        return set()
    schema = source.scan.raw.collect_schema()
    return {c for c in source.needs.inferred if schema.get(c) == pl.String}
