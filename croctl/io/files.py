"""Find export files and sniff their headers before any scan (cheap, head-only reads)."""

from __future__ import annotations

import csv
import glob
import gzip
import re
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, cast
from urllib.parse import unquote

import polars as pl

from croctl.errors import DataError
from croctl.io.globs import common_types

_HEAD_BYTES = 64 * 1024
_SAMPLE_BYTES = 1 << 20  # the head of a CSV that `head_sample` reads
_PARTITION = re.compile(r"^[^=]+=.*$")  # a Hive partition directory: key=value
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


class FileFormat(StrEnum):
    """Formats croctl reads, chosen by suffix."""

    CSV = "csv"
    CSV_GZ = "csv.gz"
    PARQUET = "parquet"


@dataclass(frozen=True, slots=True)
class ExportFiles:
    """The files behind one plan path, with their shared format and header."""

    label: str
    paths: tuple[Path, ...]
    format: FileFormat
    columns: tuple[str, ...]  # the files' own columns, then `partitions`
    partitions: tuple[str, ...] = ()  # keys of `key=value` directories, not in the files
    # Parquet: each column's type as stored (a glob's common one, `globs.common_types`); CSV: none
    types: Mapping[str, pl.DataType] = field(default_factory=dict)
    typed_apart: bool = False  # a glob's files store some column differently: cast to `types`
    reordered: bool = False  # CSV files whose columns come in different orders
    whole_floats: frozenset[str] = frozenset()  # CSV columns whose first values read `123.0`
    texts: Mapping[str, str] = field(default_factory=dict)  # CSV columns of no number: 1st value


def partition_values(path: Path) -> dict[str, str | None]:
    """A file's Hive-style `key=value` directories, outermost first.

    Every such directory of the path counts, and values are decoded, as Polars, DuckDB and Spark
    do: `%XX` escapes, and Hive's placeholder for null.
    """
    pairs = [part.split("=", 1) for part in path.parent.parts if _PARTITION.match(part)]
    return {key: None if value == _HIVE_NULL else unquote(value) for key, value in pairs}


def partition_base(path: Path) -> Path:
    """The directory holding a file's outermost `key=value` directory (Spark's `basePath`)."""
    for parent in reversed(path.parents):
        if _PARTITION.match(parent.name):
            return parent.parent
    return path.parent


def file_format(path: Path) -> FileFormat:
    """Format from the suffix.

    Raises:
        DataError: the suffix is not .csv, .csv.gz or .parquet.
    """
    name = path.name.lower()
    for fmt, suffix in (
        (FileFormat.CSV_GZ, ".csv.gz"),
        (FileFormat.CSV, ".csv"),
        (FileFormat.PARQUET, ".parquet"),
        (FileFormat.PARQUET, ".pq"),
    ):
        if name.endswith(suffix):
            return fmt
    raise DataError(f"{path}: unsupported file type", hint="use .csv, .csv.gz or .parquet")


def resolve_files(path: Path) -> tuple[Path, ...]:
    """Expand a path or glob to regular files, sorted.

    Raises:
        DataError: nothing matches, or a match is a directory, FIFO or device.
    """
    base, pattern = _literal_prefix(path)
    if pattern is not None:
        found = glob.glob(pattern, root_dir=base, recursive=True)
        matches = tuple(sorted((base / p for p in found), key=str))
        if not matches:
            raise DataError(f"{path}: glob matches no file", hint="check the pattern and folder")
    else:
        matches = (path,)
    for match in matches:
        _require_regular_file(match)
    return matches


def _literal_prefix(path: Path) -> tuple[Path, str | None]:
    """The leading part of `path` that exists as written, and the glob after it (None: none).

    A folder named `exports [2026-10]` is a folder, not a character class: a part with glob
    characters is a pattern only where no such file or folder exists.
    """
    if not glob.has_magic(str(path)) or path.exists():
        return path, None
    base = Path(path.parts[0])
    for i, part in enumerate(path.parts[1:], start=1):
        if glob.has_magic(part) and not (base / part).exists():
            return base, str(Path(*path.parts[i:]))
        base = base / part
    return path, None


