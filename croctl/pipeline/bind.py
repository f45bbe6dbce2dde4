"""Bind a plan to its export files: needed columns, compiled filters, schema checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import polars as pl

from croctl.errors import PlanError, PlanErrors, did_you_mean
from croctl.io import FileFormat, inspect_export, scan_export
from croctl.io.values import text_not_numbers
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.plan import EXPOSURES, MeasureSpec, MetricSpec, Plan


def bind_plan(plan: Plan, *, scan: bool = True) -> BoundPlan:
    """Read every export's header and check the plan's columns and filters against it.

    Args:
        plan: a validated plan.
        scan: also build each export's lazy scan (reads a few rows to sniff timestamps).

    Raises:
        DataError: a file is missing, empty or unreadable.
        PlanErrors: columns or filters the files cannot satisfy, all at once.
    """
    exposures = BoundSource(EXPOSURES, inspect_export(plan.exposures.path))
    sources = {
        name: BoundSource(name, inspect_export(plan.sources[name].path))
        for name in plan.used_sources
    }
    errors: list[PlanError] = []
    _bind_exposures(plan, exposures, errors)
    for bound in sources.values():
        _bind_source_keys(plan, bound, errors)
    filters = _bind_metrics(plan, sources, exposures, errors)
    if errors:
        raise PlanErrors(errors)
    bound_plan = BoundPlan(plan, exposures, sources, filters)
    if scan:
        for source in bound_plan.scans():
            source.scan = scan_export(source.files, source.needs, plan.timezone)
        bound_plan.unit_dtype = common_unit_dtype(bound_plan)
        try:
            check_filters(bound_plan)
        except PlanErrors:
            # a text column that starts with digits was typed a number by its first rows
            sources = {
                name: bound_plan.retyped(s) if s.needs.inferred else s
                for name, s in bound_plan.sources.items()
            }
            if all(s is bound_plan.sources[name] for name, s in sources.items()):
                raise
            bound_plan = replace(bound_plan, sources=sources)
            check_filters(bound_plan)
    return bound_plan


def check_filters(bound: BoundPlan, *, every_row: bool = False) -> None:
    """Run every filter on its source's first rows (`_first_rows`), typed as the query types them.

    A filter Polars cannot evaluate on those types (a naive `TIMESTAMP` against a timestamp
    column in UTC, text compared with a number) or values (`CAST(event_name AS INTEGER)` on
    text) would otherwise fail inside the query, after reading the exports, as an internal
    error.

    `every_row`: on every row instead, for when the query failed (a value further in broke a
    filter): a read of each source's filters together, then of each filter alone where that
    failed. A filter whose columns do not read is not blamed: that is the export's problem,
    for `diagnose_failure`.

    Raises:
        PlanErrors: each filter that cannot run.
    """
    filters = list(_filters(bound))
    named = {source.name for *_, source, _ in filters}  # sources without filters are not read
    if every_row:
        suspects = {name for name in named if not _runs(bound.sources[name], filters)}
    else:
        suspects = named
        first = {name: _first_rows(bound.sources[name]) for name in named}
    errors = []
    for metric, side, measure, source, expr in filters:
        if source.name not in suspects:
            continue
        rows = _readable_rows(source, expr) if every_row else first[source.name]
        rounded = _fraction_to_integer(measure.filter or "", source)
        if rounded is not None:
            errors.append(
                PlanError(
                    f"{_measure_key(metric, side)}.filter: {measure.filter!r} casts {rounded}, "
                    "a number with a fraction, to an integer: Polars and Spark truncate it, "
                    "DuckDB and PostgreSQL round it",
                    hint=f"say which: CAST(FLOOR({rounded}) AS INTEGER) (or CEIL, TRUNC, ROUND), "
                    f"or compare {rounded} itself",
                )
            )
            continue
        detail = _failure(rows, expr)
        if detail is not None:
            errors.append(
                PlanError(
                    f"{_measure_key(metric, side)}.filter: {measure.filter!r} cannot run on "
                    f"{source.files.label}'s rows: {detail}",
                    hint=_FILTER_HINT,
                )
            )
    if errors:
        raise PlanErrors(errors)


def _fraction_to_integer(sql: str, source: BoundSource) -> str | None:
    """The first operand of the filter's integer casts that Polars types as a fraction."""
    if source.frame is None or not _CAST.search(sql):
        return None
    from croctl.pipeline.filter_sql import integer_casts  # sqlglot: only for a filter that casts

    schema = source.frame.collect_schema()
    for operand in integer_casts(sql):
        try:
            typed = pl.LazyFrame(schema=schema).select(pl.sql_expr(operand)).collect_schema()
        except pl.exceptions.PolarsError:
            continue  # not Polars' SQL as sqlglot wrote it back: the query's own check decides
        (dtype,) = typed.dtypes()
        if dtype.is_float() or isinstance(dtype, pl.Decimal):
            return operand
    return None


