"""Integer keys for the query's hash tables: unit ids (text by fingerprint), label codes."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.names import UNIT, seg_col, word_col

Text = TypeVar("Text", pl.Expr, pl.Series)  # a column as an expression, or its values
_HIGH_SEED, _LOW_SEED = 0x5EED1, 0x5EED2  # the two hashes of `fingerprint`


def unit_id(bound: BoundPlan, source: BoundSource) -> pl.Expr:
    """The source's unit column, in the integer type every export shares, or as text."""
    name = (
        bound.plan.exposures.unit
        if source is bound.exposures
        else bound.plan.sources[source.name].unit
    )
    return pl.col(name).cast(bound.unit_dtype if bound.unit_dtype.is_integer() else pl.String)


def unit_key(bound: BoundPlan, source: BoundSource) -> pl.Expr:
    """The source's unit column as the shared join key `UNIT` (text ids by `fingerprint`)."""
    ids = unit_id(bound, source)
    return (ids if bound.unit_dtype.is_integer() else fingerprint(ids)).alias(UNIT)


def source_ids(bound: BoundPlan, source: BoundSource) -> pl.LazyFrame:
    """The source's unit ids as `UNIT`, one per row, keyed for coverage (`coverage_key`)."""
    assert source.scan is not None
    return source.scan.raw.select(source_key(bound, source).alias(UNIT))


def source_key(bound: BoundPlan, source: BoundSource) -> pl.Expr:
    """A row's unit id as `coverage_key` keys it (null for none)."""
    ids = unit_id(bound, source)
    return ids if bound.unit_dtype.is_integer() else pl.when(ids.is_not_null()).then(high_word(ids))


def coverage_key(bound: BoundPlan) -> pl.Expr:
    """`UNIT` in the key `source_ids` gives: text ids by their fingerprint's high 64 bits.

    Coverage reads every row's id, page views included (45 M at 3 M users), and there the two
    hashes and the 128-bit arithmetic of a whole fingerprint cost more than the read itself. Half
    of it is enough for a count: an exposed unit without rows is counted as covered only if its
    64 bits equal those of an id the source has, about units × ids / 2^64 such units in all
    (5e-6 at ten million of each).
    """
    if bound.unit_dtype.is_integer():
        return pl.col(UNIT)
    return (pl.col(UNIT) // pl.lit(1 << 64, pl.Int128)).cast(pl.Int64).alias(UNIT)


def fingerprint(text: pl.Expr) -> pl.Expr:
    """A 128-bit integer key for a text id: two differently seeded 64-bit hashes side by side.

    Hash tables on 16-byte integers are 2-3x faster than on text: a UUID is too long to sit in
    Polars' inline string view, so every probe of a text key reads the string's bytes as well.
    Distinct ids share a fingerprint with probability below n^2 / 2^129 (1e-21 at a billion
    ids), the bound ClickHouse's exact distinct count relies on for strings. Null stays null.
    """
    high = high_word(text).cast(pl.Int128)
    low = text.hash(seed=_LOW_SEED).cast(pl.Int128)
    return pl.when(text.is_not_null()).then(high * pl.lit(1 << 64, pl.Int128) + low)


def fingerprint_words(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """`fingerprint`'s two hashes as signed 64-bit words (a pair of `Int64` keys, not null)."""
    return high_word(text), low_word(text)


def low_word(text: Text) -> Text:
    """`fingerprint_words`' low word: of an expression, or of a Series eagerly (few of many)."""
    return text.hash(seed=_LOW_SEED).reinterpret(signed=True)


def high_word(text: Text) -> Text:
    """`fingerprint`'s high 64 bits, signed (not null for null text), of an expression or Series."""
    return text.hash(seed=_HIGH_SEED).reinterpret(signed=True)


def segment_words(n: int) -> list[pl.Expr]:
    """The n segment columns (`seg_col`) as their 32-bit codes, two to a 64-bit word (`word_col`).

    The first exposures carry each unit's segments in these words (`build._first_exposures`
    says why); `segments_from_words` unpacks them.
    """
    return [
        _packed_codes(seg_col(j), seg_col(j + 1) if j + 1 < n else None).alias(word_col(j // 2))
        for j in range(0, n, 2)
    ]


def segments_from_words(n: int) -> list[pl.Expr]:
    """The n segment columns back from `segment_words`' words, as categoricals."""
    return [_unpacked_code(word_col(i // 2), i % 2).alias(seg_col(i)) for i in range(n)]


def _packed_codes(low: str, high: str | None) -> pl.Expr:
    word = pl.col(low).to_physical().cast(pl.UInt64)
    if high is not None:
        word = word + pl.col(high).to_physical().cast(pl.UInt64) * (1 << 32)
    return word


def _unpacked_code(word: str, half: int) -> pl.Expr:
    code = pl.col(word) // (1 << 32) if half else pl.col(word) % (1 << 32)
    return code.cast(pl.UInt32).cat.to(pl.Categorical)
