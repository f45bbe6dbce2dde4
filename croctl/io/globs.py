"""The files of one glob written apart: their common column types, and how to read them as one.

Daily or hourly exports drift: a value column is an integer one day and a float the next, one
writer stores times in milliseconds and another in microseconds or another zone, a label is a
dictionary here and text there, a CSV writer orders the columns differently. Polars reads a
glob with the first file's schema and refuses any other; read with the common types below, each
file's columns are cast to them as they are read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from croctl.errors import DataError

# The casts `common_type` relies on: integers widened or made floats, floats widened, times
# converted to microseconds (croctl's precision) in one zone, dictionaries read as text.
CASTS = pl.ScanCastOptions(
    integer_cast=["upcast", "allow-float"],
    float_cast="upcast",
    datetime_cast=["nanosecond-downcast", "millisecond-upcast", "convert-timezone"],
    categorical_to_string="allow",
)
_TEXT = (pl.String, pl.Categorical, pl.Enum)
_HINT = "export every file of the glob with the same column types"


def common_types(
    paths: Sequence[Path], schemas: Sequence[Mapping[str, pl.DataType]]
) -> dict[str, pl.DataType] | None:
    """Each column's type that every file's converts to; None when the files agree already.

    Raises:
        DataError: a column whose types have no common one (text in one file, numbers in
            another; times with a zone in one and without in another).
    """
    if all(dict(schema) == dict(schemas[0]) for schema in schemas[1:]):
        return None
    return {
        name: common_type(
            name, [(path, schema[name]) for path, schema in zip(paths, schemas, strict=True)]
        )
        for name in schemas[0]
    }


def common_type(name: str, typed: Sequence[tuple[Path, pl.DataType]]) -> pl.DataType:
    """The type every file's `name` column converts to without loss (see `CASTS`)."""
    dtypes = [dtype for _, dtype in typed]
    if all(dtype == dtypes[0] for dtype in dtypes):
        return dtypes[0]
    if all(dtype.is_integer() for dtype in dtypes):
        return pl.UInt64() if all(dtype.is_unsigned_integer() for dtype in dtypes) else pl.Int64()
    if all(dtype.is_integer() or dtype.is_float() for dtype in dtypes):
        return pl.Float64()
    if all(any(dtype == text for text in _TEXT) for dtype in dtypes):
        return pl.String()
    if all(isinstance(dtype, pl.Datetime) for dtype in dtypes):
        zones = {dtype.time_zone for dtype in dtypes if isinstance(dtype, pl.Datetime)}
        if len(zones) == 1:  # one zone, or naive in every file
            return pl.Datetime("us", zones.pop())
        if None not in zones:
            return pl.Datetime("us", "UTC")
    (first, a), (other, b) = typed[0], next(item for item in typed if item[1] != dtypes[0])
    raise DataError(f"{other}: column '{name}' is {b}, but {a} in {first.name}", hint=_HINT)
