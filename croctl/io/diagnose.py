"""Turn a failed scan into a located, one-line `DataError` (runs only after a failure)."""

from __future__ import annotations

import codecs
import csv
import gzip
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, NamedTuple, cast

import polars as pl

from croctl.errors import DataError
from croctl.io.epoch import EPOCH_HINT, epoch_bounds
from croctl.io.files import ExportFiles, FileFormat
from croctl.io.iso import close_up_zone
from croctl.io.scan import ColumnNeeds
from croctl.io.values import number_text

_TIMESTAMP_HINT = "use one form in the column: ISO 8601 (2026-10-01T12:00:00Z) or epoch numbers"
_EPOCH_UNIT_NAMES = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
}


# Polars errors that mean "the input is malformed"; any other is a bug in croctl's own query.
_INPUT_ERRORS = (
    pl.exceptions.ComputeError,
    pl.exceptions.InvalidOperationError,
    pl.exceptions.NoDataError,
    OSError,
)


class FailedExport(NamedTuple):
    """An export the failed query read: its files, the columns read, and what its scan saw."""

    files: ExportFiles
    needs: ColumnNeeds
    epoch_units: Mapping[str, str] = {}  # `ExportScan.epoch_units`: the query refuses others


def diagnose_failure(exports: list[FailedExport], exc: Exception) -> Exception:
    """Find which file and line broke the query and say so.

    Returns a located `DataError`; when no input problem is found, a `DataError` with Polars'
    first line for input-type failures, or `exc` itself (a bug: exit 70) otherwise.
    """
    for files, needs, units in exports:
        for path in files.paths:
            problem = _find_problem(path, files.format, needs, units)
            if problem is not None:
                return problem
    if not isinstance(exc, _INPUT_ERRORS):
        return exc
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DataError(
        f"cannot read the exports: {first}",
        hint="run `croctl validate` on the plan, or rerun with --debug",
    )


def _find_problem(
    path: Path, fmt: FileFormat, needs: ColumnNeeds, units: Mapping[str, str]
) -> DataError | None:
    if fmt is not FileFormat.PARQUET:
        problem = _csv_structure_problem(path, fmt)
        if problem is not None:
            return problem
    return _value_problem(path, fmt, needs, units)


def _open_binary(path: Path, fmt: FileFormat) -> IO[bytes]:
    if fmt is FileFormat.CSV_GZ:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _csv_structure_problem(path: Path, fmt: FileFormat) -> DataError | None:
    """Ragged rows, bad encoding and unterminated quotes, with the physical line number."""
    try:
        with _open_binary(path, fmt) as handle:
            reader = csv.reader(_strict_lines(handle))
            width = None
            for row in reader:
                if width is None:
                    width = len(row)
                elif row and len(row) != width:
                    return DataError(
                        f"{path}:{reader.line_num}: row has {len(row)} fields, header has {width}",
                        hint="fix or remove that row; quote fields that contain commas",
                    )
    except _LineDecodeError as exc:
        return DataError(f"{path}:{exc.line}: not valid UTF-8", hint="re-save the file as UTF-8")
    except csv.Error as exc:
        return DataError(
            f"{path}: malformed CSV ({exc})",
            hint="look for an unterminated quote near the end of the file",
        )
    except (OSError, EOFError) as exc:
        return DataError(f"{path}: cannot read ({exc})", hint="the file may be truncated")
    return None


class _LineDecodeError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _strict_lines(raw: IO[bytes]) -> Iterator[str]:
    """Yield decoded lines, turning a decode failure into the 1-based line where it happened."""
    line = 0
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    pending = ""
    for chunk in iter(lambda: raw.read(1 << 16), b""):
        try:
            pending += decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            good = chunk[: exc.start].decode("utf-8", errors="ignore")
            raise _LineDecodeError(line + (pending + good).count("\n") + 1) from exc
        *complete, pending = pending.split("\n")
        for text in complete:
            line += 1
            yield text + "\n"
    if pending:
        yield pending


def _value_problem(
    path: Path, fmt: FileFormat, needs: ColumnNeeds, units: Mapping[str, str]
) -> DataError | None:
    """The first value of a number or timestamp column that does not parse.

    An epoch number outside 2000-2099 in the unit of its column's first values (`units`, the
    scan's sample) counts as not parsed: the query refuses it too.
    """
    columns = sorted(needs.numbers | needs.timestamps)
    if not columns:
        return None
    try:
        if fmt is FileFormat.PARQUET:
            frame = pl.read_parquet(path, columns=columns, glob=False)
        else:
            frame = pl.read_csv(path, columns=columns, infer_schema=False, glob=False)
    except pl.exceptions.PolarsError:
        return None
    header_offset = 0 if fmt is FileFormat.PARQUET else 2
    for name in columns:
        column = frame.get_column(name)
        if _typed(column.dtype, name in needs.timestamps):
            continue
        values = column.cast(pl.String)
        parsed = _parse(values, name in needs.timestamps)
        unparsed = values.is_not_null() & parsed.is_null()
        unit = units.get(name) if parsed.dtype == pl.Float64 else None  # epoch numbers
        if unit is not None:
            outside = parsed.is_not_null() & ~parsed.is_between(*epoch_bounds(unit), closed="left")
            unparsed |= outside
        if unparsed.any():
            index = int(unparsed.arg_true()[0])
            line = f":{index + header_offset}" if header_offset else f" (row {index + 1})"
            where = f"{path}{line}"
            what, hint = _unparsed(
                name in needs.timestamps, unit if parsed[index] is not None else None
            )
            return DataError(f"{where}: column '{name}': {values[index]!r} {what}", hint=hint)
    return None


def _typed(dtype: pl.DataType, timestamp: bool) -> bool:
    """Is every value of a column stored as `dtype` one the query reads?

    A Parquet timestamp is one, and so is a stored number read as a number (an epoch number
    is checked against its unit's bounds). Parsing them as text would find nothing, at ~1 s
    per million rows.
    """
    if dtype.is_temporal():
        return True
    return not timestamp and (dtype.is_numeric() or dtype == pl.Boolean)


def _unparsed(timestamp: bool, epoch_unit: str | None) -> tuple[str, str]:
    """What a value that did not parse is not, and the hint."""
    if not timestamp:
        return "is not a number", "remove text from numeric columns"
    if epoch_unit is None:
        return "is not a timestamp", _TIMESTAMP_HINT
    unit = _EPOCH_UNIT_NAMES[epoch_unit]
    return f"is not in {unit} since 1970, the unit of the column's first values", EPOCH_HINT


def _parse(values: pl.Series, timestamp: bool) -> pl.Series:
    text = pl.col(values.name).str.strip_chars() if timestamp else number_text(pl.col(values.name))
    numbers = values.to_frame().select(text.cast(pl.Float64, strict=False)).to_series()
    first = numbers.filter(values.is_not_null()).head(1)
    if not timestamp or first.null_count() < first.len():
        return numbers  # a timestamp column whose first value is a number holds epoch numbers
    values = close_up_zone(values)
    utc = values.str.to_datetime(time_zone="UTC", strict=False, time_unit="us")
    naive = values.str.to_datetime(strict=False, time_unit="us")
    return utc.fill_null(naive.dt.replace_time_zone("UTC"))
