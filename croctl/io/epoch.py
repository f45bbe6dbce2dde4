"""Epoch numbers as timestamps: the unit a column's numbers are in, the years they fall in."""

from __future__ import annotations

import polars as pl

from croctl.errors import DataError
from croctl.io.files import ExportFiles, FileFormat

EPOCH_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_EPOCH_SPAN = (946_684_800, 4_102_444_800)  # 2000-01-01 and 2100-01-01, in seconds
EPOCH_HINT = "export the whole column in one epoch unit; leave unknown times empty, not 0"


def epoch_unit(values: pl.Series) -> str | None:
    """The unit (a key of EPOCH_UNITS) in which every value falls in 2000-2099, if one does."""
    numbers = values.cast(pl.Float64, strict=False).drop_nulls()
    if numbers.is_empty():
        return None
    low, high = numbers.min(), numbers.max()
    assert isinstance(low, float) and isinstance(high, float)
    for unit, scale in EPOCH_UNITS.items():
        if _EPOCH_SPAN[0] <= low / scale and high / scale < _EPOCH_SPAN[1]:
            return unit
    return None


def epoch_bounds(unit: str) -> tuple[int, int]:
    """The first epoch number of 2000 and of 2100, counted in `unit` (a key of EPOCH_UNITS)."""
    scale = EPOCH_UNITS[unit]
    return _EPOCH_SPAN[0] * scale, _EPOCH_SPAN[1] * scale


def refuse_mixed_units(files: ExportFiles, name: str) -> None:
    """Refuse epoch numbers whose whole range fits no one unit (the sample is the first rows).

    A column that changes unit part-way (two exports appended: seconds, then milliseconds)
    would otherwise put its later rows in 1970 or in the year 55000, where no metric counts
    them. Parquet files hold each row group's min and max, so the whole column is checked for
    free; a CSV's is not (its sample decides).
    """
    bounds = _parquet_bounds(files, name) if files.format is FileFormat.PARQUET else None
    if bounds is None or epoch_unit(pl.Series(bounds)) is not None:
        return
    low, high = bounds
    raise DataError(
        f"{files.label}: column '{name}' holds numbers from {low!r} to {high!r}: no one epoch"
        " unit (seconds to nanoseconds) puts them all between 2000 and 2100",
        hint=EPOCH_HINT,
    )


def _parquet_bounds(files: ExportFiles, name: str) -> tuple[int | float, int | float] | None:
    """The column's least and greatest value in every file's statistics (None: some lack them)."""
    import pyarrow as pa  # imported only for epoch columns in Parquet
    import pyarrow.parquet as pq

    lows, highs = [], []
    try:
        for path in files.paths:
            metadata = pq.ParquetFile(path).metadata
            leaves = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
            index = leaves.index(name)
            for group in range(metadata.num_row_groups):
                stats = metadata.row_group(group).column(index).statistics
                if stats is None or not stats.has_min_max:
                    return None
                lows.append(stats.min)
                highs.append(stats.max)
    except (OSError, ValueError, pa.ArrowException):  # the query's own read reports it
        return None
    return (min(lows), max(highs)) if lows else None
