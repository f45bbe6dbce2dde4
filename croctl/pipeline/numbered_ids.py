"""Text ids keyed as integers when they are numbered: `42`, `user_42`, `u000042`.

Text keys cost the query a 128-bit fingerprint per row, coverage a hash set, and the dense
arrays a hash table of every unit, where integer ids get bitmaps and arrays indexed by id. At
10 M users in Parquet with ids `user_<n>`, the readout took 21.0 s as text (0.90× DuckDB) and
11.9 s as numbers (0.53×). Most exports number their users and events, so `integer_keyed` keys
text ids by their number when the first values share a prefix and write the number one way:
as Python or SQL prints them (no sign but a minus, no leading zero), or zero-padded to one
width. Such text and its number determine each other, so every comparison the query makes
comes out as on the text. A later value written otherwise (another prefix or width, `007`
where numbers are not padded, `+7`, past 2^63) fails the conversion, and `collect` starts over
with the ids as text.

The Polars engine's own choice: the SQL engines read the ids as the exports type them. A CSV
has no types, so its ids are text until this finds them numbered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import polars as pl

from croctl.io import FileFormat
from croctl.io.scan import first_values
from croctl.pipeline.bind import common_unit_dtype
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.build import metric_filters
from croctl.pipeline.dense import MIN_ROWS
from croctl.pipeline.dense_rows import row_count

_CANONICAL = re.compile(r"0|-?[1-9][0-9]{0,18}")
_NUMBERED = re.compile(r"(.*?)([0-9]{1,18})", re.DOTALL)  # a prefix, then the number's digits
_DIGITS = "__digits"


@dataclass(frozen=True, slots=True)
class Numbering:
    """Ids written as `prefix` and a number: canonically, or zero-padded to `width` digits."""

    prefix: str = ""
    width: int | None = None

    def numbered(self, frame: pl.LazyFrame, column: str, compiled: bool = False) -> pl.LazyFrame:
        """`frame` with `column`'s ids as their numbers (`Int64`; null stays null).

        Any id not written so fails the query. `compiled`: by a compiled loop over the text
        (`numbered_kernel.numbers`, 0.08-0.3 s per 15 M ids), for readouts that load numba
        anyway; else by Polars, the digits a column of their own so that the checks read them
        without stripping the prefix again (~0.3-0.4 s against 0.8 s).
        """
        if compiled:
            from croctl.pipeline.numbered_kernel import numbers

            number = pl.col(column).map_batches(
                lambda ids: numbers(ids, self), return_dtype=pl.Int64, is_elementwise=True
            )
            return frame.with_columns(number)
        text, digits, other = pl.col(column), pl.col(_DIGITS), pl.lit(False)
        if self.prefix:
            frame = frame.with_columns(text.str.strip_prefix(self.prefix).alias(_DIGITS))
            # an id without the prefix is left whole
            other = digits.str.len_bytes() != text.str.len_bytes() - len(self.prefix.encode())
        else:
            frame = frame.with_columns(text.alias(_DIGITS))
        # Polars reads `007`, `+7` and `-0` as integers too: refused, since `7` and `0` differ
        other |= digits.str.starts_with("+") | digits.str.starts_with("-0")
        if self.width is None:
            other |= digits.str.starts_with("0") & (digits.str.len_bytes() > 1)
        else:
            other |= digits.str.starts_with("-") | (digits.str.len_bytes() != self.width)
        number = pl.when(other).then(pl.lit("not numbered")).otherwise(digits).str.to_integer()
        return frame.with_columns(number.alias(column)).drop(_DIGITS)


def numbering_of(values: pl.Series) -> Numbering | None:
    """How a sample of ids is numbered, or None if it is not (or is empty)."""
    texts = [str(v) for v in values.drop_nulls()]
    if not texts:
        return None
    if all(_CANONICAL.fullmatch(t) and -(2**63) <= int(t) < 2**63 for t in texts):
        return Numbering()
    parts = [_NUMBERED.fullmatch(t) for t in texts]
    if not all(parts):
        return None
    prefixes = {m.group(1) for m in parts if m}
    digits = [m.group(2) for m in parts if m]
    if len(prefixes) != 1:
        return None
    prefix = prefixes.pop()
    if all(_CANONICAL.fullmatch(d) for d in digits):
        return Numbering(prefix)
    widths = {len(d) for d in digits}
    return Numbering(prefix, widths.pop()) if len(widths) == 1 else None


def integer_keyed(bound: BoundPlan) -> BoundPlan | None:
    """The plan with its numbered text ids as their numbers (`Int64`); None if none are.

    The unit ids (every export's alike), and each source's event ids on their own.
    """
    compiled = _compiled(bound)
    units = _units_keyed(bound, compiled)
    keyed = units or bound
    sources = {name: _events_keyed(keyed, name, compiled) for name in keyed.sources}
    if units is None and all(s is bound.sources[n] for n, s in sources.items()):
        return None
    return replace(keyed, sources=sources)


def _units_keyed(bound: BoundPlan, compiled: bool) -> BoundPlan | None:
    """The plan with its unit ids as their numbers; None if they are not numbered.

    Every export's text ids must be numbered alike, by their first values, and no metric filter
    may read the unit column (it compares text). Exports whose ids are stored as integers join
    canonically written numbers only (`7` is the text of 7; `u7` and `007` are not).
    """
    pays = compiled or _has_csv(bound)
    if bound.unit_dtype != pl.String or bound.exposures.scan is None or not pays:
        return None
    plan = bound.plan
    exports = [(bound.exposures, plan.exposures.unit, False)]
    for name, source in bound.sources.items():
        unit = plan.sources[name].unit
        exports.append((source, unit, _filters_read(bound, name, unit)))
    numberings = set()
    for source, unit, filtered in exports:
        numberings.add(_numbering(source, unit, filtered))
        if None in numberings or len(numberings) > 1:
            return None
    numbering = numberings.pop()
    assert numbering is not None
    integer = replace(
        bound,
        exposures=_unit_keyed(bound.exposures, plan.exposures.unit, numbering, compiled),
        sources={
            n: _unit_keyed(s, plan.sources[n].unit, numbering, compiled)
            for n, s in bound.sources.items()
        },
        numbering=numbering,
    )
    integer.unit_dtype = common_unit_dtype(integer)
    return integer if integer.unit_dtype == pl.Int64 else None


def _compiled(bound: BoundPlan) -> bool:
    """Will the dense arrays read these Parquet exports? Then numba converts the ids.

    Unit ids are converted only for them or for a CSV: the dense arrays index by number, and a
    CSV's one read marks a bitmap instead of a set, while the hash query over Parquet hashes
    text faster than Polars converts it (1 M users with ids `user_<n>`: 2.1 s as text, 2.4 s as
    numbers).
    """
    if _has_csv(bound):
        return False
    assert bound.exposures.scan is not None
    return row_count(bound.exposures.scan.raw) >= MIN_ROWS


def _has_csv(bound: BoundPlan) -> bool:
    return any(s.files.format is FileFormat.CSV for s in bound.scans())


def _events_keyed(bound: BoundPlan, name: str, compiled: bool) -> BoundSource:
    """Source `name` with its event ids as their numbers, when they are numbered text.

    Event ids are only compared with each other (a repeated id is counted once), so any
    numbering serves, as long as the plan reads the column for nothing else.
    """
    source, spec = bound.sources[name], bound.plan.sources[name]
    if not spec.id or spec.id in (spec.unit, spec.timestamp):
        return source
    # A CSV's one read converts every row before the rows are kept (`held`): dearer than a
    # fingerprint of the kept rows' text (~0.1 s at 15 M rows).
    if source.files.format is FileFormat.CSV:
        return source
    if spec.id in bound.plan.source_values(name) or _filters_read(bound, name, spec.id):
        return source
    numbering = _numbering(source, spec.id, filtered=False)  # stored integers: left as they are
    return source if numbering is None else _keyed(source, spec.id, numbering, compiled)


def _keyed(source: BoundSource, column: str, numbering: Numbering, compiled: bool) -> BoundSource:
    """The source with its text id column as the ids' numbers."""
    assert source.scan is not None
    if source.scan.raw.collect_schema()[column] != pl.String:
        return source
    raw = numbering.numbered(source.scan.raw, column, compiled)
    return replace(source, scan=replace(source.scan, raw=raw))


def _unit_keyed(
    source: BoundSource, unit: str, numbering: Numbering, compiled: bool
) -> BoundSource:
    """`_keyed` for the unit column, its text kept aside (`BoundSource.unit_text`)."""
    keyed = _keyed(source, unit, numbering, compiled)
    if keyed is source:
        return source
    assert source.scan is not None
    return replace(keyed, unit_text=source.scan.raw.select(unit))


def _numbering(source: BoundSource, column: str, filtered: bool) -> Numbering | None:
    """How the source's ids are numbered, by its first values (integers: canonically)."""
    assert source.scan is not None
    if source.scan.raw.collect_schema()[column] != pl.String:
        return Numbering()  # integers join their canonical text only
    if filtered:
        return None
    return numbering_of(first_values(source.files, source.scan.raw, column))


def _filters_read(bound: BoundPlan, source: str, column: str) -> bool:
    """Does a metric filter on `source` read `column`?"""
    filters = metric_filters(bound, source)
    return any(f is not None and column in f.meta.root_names() for f in filters)
