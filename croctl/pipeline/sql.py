"""The plan's aggregation as one SQL query, built with sqlglot and transpiled to a dialect.

It computes the same sufficient-statistics table as the Polars engine (`pipeline/table.py`),
applying the data rules of SPEC §4 in the same order as `build.py`: first in-window exposure per
unit, multi-variant units dropped, metric filters pushed down, rows counted from the unit's start
and inside the window, duplicate ids dropped, units without rows counted as zero, caps at the
pooled quantile, then sums per (variant, segment values). Every section of the table is one
SELECT of a UNION ALL with the other sections' columns NULL.

DuckDB reads the plan's files directly (`read_parquet`, `read_csv`); other dialects read tables
named after the plan's sources (`exposures`, `events`, ...) unless mapped with `tables`.
"""

from __future__ import annotations

from sqlglot import exp

from croctl.errors import PlanError
from croctl.pipeline.bound import BoundPlan
from croctl.pipeline.names import N_VARIANTS, START, UNIT, VARIANT, metric_col, seg_col
from croctl.pipeline.sqlexpr import cast, col, indicator, num, sum_if
from croctl.pipeline.sqlrows import RowSql
from croctl.pipeline.table import (
    SECTION,
    moment_columns,
    section_columns,
    table_columns,
    unit_value_columns,
)
from croctl.plan import MetricType

DIALECTS = ("duckdb", "spark", "bigquery", "snowflake", "postgres")


class SqlBuilder(RowSql):
    """Builds the statistics query for one bound plan."""

    # --- units, caps, cells ---------------------------------------------------------------------

    def _unit_values(self, valid: str, per_unit: list[str]) -> str:
        """One row per valid unit: segments and each metric's y, d, x (units without rows → 0)."""
        produced: set[str] = set()
        joined = exp.select(
            col(UNIT, "u"),
            col(VARIANT, "u"),
            *[col(seg_col(i), "u") for i in range(len(self.plan.segments))],
        )
        joined = joined.from_(exp.alias_(exp.to_table(valid), "u", table=True))
        covariates = self.plan.covariate_columns
        joined = joined.select(*[col(c, "u") for c in covariates], append=True)
        for k, name in enumerate(per_unit):
            alias = f"p{k}"
            joined = joined.join(
                exp.alias_(exp.to_table(name), alias, table=True),
                on=exp.EQ(this=col(UNIT, "u"), expression=col(UNIT, alias)),
                join_type="left",
            )
            source = name.removeprefix("per_unit_")
            for i, side, _ in self._measures_on(source):
                joined = joined.select(col(f"{side}{i}", alias), append=True)
                produced.add(f"{side}{i}")
                metric = self.plan.measured[i]
                if side == "num" and metric.covariate and metric.covariate.lookback:
                    joined = joined.select(col(f"pre{i}", alias), append=True)
                    produced.add(f"pre{i}")
        sums = self._cte("unit_sums", joined)

        def zero(name: str) -> exp.Expression:
            return exp.Coalesce(this=cast(col(name), "DOUBLE"), expressions=[num(0.0)])

        values = [
            col(UNIT),
            col(VARIANT),
            *[col(seg_col(i)) for i in range(len(self.plan.segments))],
        ]
        for i, metric in enumerate(self.plan.measured):
            y: exp.Expression = zero(f"num{i}")
            if chain := self.plan.reach_chain(i):
                y = indicator(
                    exp.and_(*[exp.GT(this=zero(f"num{j}"), expression=num(0)) for j in chain])
                )
            elif metric.type is MetricType.PROPORTION:
                y = indicator(exp.GT(this=y, expression=num(0)))
            values.append(exp.alias_(y, metric_col("y", i), quoted=True))
            if metric.type is MetricType.RATIO:
                values.append(exp.alias_(zero(f"den{i}"), metric_col("d", i), quoted=True))
            if metric.covariate is not None:
                x = (
                    zero(f"pre{i}")
                    if f"pre{i}" in produced
                    else zero(metric.covariate.column or "")
                )
                if metric.covariate.lookback and metric.type is MetricType.PROPORTION:
                    x = indicator(exp.GT(this=x, expression=num(0)))
                values.append(exp.alias_(x, metric_col("x", i), quoted=True))
        return self._cte("unit_values", exp.select(*values).from_(sums))

    def _caps(self, values: str) -> tuple[str | None, str]:
        capped = list(self.plan.capped.items())
        if not capped:
            return None, values
        caps = self._cte(
            "caps",
            exp.select(
                *[
                    exp.alias_(self._quantile(col(metric_col("y", i)), q), f"cap{i}", quoted=True)
                    for i, q in capped
                ]
            ).from_(values),
        )
        replaced = {metric_col("y", i) for i, _ in capped}
        names = unit_value_columns(self.plan)
        select = [col(n, "v") for n in names if n not in replaced]
        for i, _ in capped:
            y = col(metric_col("y", i), "v")
            select.append(exp.alias_(y.copy(), metric_col("r", i), quoted=True))
            select.append(
                exp.alias_(
                    exp.Least(this=y, expressions=[col(f"cap{i}", "c")]),
                    metric_col("y", i),
                    quoted=True,
                )
            )
        capped_values = self._cte(
            "capped_values",
            exp.select(*select)
            .from_(exp.alias_(exp.to_table(values), "v", table=True))
            .join(exp.alias_(exp.to_table(caps), "c", table=True), join_type="cross"),
        )
        return caps, capped_values

    def _quantile(self, column: exp.Expression, q: float) -> exp.Expression:
        """Exact linear-interpolated quantile (sqlglot would give Spark an approximate one)."""
        if self.dialect == "spark":
            return exp.Anonymous(this="PERCENTILE", expressions=[column, num(q)])
        return exp.WithinGroup(
            this=exp.PercentileCont(this=num(q)),
            expression=exp.Order(expressions=[exp.Ordered(this=column)]),
        )

    def _cells(self, values: str) -> exp.Select:
        keys = [col(VARIANT), *[col(seg_col(i)) for i in range(len(self.plan.segments))]]
        aggs: list[exp.Expression] = [exp.alias_(exp.Count(this=exp.Star()), "n")]
        for name, left, right in moment_columns(self.plan):
            term: exp.Expression = col(left)
            if right is not None:
                term = exp.Mul(this=col(left), expression=col(right))
            aggs.append(exp.alias_(exp.Sum(this=term), name, quoted=True))
        return exp.select(*keys, *aggs).from_(values).group_by(*keys)

    # --- the whole query ------------------------------------------------------------------------

    def build(self) -> exp.Expression:
        """The whole query: CTEs for every step, the sections stacked as one table."""
        rows = self._exposure_rows()
        sections: dict[str, exp.Select] = {"exposures": self._exposure_counts(rows)}
        units, valid = self._first_exposures(rows)
        sections["multiple_variants"] = exp.select(
            exp.alias_(exp.Count(this=exp.Star()), "units"),
            exp.alias_(sum_if(exp.GT(this=col(N_VARIANTS), expression=num(1))), "multiple"),
            exp.alias_(exp.TimeToUnix(this=exp.Min(this=col(START))), "first_start"),
            exp.alias_(exp.TimeToUnix(this=exp.Max(this=col(START))), "last_start"),
        ).from_(units)
        per_unit = []
        for name, source in self.bound.sources.items():
            counts, sums, coverage = self._source(source, valid)
            sections[f"rows:{name}"] = exp.select(exp.Star()).from_(counts)
            sections[f"coverage:{name}"] = exp.select(exp.Star()).from_(coverage)
            per_unit.append(sums)
        values = self._unit_values(valid, per_unit)
        caps, values = self._caps(values)
        if caps is not None:
            sections["caps"] = exp.select(exp.Star()).from_(caps)
        sections["cells"] = self._cells(values)
        return self._union(sections)

    def _union(self, sections: dict[str, exp.Select]) -> exp.Expression:
        """Every section as the same columns (NULL where a section has none), stacked."""
        columns = table_columns(self.plan)
        expected = section_columns(self.plan)
        parts = []
        for section, query in sections.items():
            name = f"section_{len(parts)}"
            self._cte(name, query)
            present = set(expected[section])
            select = [exp.alias_(exp.Literal.string(section), SECTION, quoted=True)]
            for column, kind in columns:
                value = col(column) if column in present else exp.Null()
                select.append(exp.alias_(cast(value, kind), column, quoted=True))
            parts.append(exp.select(*select).from_(name))
        union: exp.Expression = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
        query = exp.select(exp.Star()).from_(union.subquery("stats"))
        for name, cte in self.ctes:
            query = query.with_(name, as_=cte)
        return query


