"""A CSV's unit ids keyed as integers when they are written as integers.

A CSV has no types: its unit ids are read as text, so that `007` and `7` stay two units. Text
keys cost the query a 128-bit fingerprint per row, and coverage a hash set where a bitmap would
do (at 1 M users in CSV, the query took 3.3 s on text keys, 2.5 s on integer ones). Most exports
number their users, so `integer_keyed` keys a CSV's ids as `Int64` when its first values are
integers written as Python or SQL would print them: no sign but a minus, no leading zero. Such
text and its integer determine each other, so every comparison the query makes comes out as on
the text. A later value written otherwise (`007`, `+7`, `u7`, past 2^63) fails the conversion,
and `collect` starts over with the ids as text.

The Polars engine's own choice: the SQL engines read the ids as the plan's exports type them.
"""

from __future__ import annotations

import re
from dataclasses import replace

import polars as pl

from croctl.io import FileFormat
from croctl.io.scan import first_values
from croctl.pipeline.bind import BoundPlan, BoundSource, common_unit_dtype
from croctl.pipeline.build import metric_filters

_CANONICAL = re.compile(r"(0|-?[1-9][0-9]{0,18})")


def integer_keyed(bound: BoundPlan) -> BoundPlan | None:
    """The plan with its CSV exports' unit ids as `Int64`; None if that keys no join by integers.

    Every export's unit ids must then be integers: stored so, or CSV text whose sample reads as
    canonical integers (and no metric filter reads the column, which compares it as text).
    """
    if bound.unit_dtype != pl.String or bound.exposures.scan is None:
        return None
    exposures = _keyed(bound.exposures, bound.plan.exposures.unit, filtered=False)
    sources = {
        name: _keyed(source, bound.plan.sources[name].unit, _filters_read(bound, name))
        for name, source in bound.sources.items()
    }
    integer = replace(bound, exposures=exposures, sources=sources)
    integer.unit_dtype = common_unit_dtype(integer)
    return integer if integer.unit_dtype == pl.Int64 else None


def _keyed(source: BoundSource, unit: str, filtered: bool) -> BoundSource:
    """The source with its unit column as `Int64`, where it is CSV text of integers."""
    assert source.scan is not None
    if filtered or not _integer_text(source, unit):
        return source
    raw = source.scan.raw.with_columns(checked_integer(pl.col(unit)).alias(unit))
    return replace(source, scan=replace(source.scan, raw=raw))


def checked_integer(text: pl.Expr) -> pl.Expr:
    """Canonical integer text as `Int64`; any other text fails the query (nulls stay null)."""
    # Polars reads `007`, `+7` and `-0` as integers too: refused, since `7` and `0` are others
    other = (
        text.str.starts_with("+")
        | text.str.starts_with("-0")
        | (text.str.starts_with("0") & (text.str.len_bytes() > 1))
    )
    return pl.when(other).then(pl.lit("not canonical")).otherwise(text).str.to_integer()


def _integer_text(source: BoundSource, unit: str) -> bool:
    """Is the unit column CSV text whose first values are canonical integers?"""
    assert source.scan is not None
    if source.files.format is not FileFormat.CSV:
        return False
    if source.scan.raw.collect_schema()[unit] != pl.String:
        return False
    values = first_values(source.files, source.scan.raw, unit)
    return (
        all(_CANONICAL.fullmatch(v) for v in values)
        and values.str.to_integer(strict=False).null_count() == 0
    )


def _filters_read(bound: BoundPlan, source: str) -> bool:
    """Does a metric filter on `source` read its unit column?"""
    unit = bound.plan.sources[source].unit
    return any(f is not None and unit in f.meta.root_names() for f in metric_filters(bound, source))
