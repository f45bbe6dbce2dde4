"""Lazy scans of export files, projected and typed to what the plan needs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial

import polars as pl

from croctl.errors import DataError
from croctl.io.epoch import EPOCH_UNITS, epoch_bounds, epoch_unit, refuse_mixed_units
from croctl.io.files import ExportFiles, FileFormat, head_sample, partition_values
from croctl.io.globs import CASTS
from croctl.io.iso import (
    close_up_zone,
    day_month_problem,
    day_month_text,
    highest_day_month,
    iso_reads,
    iso_values,
    local_to_utc,
    spaced_zone,
    zone_in_text,
)
from croctl.io.values import WHOLE_FRACTION, integral_text, number_text

_SAMPLE_ROWS = 200
_FILE = "__file"  # a CSV row's file path, for its partition values
INFER_ROWS = 10_000
# ISO 8601 layouts tried on a text timestamp's sample, ~10× faster than per-value inference
# (`%.f`: any or no fraction; `%#z`: Z, +hh:mm or +hhmm).
_LAYOUTS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")
# Epoch numbers are read in the unit that puts them in 2000-2100 (units 1000× apart: one fits)
_EPOCH_TEXT = re.compile(r"^-?\d+(\.\d+)?$")
_TIMESTAMP_FORMS = "export timestamps as ISO 8601 text, epoch numbers or a datetime type"


@dataclass(slots=True)
class ColumnNeeds:
    """Columns a plan reads from one export, by the type croctl gives them."""

    keys: set[str] = field(default_factory=set)  # ids and labels, read as text
    units: set[str] = field(default_factory=set)  # the unit id among `keys`
    numbers: set[str] = field(default_factory=set)  # values and covariates, Float64
    timestamps: set[str] = field(default_factory=set)  # compared in UTC
    inferred: set[str] = field(default_factory=set)  # filter columns, dtype as stored

    def all(self) -> list[str]:
        """Every needed column, sorted (the scan's projection)."""
        return sorted(self.keys | self.numbers | self.timestamps | self.inferred)


@dataclass(frozen=True, slots=True)
class TimestampKind:
    """How a timestamp column stores its times."""

    aware: bool  # absolute: an offset in the text, a tz-aware type, or epoch numbers
    layout: str | None = None  # the text layout read off a sample (None: not text, or per value)
    epoch: str | None = None  # a key of EPOCH_UNITS: numbers since 1970-01-01 UTC
    fraction: bool = False  # epoch numbers with a fraction (read as Float64, not Int64)
    spaced_zone: bool = False  # text with a space before its zone (SPACED_ZONES closes it up)
    iso: bool = False  # text in a layout that Arrow's ISO 8601 parser reads too (`iso_values`)
    nanos: bool = False  # a timestamp type in nanoseconds (pandas' default): truncated to µs


@dataclass(frozen=True, slots=True)
class ExportScan:
    """A lazy scan projected to the needed columns, with timestamp parsing kept apart.

    `raw` has keys and numbers typed and timestamp columns as stored; `times` converts each of
    them to UTC. Keeping them apart lets a filter run before the (strict) parse, which Polars
    would otherwise not push below it: a CSV's timestamps are then parsed only on kept rows.

    Text timestamps are parsed with the format their sample showed; `inferred` parses them value
    by value instead, for an export whose later rows use another layout (`by_inference`).
    `kinds` records how each timestamp column is stored (the SQL engines convert it the same way).
    """

    raw: pl.LazyFrame
    times: tuple[pl.Expr, ...]
    inferred: tuple[pl.Expr, ...] | None = None  # None: no format was taken from a sample
    kinds: dict[str, TimestampKind] = field(default_factory=dict)
    typed_from: int | None = INFER_ROWS  # a CSV's first rows its filter columns are typed by
    stored: dict[str, pl.DataType] = field(default_factory=dict)  # needed columns as read
    typing: tuple[pl.Expr, ...] = ()  # `raw`'s columns from the `stored` ones (a CSV re-read)

    @property
    def frame(self) -> pl.LazyFrame:
        """Every row, timestamps in UTC."""
        return self.raw.with_columns(self.times) if self.times else self.raw

    def filtered(self, predicate: pl.Expr) -> pl.LazyFrame:
        """Rows matching `predicate`, with timestamps parsed after the filter when it allows."""
        rows, times = self.before(predicate)
        return rows.filter(predicate).with_columns(times)

    def before(self, predicate: pl.Expr) -> tuple[pl.LazyFrame, tuple[pl.Expr, ...]]:
        """The rows `predicate` can run on, and the parsing left for the rows it keeps."""
        parsed = {t.meta.output_name() for t in self.times}
        if parsed & set(predicate.meta.root_names()):
            return self.frame, ()
        return self.raw, self.times

    @property
    def epoch_units(self) -> dict[str, str]:
        """Each epoch timestamp column's unit (a key of EPOCH_UNITS), as its sample showed."""
        return {name: kind.epoch for name, kind in self.kinds.items() if kind.epoch is not None}

    def by_inference(self) -> ExportScan:
        """The same scan with every text timestamp parsed value by value (any ISO layout)."""
        return replace(self, times=self.inferred or self.times, inferred=None)


def scan_export(
    files: ExportFiles,
    needs: ColumnNeeds,
    timezone: str | None,
    typed_from: int | None = INFER_ROWS,
) -> ExportScan:
    """Lazily scan `files`, projected to `needs`, keys as text, numbers as Float64, times in UTC.

    A CSV's other columns (read by filters) are typed by their first `typed_from` rows. None:
    by every row (a read of the whole file), and numbers read as text, spaces around them
    stripped, for a read that failed.

    Raises:
        DataError: a timestamp column is naive with no plan timezone, or not a timestamp at all.
    """
    raw = _scan_raw(files, needs, typed_from)
    schema = raw.collect_schema()
    exprs, times, inferred, kinds = [], [], [], {}
    sampled = False  # some text column is parsed in a layout read off its sample
    for name in needs.all():
        column = pl.col(name)
        if name in needs.timestamps:
            kind = kinds[name] = _timestamp_kind(files, raw, name, schema[name])
            sampled |= kind.layout is not None
            times.append(_utc(files, name, schema[name], kind, timezone).alias(name))
            per_value = replace(kind, layout=None, iso=False)
            inferred.append(_utc(files, name, schema[name], per_value, timezone).alias(name))
        elif name in needs.numbers:
            if schema[name] == pl.String:
                column = number_text(column)
            column = column.cast(pl.Float64, strict=True)
        elif name in needs.units and schema[name].is_float():
            column = integral_text(column)
        elif name in needs.units and name in files.whole_floats:  # `123.0` in a CSV
            column = column.str.replace(WHOLE_FRACTION, "")
        elif name in needs.keys and schema[name] == pl.Binary:  # raw bytes (a Parquet UUID)
            column = column.bin.encode("hex")  # as text, the way `uuid.hex` writes them
        elif name in needs.keys and schema[name] != pl.String and not schema[name].is_integer():
            column = column.cast(pl.String)
        exprs.append(column.alias(name))
    inferences = tuple(inferred) if sampled else None
    typing = tuple(exprs)
    scan = ExportScan(raw.select(typing), tuple(times), inferences, kinds, typed_from)
    return replace(scan, stored=dict(schema), typing=typing)


def _scan_raw(files: ExportFiles, needs: ColumnNeeds, typed_from: int | None) -> pl.LazyFrame:
    overrides: dict[str, pl.DataType] = {}
    for name in needs.keys | needs.timestamps:
        overrides[name] = pl.String()
    for name in needs.numbers:  # Polars' reader refuses ` 12.5`: read from text once it failed
        overrides[name] = pl.Float64() if typed_from is not None else pl.String()
    return scan_files(files, overrides, typed_from).select(needs.all())


def scan_files(
    files: ExportFiles,
    csv_types: Mapping[str, pl.DataType] | None = None,
    infer_rows: int | None = INFER_ROWS,
) -> pl.LazyFrame:
    """Every column of the files, with each partition directory's key as a text column.

    `csv_types` and `infer_rows` type a CSV's columns (Parquet files carry their types).
    """
    paths = [str(p) for p in files.paths]
    if files.format is FileFormat.PARQUET:
        # Polars reads the directories itself, and skips files a filter on them rules out.
        hive = dict.fromkeys(files.partitions, pl.String()) if files.partitions else None
        return pl.scan_parquet(
            paths,
            glob=False,
            hive_partitioning=bool(hive),
            hive_schema=hive,
            # each file's columns cast to the glob's common types
            schema=dict(files.types) if files.typed_apart else None,
            cast_options=CASTS if files.typed_apart else None,
        )
    overrides = {k: v for k, v in (csv_types or {}).items() if k not in files.partitions}
    read_csv = partial(
        pl.scan_csv,
        glob=False,  # the paths are files already (`resolve_files`): `[` is no pattern here
        schema_overrides=overrides,
        infer_schema_length=infer_rows,
        raise_if_empty=True,
        include_file_paths=_FILE if files.partitions else None,
    )
    if files.reordered:  # one scan per file, its columns in the first file's order
        order = [c for c in files.columns if c not in files.partitions]
        if files.partitions:
            order.append(_FILE)
        files_read = [read_csv(path).select(order) for path in paths]
        scan = pl.concat(files_read, how="vertical_relaxed")
    else:
        scan = read_csv(paths)
    if not files.partitions:
        return scan
    return scan.with_columns(_csv_partitions(files)).drop(_FILE)


def _csv_partitions(files: ExportFiles) -> list[pl.Expr]:
    """Each partition key's value, looked up by the row's file (Polars' CSV reader has no Hive)."""
    paths = [str(p) for p in files.paths]  # as `include_file_paths` gives them
    values = [partition_values(path) for path in files.paths]
    return [
        pl.col(_FILE)
        .replace_strict(paths, [v[key] for v in values], return_dtype=pl.String)
        .alias(key)
        for key in files.partitions
    ]


def _utc(
    files: ExportFiles, name: str, dtype: pl.DataType, kind: TimestampKind, timezone: str | None
) -> pl.Expr:
    """The column in UTC; text is parsed with the kind's layout, or value by value without one."""
    column = pl.col(name)
    if kind.epoch is not None:
        return _from_epoch(column, kind)
    if dtype != pl.String:
        if kind.aware:  # in µs, as naive and text times: a window's end has no nanoseconds
            return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        return _localize(column.cast(pl.Datetime("us")), files, name, timezone)
    if kind.spaced_zone:
        column = close_up_zone(column)
    zone = "UTC" if kind.aware else None
    if kind.iso:
        parsed = column.map_batches(
            partial(iso_values, aware=kind.aware),
            return_dtype=pl.Datetime("us", zone),
            is_elementwise=True,
        )
    else:  # cache=False: the cache pays for columns of few distinct values, not event times
        parsed = column.str.to_datetime(
            kind.layout, time_zone=zone, time_unit="us", strict=True, cache=False
        )
    return parsed if kind.aware else _localize(parsed, files, name, timezone)


def _from_epoch(column: pl.Expr, kind: TimestampKind) -> pl.Expr:
    """Epoch numbers (or their text) as UTC times, to the microsecond (nanoseconds truncated).

    A value outside 2000-2099 in the sample's unit fails the query (and `diagnose_failure`
    locates it): it is in another unit, and would otherwise land in 1970 or past 2100, where no
    metric counts it. Polars has no assertion, so the guard is a strict cast to unsigned of a -1
    put in that value's place; it runs on the rows the query keeps, after the metric filters.
    """
    assert kind.epoch is not None
    scale = EPOCH_UNITS[kind.epoch]
    number = column.cast(pl.Float64 if kind.fraction else pl.Int64, strict=True)
    if kind.fraction:
        micros = (number * (10**6 / scale)).round(0).cast(pl.Int64)
    elif scale > 10**6:
        micros = number // (scale // 10**6)
    else:
        micros = number * (10**6 // scale)
    low, high = epoch_bounds(kind.epoch)  # compared before scaling, which can wrap around
    in_span = number.is_between(low, high, closed="left") | number.is_null()
    guarded = pl.when(in_span).then(micros).otherwise(-1).cast(pl.UInt64, strict=True)
    return guarded.cast(pl.Int64).cast(pl.Datetime("us", "UTC"))


def _timestamp_kind(
    files: ExportFiles, raw: pl.LazyFrame, name: str, dtype: pl.DataType
) -> TimestampKind:
    """How a timestamp column stores its times, from its type and a sample of its values.

    A tz-aware type is absolute; so is text when any sampled value has an offset, or a zone
    after a space (`close_up_zone` makes that ISO 8601 first): the column is then meant as
    absolute time, and a naive value among them fails to parse and is reported with its line.
    The layout is the first of `_LAYOUTS` that reads every sampled value as per-value inference
    does (None: not text, or no layout fits). Numbers, or text that starts with a number, are
    epoch times in the unit their sample fits (`epoch_unit`).

    Raises:
        DataError: the column is not a timestamp, or its sample cannot be read.
    """
    if isinstance(dtype, pl.Date):
        return TimestampKind(False)
    if isinstance(dtype, pl.Datetime):
        return TimestampKind(dtype.time_zone is not None, nanos=dtype.time_unit == "ns")
    if dtype.is_numeric():
        kind = _epoch_kind(files, name, _sample(files, raw, name), dtype.is_float())
        refuse_mixed_units(files, name)
        return kind
    if dtype != pl.String:
        raise DataError(
            f"{files.label}: column '{name}' holds {dtype}, not timestamps",
            hint=_TIMESTAMP_FORMS,
        )
    sample = _sample(files, raw, name)
    if not sample.len():  # every row's is empty: no row would ever count
        raise DataError(
            f"{files.label}: column '{name}' has no timestamps (it is empty in every row)",
            hint="name the column that holds the times; a source without times (CRM) has none",
        )
    if _EPOCH_TEXT.match(sample[0]):  # later text fails the cast
        return _epoch_kind(files, name, sample, sample.str.contains(".", literal=True).any())
    if day_month_text(sample):
        _refuse_unclear_dates(files, raw, name)
    spaced = spaced_zone(sample)
    if spaced:
        sample = close_up_zone(sample)
    aware = zone_in_text(sample)
    zone = "UTC" if aware else None
    try:
        inferred = sample.str.to_datetime(time_unit="us", time_zone=zone, strict=False)
    except pl.exceptions.ComputeError:  # no value reads as a timestamp: the parse reports it
        return TimestampKind(aware, spaced_zone=spaced)
    for layout in (f"{layout}%#z" if aware else layout for layout in _LAYOUTS):
        parsed = sample.str.to_datetime(layout, time_unit="us", time_zone=zone, strict=False)
        if parsed.null_count() == 0 and parsed.equals(inferred):
            return TimestampKind(aware, layout, spaced_zone=spaced, iso=iso_reads(sample, parsed))
    return TimestampKind(aware, spaced_zone=spaced)


def _epoch_kind(files: ExportFiles, name: str, sample: pl.Series, fraction: bool) -> TimestampKind:
    unit = epoch_unit(sample)
    if unit is None:
        first = sample[0] if sample.len() else None
        raise DataError(
            f"{files.label}: column '{name}' holds numbers ({first!r}, ...) that are not epoch"
            " seconds, milliseconds, microseconds or nanoseconds between 2000 and 2100",
            hint=_TIMESTAMP_FORMS,
        )
    return TimestampKind(True, epoch=unit, fraction=fraction)


def first_values(files: ExportFiles, raw: pl.LazyFrame, name: str) -> pl.Series:
    """A column's first 200 non-null values: off a CSV's head when it holds them, else scanned.

    The scan's first 200 rows serve when none is null: a `head` right after the scan reads only
    them (~2 ms), one after `drop_nulls` row groups of several files (~0.1-0.2 s at 10 M users).

    Raises:
        polars.exceptions.PolarsError: the scan cannot read them.
    """
    if raw.collect_schema()[name] == pl.String:
        head = head_sample(files, name, _SAMPLE_ROWS)
        if head is not None:
            return head
    first = raw.select(pl.col(name)).head(_SAMPLE_ROWS).collect().to_series()
    if first.has_nulls():
        first = raw.select(pl.col(name)).drop_nulls().head(_SAMPLE_ROWS).collect().to_series()
    return first


def _sample(files: ExportFiles, raw: pl.LazyFrame, name: str) -> pl.Series:
    """`first_values`, a failure located in the export (`diagnose_failure`)."""
    try:
        return first_values(files, raw, name)
    except pl.exceptions.PolarsError as exc:
        raise _located(files, name, exc) from exc


def _refuse_unclear_dates(files: ExportFiles, raw: pl.LazyFrame, name: str) -> None:
    """Refuse dates such as 02/10/2026 unless the whole column shows the day comes first.

    A pass over the column: its first rows are often all of a month's first days.
    """
    try:
        fields = raw.select(highest_day_month(pl.col(name))).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _located(files, name, exc) from exc
    problem = day_month_problem(*fields.row(0))
    if problem is not None:
        raise DataError(
            f"{files.label}: column '{name}': {problem}",
            hint="export ISO 8601 (2026-10-02T12:00:00Z) or epoch numbers",
        )


def _located(files: ExportFiles, name: str, exc: pl.exceptions.PolarsError) -> Exception:
    from croctl.io.diagnose import FailedExport, diagnose_failure  # it imports this module

    return diagnose_failure([FailedExport(files, ColumnNeeds(timestamps={name}))], exc)


def _localize(column: pl.Expr, files: ExportFiles, name: str, timezone: str | None) -> pl.Expr:
    if timezone is None:
        raise DataError(
            f"{files.label}: column '{name}' has timestamps without a time zone",
            hint="set `timezone:` in the plan (e.g. timezone: UTC) or export with an offset",
        )
    return local_to_utc(column, timezone)