def _require_regular_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(
            f"{path}: file not found",
            hint="check the path in the plan; paths are relative to the plan file",
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: is a directory", hint="name a file, or a glob like dir/*.parquet")
    if not stat.S_ISREG(mode):
        raise DataError(
            f"{path}: not a regular file (FIFO, socket or device)",
            hint="export the data to a file first",
        )


def inspect_export(path: Path) -> ExportFiles:
    """Resolve `path` and read the header of every file it names, refusing broken files early.

    A file of a glob without rows (a day without events) is left out; one alone is an error.

    Raises:
        DataError: missing, empty, header-only, mis-delimited, mis-encoded or corrupt files, or
            files of one glob whose columns differ (or whose types have no common one).
    """
    paths = resolve_files(path)
    formats = {file_format(p) for p in paths}
    if len(formats) > 1:
        raise DataError(f"{path}: matches files of different formats", hint="use one format")
    fmt = formats.pop()
    read = [_parquet_header(p) if fmt is FileFormat.PARQUET else _csv_header(p, fmt) for p in paths]
    having = [(p, header) for p, header in zip(paths, read, strict=True) if header.empty is None]
    if not having:  # every file is empty: the first one's error
        assert read[0].empty is not None
        raise read[0].empty
    paths = tuple(p for p, _ in having)
    headers = [header.columns for _, header in having]
    for other, header in zip(paths[1:], headers[1:], strict=True):
        if set(header) != set(headers[0]):
            raise DataError(
                f"{other}: columns differ from {paths[0].name}",
                hint="every file of a glob needs the same columns",
            )
    keys = _shared_partition_keys(paths)
    partitions = tuple(key for key in keys if key not in headers[0])
    columns = (*headers[0], *partitions)
    if fmt is not FileFormat.PARQUET:
        reordered = any(list(h) != list(headers[0]) for h in headers[1:])
        first = having[0][1]
        return ExportFiles(
            str(path),
            paths,
            fmt,
            columns,
            partitions,
            reordered=reordered,
            whole_floats=first.whole_floats,
            texts=first.texts,
        )
    stored = [cast(dict[str, pl.DataType], h) for h in headers]
    common = common_types(paths, stored)
    return ExportFiles(
        str(path), paths, fmt, columns, partitions, common or stored[0], common is not None
    )


class _Header(NamedTuple):
    columns: dict[str, pl.DataType | None]  # name -> type as stored (None: a CSV's, untyped)
    empty: DataError | None  # the error the file would be alone: it has no rows
    whole_floats: frozenset[str] = frozenset()  # a CSV's columns whose first values read `12.0`
    texts: Mapping[str, str] = MappingProxyType({})  # `ExportFiles.texts`


def _shared_partition_keys(paths: tuple[Path, ...]) -> tuple[str, ...]:
    """The keys of the files' `partition_values`: the same in every file, under one base."""
    keys, base = tuple(partition_values(paths[0])), partition_base(paths[0])
    for other in paths[1:]:
        other_keys = tuple(partition_values(other))
        if other_keys != keys or (keys and partition_base(other) != base):
            raise DataError(
                f"{other}: partition directories {_shown(other_keys)} differ from"
                f" {_shown(keys)} in {paths[0]}",
                hint="every file of a glob needs the same key=value directories, at one depth",
            )
    return keys


def _shown(keys: tuple[str, ...]) -> str:
    return "/".join(f"{key}=..." for key in keys) if keys else "(none)"


def _parquet_header(path: Path) -> _Header:
    try:  # the footer only: Polars answers both from the file's metadata
        with path.open("rb") as handle:  # a handle: given a path, Polars reads `[` as a glob
            schema = pl.read_parquet_schema(handle)
        rows = pl.scan_parquet(path, glob=False).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"{path}: not a readable Parquet file ({_first_line(exc)})",
            hint="the file may be truncated; export it again",
        ) from exc
    _refuse_duplicates(path, list(schema))
    empty = DataError(f"{path}: has no rows", hint="export the data again") if not rows else None
    return _Header(dict(schema), empty)


def stored_row_bytes(files: ExportFiles, name: str) -> float | None:
    """Bytes a row of a Parquet column takes decoded but uncompressed, in the first row group.

    A column kept in a dictionary takes a few; text stored plainly, its length and 4. None: not
    Parquet, no row group, or a footer pyarrow cannot read (the scan's own read reports it).
    """
    import pyarrow as pa  # its footer reader gives each column's sizes; Polars' does not
    import pyarrow.parquet as pq

    if files.format is not FileFormat.PARQUET:
        return None
    try:
        metadata = pq.read_metadata(files.paths[0])
    except (OSError, ValueError, pa.ArrowException):
        return None
    if not metadata.num_row_groups:
        return None
    group = metadata.row_group(0)
    columns = (group.column(i) for i in range(group.num_columns))
    size = sum(c.total_uncompressed_size for c in columns if c.path_in_schema == name)
    return size / group.num_rows if group.num_rows else None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def read_head(path: Path, fmt: FileFormat, size: int = _HEAD_BYTES) -> bytes:
    """The first `size` bytes (64 KiB) of a CSV file, decompressed when gzipped."""
    try:
        if fmt is FileFormat.CSV_GZ:
            with gzip.open(path, "rb") as handle:
                return handle.read(size)
        with path.open("rb") as handle:
            return handle.read(size)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({_first_line(exc)})") from exc


def head_sample(files: ExportFiles, name: str, rows: int) -> pl.Series | None:
    """A CSV text column's first `rows` non-null values, read off the head of its first file.

    Polars' CSV reader parses a whole chunk of a file to give its first rows: 200 rows of a
    430 MB file took ~80 ms and ~130 MiB (each sample a readout took cost its page faults too);
    parsing the first MiB takes ~10 ms. None when the MiB holds fewer values than a sample (the
    caller reads the export itself then), or cannot be read so.
    """
    if files.format not in (FileFormat.CSV, FileFormat.CSV_GZ) or files.partitions:
        return None
    try:
        head = read_head(files.paths[0], files.format, _SAMPLE_BYTES)
        cut = len(head) == _SAMPLE_BYTES
        if cut:  # whole lines (no character cut in two); the last may end inside quotes
            head = head[: head.rfind(b"\n") + 1]
        frame = pl.read_csv(head, columns=[name], infer_schema=False)
    except (DataError, pl.exceptions.PolarsError):
        return None
    if cut:
        frame = frame.head(-1)
    values = frame.get_column(name).drop_nulls().head(rows)
    return values if values.len() == rows else None


def _csv_header(path: Path, fmt: FileFormat) -> _Header:
    head = read_head(path, fmt)
    text = _decode_head(path, head)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{path}: file is empty", hint="export the data again")
    header = next(csv.reader([lines[0]]))
    if len(header) == 1:
        _refuse_other_delimiter(path, lines[0])
    _refuse_duplicates(path, header)
    _refuse_odd_names(path, header)
    empty = None
    if not any(line.strip() for line in lines[1:]):
        empty = DataError(f"{path}: has a header but no rows", hint="export the data again")
    rows = [row for row in csv.reader(lines[1 : _FIRST_ROWS + 1]) if len(row) == len(header)]
    return _Header(dict.fromkeys(header), empty, _whole_floats(header, rows), _texts(header, rows))


_FIRST_ROWS = 50  # first lines of a CSV looked at for floats written whole, or text
_WHOLE_FLOAT = re.compile(r"-?\d+\.0+")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|(?i:true|false|nan|[-+]?inf(inity)?)")


def _texts(header: list[str], rows: list[list[str]]) -> dict[str, str]:
    """Columns with values in `rows`, none a number, and their first (`first_text`)."""
    firsts = {name: first_text(row[k] for row in rows) for k, name in enumerate(header)}
    return {name: text for name, text in firsts.items() if text is not None}


def first_text(values: Iterable[str]) -> str | None:
    """The first non-empty value when none reads as a number (`values.number_text`), else None."""
    texts = [text for value in values if (text := value.strip())]
    return texts[0] if texts and not any(_NUMBER.fullmatch(text) for text in texts) else None


def _whole_floats(header: list[str], rows: list[list[str]]) -> frozenset[str]:
    """Columns whose values in `rows` are all whole numbers written as floats (`123.0`).

    pandas writes an integer column with a missing value so: such ids are read without the
    `.0`, to join another export's integers (`io.values.integral_text` does it for Parquet).
    """
    return frozenset(
        name
        for k, name in enumerate(header)
        if any(row[k] for row in rows)
        and all(_WHOLE_FLOAT.fullmatch(row[k]) for row in rows if row[k])
    )


def _decode_head(path: Path, head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: file is UTF-16", hint="re-save it as UTF-8")
    try:
        return head.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte character cut by the 64 KiB head
            return head[: exc.start].decode("utf-8")
        line = head[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{head[exc.start]:02x})",
            hint="re-save the file as UTF-8",
        ) from exc


def _refuse_other_delimiter(path: Path, header: str) -> None:
    counts = Counter(ch for ch in header if ch in ";\t|")
    if counts:
        delimiter = counts.most_common(1)[0][0]
        shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
        raise DataError(
            f"{path}:1: header is {shown}-separated, croctl reads comma-separated CSV",
            hint="re-export with ',' as the delimiter",
        )


def _refuse_odd_names(path: Path, header: list[str]) -> None:
    """Refuse header names the CSV readers do not read as written."""
    for name in header:
        if name != name.strip():  # `a, b`: the readers keep the space, and the values' spaces
            raise DataError(
                f"{path}:1: column name {name!r} has spaces around it (a ', '-separated file?)",
                hint="export the file without spaces after the commas",
            )
        if '"' in name:  # Polars' reader keeps the header's doubled quote: `ev""name`
            raise DataError(
                f"{path}:1: column name {name!r} holds a double quote, which the reader "
                "does not read back",
                hint="rename the column",
            )


def _refuse_duplicates(path: Path, columns: list[str]) -> None:
    duplicated = sorted(name for name, n in Counter(columns).items() if n > 1)
    if duplicated:
        raise DataError(
            f"{path}:1: duplicate column name(s): {', '.join(duplicated)}",
            hint="rename the columns so each name is unique",
        )