_Filter = tuple[MetricSpec, str, MeasureSpec, BoundSource, pl.Expr]  # metric, side, ..., filter


def _filters(bound: BoundPlan) -> Iterator[_Filter]:
    """Each measure's filter, with its metric, side and source (scanned sources only)."""
    for metric in bound.plan.measured:
        for side, measure in metric.measures():
            expr = bound.filters.get((metric.name, side))
            source = bound.sources[measure.source]
            if expr is not None and source.scan is not None:
                yield metric, side, measure, source, expr


def _runs(source: BoundSource, filters: list[_Filter]) -> bool:
    """Do all of the source's filters run on every row (one read), or its columns not read?"""
    exprs = [expr for *_, of, expr in filters if of is source]
    either = pl.any_horizontal(exprs)
    return _failure(_readable_rows(source, either), either) is None


def _failure(rows: pl.LazyFrame | None, expr: pl.Expr) -> str | None:
    """The first line of Polars' error when `expr` filters `rows` (None: it runs, or no rows)."""
    if rows is None:
        return None
    try:
        rows.filter(expr).select(pl.len()).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        # Polars' wording suggests Python objects, which a plan cannot hold
        return _TEXT_VS_TIME if first.startswith(_POLARS_TEXT_VS_TIME) else first
    return None


_POLARS_TEXT_VS_TIME = "cannot compare 'date/datetime/time' to a string value"
_TEXT_VS_TIME = "a timestamp column is compared with a text literal"


def _first_rows(source: BoundSource) -> pl.LazyFrame | None:
    """A Parquet source's first `_FILTER_SAMPLE` rows, typed (~5 ms); a CSV's, none.

    Polars reads a CSV's head a block at a time (~30-50 ms, 2 % of a 1 M-user readout), so a
    filter that breaks on a CSV's values is found only if the query fails (`every_row`). Rows
    that do not read or parse are the export's problem, reported by the query with its line:
    the filters then also run on no rows, which checks their types.
    """
    if source.frame is None:
        return None
    if source.files.format is FileFormat.PARQUET:
        try:
            return source.frame.head(_FILTER_SAMPLE).collect(engine="streaming").lazy()
        except pl.exceptions.PolarsError:
            pass
    return source.frame.clear()


def _readable_rows(source: BoundSource, expr: pl.Expr) -> pl.LazyFrame | None:
    """Every row `expr` runs on (`ExportScan.before`), if the columns it reads read."""
    assert source.scan is not None
    rows, _ = source.scan.before(expr)
    try:
        rows.select(pl.col(expr.meta.root_names()).null_count()).collect(engine="streaming")
    except pl.exceptions.PolarsError:
        return None
    return rows


_FILTER_SAMPLE = 1_000


_FILTER_HINT = (
    "compare each column with a value of its type (TRY_CAST gives null where a value does not "
    "convert); timestamps are in UTC, so write TIMESTAMPTZ '2026-10-10 00:00:00+00:00' (or "
    "DATE '2026-10-10'), not TIMESTAMP '...'"
)


def _measure_key(metric: MetricSpec, side: str) -> str:
    """The plan key of a metric's measure: `metrics.<name>` (`.numerator` of a ratio's)."""
    label = {"num": ".numerator", "den": ".denominator"}[side] if metric.denominator else ""
    return f"{metric.key}{label}"


def common_unit_dtype(bound: BoundPlan) -> pl.DataType:
    """Integers when every export stores unit ids as integers, else text (joins need one type).

    Integers are compared as Int64, or as UInt64 when every export stores them so (hashed ids
    past 2^63 fit no signed type); a mix of UInt64 and other integers compares as text.
    """
    units = [bound.plan.exposures.unit, *(bound.plan.sources[n].unit for n in bound.sources)]
    dtypes = {
        source.frame.collect_schema()[unit]
        for source, unit in zip(bound.scans(), units, strict=True)
        if source.frame is not None
    }
    if not all(d.is_integer() for d in dtypes):
        return pl.String()
    if pl.UInt64() in dtypes:
        return pl.UInt64() if len(dtypes) == 1 else pl.String()
    return pl.Int64()


def _require(bound: BoundSource, column: str, key: str, errors: list[PlanError]) -> bool:
    if column in bound.files.columns:
        return True
    hint = did_you_mean(column, bound.files.columns) or (
        "columns are: " + ", ".join(bound.files.columns[:12])
    )
    errors.append(PlanError(f"{key}: column '{column}' is not in {bound.files.label}", hint=hint))
    return False


