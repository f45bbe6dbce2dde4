"""Text and floats as the values croctl compares: unit ids and numbers."""

from __future__ import annotations

import polars as pl

WHOLE_FRACTION = r"[.]0+$"  # what `integral_text` leaves off a whole number's text


def integral_text(ids: pl.Expr) -> pl.Expr:
    """Float ids as text, whole numbers without a `.0` (`123`, as the same id stored as an integer).

    pandas writes an integer column with a missing value as floats: such an export's ids still
    join another's integers.
    """
    whole = ids.cast(pl.Int64, strict=False)
    same = whole.cast(pl.Float64) == ids
    return pl.when(same).then(whole.cast(pl.String)).otherwise(ids.cast(pl.String))


def number_text(text: pl.Expr) -> pl.Expr:
    """Text a number column holds, ready to cast: ` 12.5` stripped, `true`/`false` as 1 and 0.

    DuckDB reads a CSV's column of `true`/`false` as booleans, and averages them as 0/1.
    """
    stripped = text.str.strip_chars()
    return stripped.str.replace(r"(?i)^true$", "1").str.replace(r"(?i)^false$", "0")