def build_sql(
    bound: BoundPlan,
    dialect: str = "duckdb",
    tables: dict[str, str] | None = None,
    *,
    files: bool | None = None,
) -> str:
    """The plan's statistics query in `dialect` (pretty-printed).

    Raises:
        PlanError: an unknown dialect.
    """
    if dialect not in DIALECTS:
        raise PlanError(
            f"--dialect {dialect!r} is not supported", hint="one of: " + ", ".join(DIALECTS)
        )
    reads_files = dialect == "duckdb" if files is None else files
    query = SqlBuilder(bound, tables, files=reads_files, dialect=dialect).build()
    utc = f"-- Run in a UTC session: {_UTC_SESSION[dialect]} (the plan's dates are UTC).\n"
    return utc + _PREAMBLE.get(dialect, "") + query.sql(dialect=dialect, pretty=True) + ";\n"


# A DATE or EXTRACT(hour ...) in a filter, and on Spark a naive time, is read in the session's time
# zone (on DuckDB, a filter `ts < DATE '2026-10-02'` counted other rows in a New York session).
_UTC_SESSION = {
    "duckdb": "SET TimeZone = 'UTC';",
    "postgres": "SET TIME ZONE 'UTC';",
    "spark": "SET spark.sql.session.timeZone = UTC;",
    "bigquery": "SET @@time_zone = 'UTC';",
    "snowflake": "ALTER SESSION SET TIMEZONE = 'UTC';",
}


# Comments printed above the query: settings the session needs.
_PREAMBLE = {
    # PostgreSQL's planner cannot size the steps after the first exposures (a window's rank,
    # counts of variants: its default selectivities give one row), so it picks nested loops:
    # the checkout sample's query ran past ten minutes, and 2.4 s with them off
    # (tests/test_postgres.py).
    "postgres": "-- PostgreSQL: run `SET enable_nestloop = off;` in the session first: the"
    " planner cannot\n-- estimate this query's row counts and would pick nested-loop joins.\n",
    # The guards fail the query through a cast error, which only ANSI mode raises.
    "spark": "-- Spark: run with spark.sql.ansi.enabled = true (the default since Spark 4.0):"
    " without it,\n-- an epoch number in another unit becomes null and its row is dropped"
    " instead of failing the query.\n",
}