def _require_number(bound: BoundSource, column: str, key: str, errors: list[PlanError]) -> bool:
    """`_require`, and a column that can hold numbers.

    Not the export's timestamp; in Parquet, stored as numbers, booleans (0/1) or text; not text
    whose first values are no numbers.
    """
    if not _require(bound, column, key, errors):
        return False
    dtype = bound.files.types.get(column)
    if column in bound.needs.timestamps or isinstance(dtype, pl.Datetime | pl.Date):
        held = "timestamps"
    elif (text := text_not_numbers(bound.files, column)) is not None:
        held = f"text such as {text!r}"
    elif dtype is None or dtype.is_numeric() or dtype in (pl.Boolean, pl.String, pl.Null):
        return True
    else:
        held = f"{dtype.base_type().__name__} values"
    errors.append(
        PlanError(
            f"{key}: column '{column}' of {bound.files.label} holds {held}, not numbers",
            hint="choose a numeric column (a duration as a number of seconds, a flag as 0/1)",
        )
    )
    return False


def _bind_exposures(plan: Plan, bound: BoundSource, errors: list[PlanError]) -> None:
    spec, needs = plan.exposures, bound.needs
    if _require(bound, spec.unit, "exposures.unit", errors):
        needs.keys.add(spec.unit)
        needs.units.add(spec.unit)
    if _require(bound, spec.variant, "exposures.variant", errors):
        needs.keys.add(spec.variant)
    if _require(bound, spec.timestamp, "exposures.timestamp", errors):
        needs.timestamps.add(spec.timestamp)
    for name, column in plan.segments.items():
        if _require(bound, column, f"segments.{name}", errors):
            needs.keys.add(column)
    for metric in plan.metrics:
        if metric.covariate and metric.covariate.column:
            key = f"metrics.{metric.name}.covariate"
            if _require_number(bound, metric.covariate.column, key, errors):
                needs.numbers.add(metric.covariate.column)


def _bind_source_keys(plan: Plan, bound: BoundSource, errors: list[PlanError]) -> None:
    spec = plan.sources[bound.name]
    if _require(bound, spec.unit, f"sources.{bound.name}.unit", errors):
        bound.needs.keys.add(spec.unit)
        bound.needs.units.add(spec.unit)
    if spec.timestamp and _require(
        bound, spec.timestamp, f"sources.{bound.name}.timestamp", errors
    ):
        bound.needs.timestamps.add(spec.timestamp)
    if spec.id and _require(bound, spec.id, f"sources.{bound.name}.id", errors):
        bound.needs.keys.add(spec.id)


def _bind_metrics(
    plan: Plan, sources: dict[str, BoundSource], exposures: BoundSource, errors: list[PlanError]
) -> dict[tuple[str, str], pl.Expr]:
    filters: dict[tuple[str, str], pl.Expr] = {}
    for metric in plan.measured:
        for side, measure in metric.measures():
            key = _measure_key(metric, side)
            bound = sources[measure.source]
            if measure.value and _require_number(bound, measure.value, f"{key}.value", errors):
                bound.needs.numbers.add(measure.value)
            if (measure.window or (metric.covariate and metric.covariate.lookback)) and not (
                plan.sources[measure.source].timestamp
            ):
                errors.append(
                    PlanError(
                        f"{key}: windows and lookbacks need a timestamp, and source "
                        f"'{measure.source}' has none",
                        hint=f"set sources.{measure.source}.timestamp",
                    )
                )
            if measure.filter:
                compiled = _compile_filter(measure.filter, f"{key}.filter", bound, errors)
                if compiled is not None:
                    filters[(metric.name, side)] = compiled
    return filters


_SUBQUERY = re.compile(r"\bselect\b", re.IGNORECASE)
_CAST = re.compile(r"cast\s*\(|::", re.IGNORECASE)  # CAST, TRY_CAST, DuckDB's `x::int`


def _compile_filter(
    sql: str, key: str, bound: BoundSource, errors: list[PlanError]
) -> pl.Expr | None:
    problem, hint = None, "write a SQL boolean expression, e.g. event_name = 'purchase'"
    try:
        expr = pl.sql_expr(sql)
        names = expr.meta.root_names()
    except pl.exceptions.PolarsError as exc:
        problem = f"cannot parse filter {sql!r}: {(str(exc).splitlines() or ['syntax error'])[0]}"
    if _SUBQUERY.search(sql) and (problem or any(n.startswith("_POLARS_") for n in names)):
        problem = f"filter {sql!r} has a subquery"
        hint = "a filter reads one row's columns, e.g. event_name IN ('purchase', 'refund')"
    if problem:
        errors.append(PlanError(f"{key}: {problem}", hint=hint))
        return None
    names = list(dict.fromkeys(names))  # each column once, as often as the filter names it
    # a list, not a generator: report every missing column, not just the first
    ok = all([_require(bound, name, key, errors) for name in names])  # noqa: C419
    if not ok:
        return None
    for name in names:
        if name not in bound.needs.numbers and name not in bound.needs.timestamps:
            bound.needs.inferred.add(name)
    return expr
