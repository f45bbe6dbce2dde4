"""Metric filters for the SQL engines, read as Polars' SQL reads them.

A filter is written once and runs on Polars (`pl.sql_expr`) and in every dialect (sqlglot).
Where the engines' own functions disagree, the SQL is spelled out to Polars' meaning:

- It is parsed as DuckDB's SQL: `/` divides exactly and CONCAT skips nulls, as in Polars
  (sqlglot's default reading made CONCAT `||`, which gives null for a null column).
- TRIM without characters removes every white space character in Polars (tabs, line breaks,
  no-break spaces: Unicode's White_Space, as Rust's `str::trim`) and only spaces elsewhere: the
  SQL names the characters.
- ROUND rounds halves to even in Polars (`round(2.5)` is 2) and away from zero in DuckDB, Spark,
  BigQuery and Snowflake (3). The SQL rounds a half to even itself, and other values with the
  engine's ROUND (no tie is left for its rule to decide).

A cast of a number with a fraction to an integer type is truncated by Polars and Spark and
rounded by DuckDB and PostgreSQL; no spelling reads alike on all of them, so binding the plan
makes such a filter a plan error that asks for FLOOR, CEIL, TRUNC or ROUND (`integer_casts`
gives it the casts' operands, whose Polars types it checks).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from croctl.pipeline.sqlexpr import num

_ROUNDED = (exp.Floor, exp.Ceil, exp.Round, exp.Trunc)
_WHITE_SPACE = (
    "".join(  # Unicode's White_Space property, which Polars' trim removes
        map(chr, [*range(9, 14), 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029])
    )
    + "\u202f\u205f\u3000"
)


def filter_sql(sql: str) -> exp.Expression:
    """The filter as the SQL engines should evaluate it (see the module's docstring)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    for trim in tree.find_all(exp.Trim):
        if trim.args.get("expression") is None:
            trim.set("expression", exp.Literal.string(_WHITE_SPACE))
    for node in reversed(list(tree.find_all(exp.Round))):  # inner calls first
        spelled = _round_half_even(node)
        if node is tree:
            return spelled
        node.replace(spelled)
    return tree


def _round_half_even(node: exp.Round) -> exp.Expression:
    """ROUND(x[, d]) rounding halves to even: a tie becomes 2 * ROUND(x / 2), which is none."""
    decimals = node.args.get("decimals")
    if decimals is not None and not (decimals.is_int and int(decimals.name) >= 0):
        return node  # a negative or computed precision: left to the engine
    scale = 10 ** int(decimals.name) if decimals is not None else 1
    scaled = exp.paren(node.this.copy())
    if scale != 1:
        scaled = exp.Mul(this=scaled, expression=num(scale))
    fraction = exp.Sub(this=scaled.copy(), expression=exp.Floor(this=scaled.copy()))
    tie = exp.EQ(this=fraction, expression=num(0.5))
    even = exp.Mul(
        this=num(2), expression=exp.Round(this=exp.Div(this=scaled.copy(), expression=num(2)))
    )
    rounded = exp.Case(ifs=[exp.If(this=tie, true=even)], default=exp.Round(this=scaled))
    return rounded if scale == 1 else exp.Div(this=exp.paren(rounded), expression=num(scale))


def integer_casts(sql: str) -> list[str]:
    """The operands (as SQL) of the filter's casts to an integer type, but FLOOR(x) and the like."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return []  # Polars' SQL that sqlglot does not read: `croctl sql` reports it
    return [
        cast.this.sql(dialect="duckdb")
        for cast in tree.find_all(exp.Cast)
        if cast.to.is_type(*exp.DataType.INTEGER_TYPES) and not isinstance(cast.this, _ROUNDED)
    ]
