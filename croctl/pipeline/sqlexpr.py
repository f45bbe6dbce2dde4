"""sqlglot expression helpers for the statistics query (quoted names, typed literals)."""

from __future__ import annotations

from datetime import datetime

from sqlglot import exp

from croctl.io.iso import BEFORE_CHANGE
from croctl.io.values import WHOLE_FRACTION

_MAX = exp.Literal.number("1.7976931348623157e308")
_CHANGE = BEFORE_CHANGE.total_seconds()  # the later reading, as `local_to_utc` takes it


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference."""
    return exp.column(name, table=table, quoted=True)


def num(value: float | int) -> exp.Literal:
    """A numeric literal."""
    return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))


def cast(expression: exp.Expression, to: str) -> exp.Cast:
    """CAST(expression AS to)."""
    return exp.cast(expression, exp.DataType.build(to))


def time_literal(moment: datetime) -> exp.Cast:
    """An absolute time literal."""
    return cast(exp.Literal.string(moment.isoformat(sep=" ")), "TIMESTAMPTZ")


def sum_if(condition: exp.Expression, value: exp.Expression | None = None) -> exp.Sum:
    """SUM(CASE WHEN condition THEN value ELSE 0 END); value defaults to 1 (a count)."""
    then = value if value is not None else num(1)
    return exp.Sum(this=exp.Case(ifs=[exp.If(this=condition, true=then)], default=num(0)))


def plus_seconds(expression: exp.Expression, seconds: float) -> exp.Add:
    """Expression + INTERVAL 'seconds' SECOND."""
    interval = exp.Interval(this=exp.Literal.string(str(int(seconds))), unit=exp.Var(this="SECOND"))
    return exp.Add(this=expression, expression=interval)


def minus_seconds(expression: exp.Expression, seconds: float) -> exp.Sub:
    """Expression - INTERVAL 'seconds' SECOND."""
    interval = exp.Interval(this=exp.Literal.string(str(int(seconds))), unit=exp.Var(this="SECOND"))
    return exp.Sub(this=expression, expression=interval)


def nonfinite(name: str) -> exp.Expression:
    """True for NaN and ±inf (NaN sorts above every number in DuckDB and Postgres)."""
    return exp.Not(this=exp.Between(this=col(name), low=exp.Neg(this=_MAX), high=_MAX))


def indicator(condition: exp.Expression) -> exp.Expression:
    """1.0 when `condition` holds, else 0.0."""
    return exp.Case(ifs=[exp.If(this=condition, true=num(1.0))], default=num(0.0))


def epoch_time(
    number: exp.Expression, scale: int, bounds: tuple[int, int], fraction: bool, dialect: str
) -> exp.Expression:
    """An absolute time from epoch `number` counted in 1/scale seconds (to the microsecond).

    Whole numbers stay integers (nanoseconds are truncated, as the Polars engine does);
    numbers with a fraction are rounded to the microsecond. A number outside `bounds` (2000-2099
    in that unit) fails the query, as in the Polars engine, rather than landing in 1970: the
    cast of a text naming it is the one run-time error every dialect raises (on Spark, with
    ANSI mode on, its default since 4.0).
    """
    kind = "DOUBLE" if fraction else "BIGINT"
    value = cast(number, kind)
    text = exp.DPipe(
        this=cast(number, "VARCHAR"),
        expression=exp.Literal.string(" is not in the epoch unit of the column's first values"),
    )
    in_span = exp.and_(
        exp.GTE(this=value.copy(), expression=num(bounds[0])),
        exp.LT(this=value.copy(), expression=num(bounds[1])),
        copy=False,
    )
    usable = exp.or_(in_span, exp.Is(this=value.copy(), expression=exp.Null()), copy=False)
    micros: exp.Expression = exp.Case(
        ifs=[exp.If(this=usable, true=value)], default=cast(text, kind)
    )
    if fraction:
        micros = cast(exp.Round(this=exp.Mul(this=micros, expression=num(10**6 / scale))), "BIGINT")
    elif scale > 10**6:
        micros = exp.IntDiv(this=micros, expression=num(scale // 10**6))
    elif scale < 10**6:
        micros = exp.Mul(this=micros, expression=num(10**6 // scale))
    if dialect == "snowflake":
        return _snowflake_instant(micros)
    instant = exp.UnixToTime(this=micros, scale=exp.UnixToTime.MICROS)
    if dialect == "duckdb":  # MAKE_TIMESTAMP gives the UTC wall time, without its zone
        return exp.AtTimeZone(this=instant, zone=exp.Literal.string("UTC"))
    return instant


def local_instant(local: exp.Expression, zone: str, dialect: str) -> exp.Expression:
    """The instant a naive local time in `zone` names, in each dialect's own words.

    sqlglot's `AT TIME ZONE` reads a naive time as local only on DuckDB and PostgreSQL; on
    Spark, BigQuery and Snowflake it means the reverse (an instant's wall time in the zone),
    which moved every time by twice the zone's offset. Of a local time's two readings around a
    daylight-saving change, the later instant is taken, as DuckDB and PostgreSQL read it; Spark
    (Java) takes the earlier in a repeated hour, so its query checks the later reading.
    """
    name = exp.Literal.string(zone)
    if dialect == "bigquery":
        return exp.Timestamp(this=cast(local, "TIMESTAMP"), zone=name)  # TIMESTAMP(datetime, zone)
    if dialect == "snowflake":  # the UTC wall time's epoch count, as an absolute time
        wall = exp.ConvertTimezone(
            source_tz=name,
            target_tz=exp.Literal.string("UTC"),
            timestamp=cast(local, "TIMESTAMPNTZ"),
        )
        micros = exp.Anonymous(this="DATE_PART", expressions=[exp.var("EPOCH_MICROSECOND"), wall])
        return _snowflake_instant(micros)
    wall = cast(local, "TIMESTAMP")
    if dialect != "spark":
        return exp.AtTimeZone(this=wall, zone=name)
    earlier = exp.FromTimeZone(this=wall, zone=name)  # TO_UTC_TIMESTAMP
    later = minus_seconds(exp.FromTimeZone(this=plus_seconds(wall, _CHANGE), zone=name), _CHANGE)
    seen = exp.EQ(this=exp.AtTimeZone(this=later.copy(), zone=name), expression=wall.copy())
    return exp.Case(ifs=[exp.If(this=seen, true=later)], default=earlier)


def _snowflake_instant(micros: exp.Expression) -> exp.Expression:
    """Epoch microseconds as a TIMESTAMP_TZ (TO_TIMESTAMP would give a TIMESTAMP_NTZ)."""
    return exp.Anonymous(this="TO_TIMESTAMP_TZ", expressions=[micros, num(6)])


def wall_micros(nanosecond_time: exp.Expression) -> exp.Expression:
    """A DuckDB nanosecond timestamp's wall time truncated to µs (its cast would round it)."""
    nanos = exp.Anonymous(this="EPOCH_NS", expressions=[nanosecond_time])
    micros = exp.IntDiv(this=nanos, expression=num(1000))
    return exp.UnixToTime(this=micros, scale=exp.UnixToTime.MICROS)


def integral_text(ids: exp.Expression) -> exp.Expression:
    """Float ids as text, whole numbers without a `.0`, as `io.scan.integral_text` writes them."""
    whole = exp.and_(
        exp.LT(this=exp.Abs(this=ids.copy()), expression=exp.Literal.number("9.2e18")),
        exp.EQ(this=ids.copy(), expression=exp.Floor(this=ids.copy())),
    )
    # TRY_CAST: DuckDB casts a NaN the condition rules out (and fails); Postgres has no TRY_CAST,
    # and sqlglot writes a CAST there, which its CASE evaluates only where the condition holds
    integer = cast(exp.TryCast(this=ids.copy(), to=exp.DataType.build("BIGINT")), "VARCHAR")
    return exp.Case(ifs=[exp.If(this=whole, true=integer)], default=cast(ids.copy(), "VARCHAR"))


def whole_number_text(ids: exp.Expression) -> exp.Expression:
    """Text ids written `123.0` without the `.0`, as `io.values.WHOLE_FRACTION` strips them."""
    return exp.RegexpReplace(
        this=cast(ids, "VARCHAR"),
        expression=exp.Literal.string(WHOLE_FRACTION),
        replacement=exp.Literal.string(""),
    )
