"""Text and floats as the values croctl compares: unit ids and numbers."""

from __future__ import annotations

import polars as pl

from croctl.io.files import ExportFiles, FileFormat, first_text

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


_TEXT_SAMPLE = 20  # first values of a Parquet text column looked at by `text_not_numbers`


def text_not_numbers(files: ExportFiles, name: str) -> str | None:
    """A first value of a text column none of whose first values reads as a number, or None.

    Such a column is no value (an event name chosen by mistake). Said at the plan's key, this
    comes before the column's filters fail, comparing their text with it cast to numbers. A
    CSV's first rows were read with its header (`ExportFiles.texts`).
    """
    if files.format is not FileFormat.PARQUET:
        return files.texts.get(name)
    if files.types.get(name) != pl.String:
        return None
    try:
        stored = pl.read_parquet(files.paths[0], columns=[name], n_rows=_TEXT_SAMPLE)
    except (pl.exceptions.PolarsError, OSError):
        return None  # the export's read says what is wrong
    return first_text(stored.get_column(name).drop_nulls())
