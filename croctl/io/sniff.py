"""Profile an export for `croctl init`: column kinds and the common values of text columns.

Reads a sample of rows (the head of the files), never the whole export, except one lazy
value count per low-cardinality text column so event names are complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from croctl.errors import DataError
from croctl.io.diagnose import FailedExport, diagnose_failure
from croctl.io.epoch import epoch_unit
from croctl.io.files import FileFormat, inspect_export
from croctl.io.iso import close_up_zone, zone_in_text
from croctl.io.scan import ColumnNeeds, scan_files

SAMPLE_ROWS = 20_000
MAX_DISTINCT = 40  # text or integer columns with at most this many values are categorical
# A number column is taken for epoch times only with a time-like name: ids can look like epochs.
_TIME_NAME = re.compile(r"(^|_)(ts|time|timestamp|at)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ExportProfile:
    """What `croctl init` needs to know about one export."""

    path: Path  # as given: a file or a glob
    format: FileFormat
    kinds: dict[str, str]  # column -> integer | number | text | timestamp | boolean
    values: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # categorical columns
    naive_timestamps: bool = False


def profile_export(path: Path) -> ExportProfile:
    """Column kinds from a sample, and value counts of categorical text columns.

    Raises:
        DataError: the file is missing, empty or unreadable.
    """
    files = inspect_export(path)
    scan = scan_files(files, infer_rows=SAMPLE_ROWS)
    try:
        sample = scan.head(SAMPLE_ROWS).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise diagnose_failure([FailedExport(files, ColumnNeeds())], exc) from exc
    kinds, naive = {}, False
    for name, dtype in sample.schema.items():
        kind = _kind(sample[name], dtype)
        naive |= kind == "timestamp" and _is_naive(sample[name])
        kinds[name] = kind
    categorical = [
        name
        for name, kind in kinds.items()
        if kind in ("text", "integer") and 0 < sample[name].n_unique() <= MAX_DISTINCT
    ]
    values = {}
    if categorical:
        counts = pl.collect_all(
            [
                scan.group_by(c).len().sort("len", descending=True).head(MAX_DISTINCT)
                for c in categorical
            ]
        )
        values = {
            c: [(str(v), int(n)) for v, n in frame.iter_rows() if v is not None]
            for c, frame in zip(categorical, counts, strict=True)
        }
    return ExportProfile(path, files.format, kinds, values, naive)


def _kind(column: pl.Series, dtype: pl.DataType) -> str:
    if dtype.is_numeric() and _TIME_NAME.search(column.name) and epoch_unit(column.head(200)):
        return "timestamp"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    if dtype == pl.Boolean:
        return "boolean"
    if isinstance(dtype, pl.Datetime | pl.Date):
        return "timestamp"
    if dtype == pl.String and _looks_like_time(column):
        return "timestamp"
    return "text"


def _looks_like_time(column: pl.Series) -> bool:
    values = column.drop_nulls().head(200)
    if values.is_empty() or not values.str.contains(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    parsed = close_up_zone(values).str.to_datetime(strict=False, time_zone="UTC")
    return parsed.null_count() == 0


def _is_naive(column: pl.Series) -> bool:
    if isinstance(column.dtype, pl.Datetime):
        return column.dtype.time_zone is None
    if column.dtype == pl.Date:
        return True
    if column.dtype.is_numeric():
        return False  # epoch numbers count from 1970-01-01 UTC
    return not zone_in_text(column.drop_nulls().head(200))


def profile_exports(paths: list[Path]) -> list[ExportProfile]:
    """Profiles of several exports, in the order given.

    Raises:
        DataError: see `profile_export`.
    """
    if not paths:
        raise DataError("init: no export files given", hint="croctl init exposures.csv events.csv")
    return [profile_export(p) for p in paths]
