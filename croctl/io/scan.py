"""Lazy scans of export files, projected and typed to what the plan needs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from croctl.errors import DataError
from croctl.io.files import ExportFiles, FileFormat

_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_SAMPLE_ROWS = 200
INFER_ROWS = 10_000
# ISO 8601 layouts tried on a text timestamp column's sample (`%.f`: any or no fraction; `%#z`:
# Z, +hh:mm or +hhmm). Parsing with a fixed format is ~10× faster than Polars' per-value inference.
_LAYOUTS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f")


@dataclass(slots=True)
class ColumnNeeds:
    """Columns a plan reads from one export, by the type croctl gives them."""

    keys: set[str] = field(default_factory=set)  # ids and labels, read as text
    numbers: set[str] = field(default_factory=set)  # values and covariates, Float64
    timestamps: set[str] = field(default_factory=set)  # compared in UTC
    inferred: set[str] = field(default_factory=set)  # filter columns, dtype as stored

    def all(self) -> list[str]:
        """Every needed column, sorted (the scan's projection)."""
        return sorted(self.keys | self.numbers | self.timestamps | self.inferred)


@dataclass(frozen=True, slots=True)
class ExportScan:
    """A lazy scan projected to the needed columns, with timestamp parsing kept apart.

    `raw` has keys and numbers typed and timestamp columns as stored; `times` converts each of
    them to UTC. Keeping them apart lets a filter run before the (strict) parse, which Polars
    would otherwise not push below it: a CSV's timestamps are then parsed only on kept rows.

    Text timestamps are parsed with the format their sample showed; `inferred` parses them value
    by value instead, for an export whose later rows use another layout (`by_inference`).
    """

    raw: pl.LazyFrame
    times: tuple[pl.Expr, ...]
    inferred: tuple[pl.Expr, ...] | None = None  # None: no format was taken from a sample

    @property
    def frame(self) -> pl.LazyFrame:
        """Every row, timestamps in UTC."""
        return self.raw.with_columns(self.times) if self.times else self.raw

    def filtered(self, predicate: pl.Expr) -> pl.LazyFrame:
        """Rows matching `predicate`, with timestamps parsed after the filter when it allows."""
        parsed = {t.meta.output_name() for t in self.times}
        if parsed & set(predicate.meta.root_names()):
            return self.frame.filter(predicate)
        return self.raw.filter(predicate).with_columns(self.times)

    def by_inference(self) -> ExportScan:
        """The same scan with every text timestamp parsed value by value (any ISO layout)."""
        return ExportScan(self.raw, self.inferred or self.times)


def scan_export(files: ExportFiles, needs: ColumnNeeds, timezone: str | None) -> ExportScan:
    """Lazily scan `files`, projected to `needs`, keys as text, numbers as Float64, times in UTC.

    Raises:
        DataError: a timestamp column is naive with no plan timezone, or not a timestamp at all.
    """
    raw = _scan_raw(files, needs)
    schema = raw.collect_schema()
    exprs, times, inferred = [], [], []
    sampled = False  # some text column is parsed in a layout read off its sample
    for name in needs.all():
        column = pl.col(name)
        if name in needs.timestamps:
            aware, layout = _timestamp_kind(files, raw, name, schema[name])
            sampled |= layout is not None
            times.append(_utc(files, name, schema[name], aware, timezone, layout).alias(name))
            inferred.append(_utc(files, name, schema[name], aware, timezone, None).alias(name))
        elif name in needs.numbers:
            column = column.cast(pl.Float64, strict=True)
        elif name in needs.keys and schema[name] != pl.String and not schema[name].is_integer():
            column = column.cast(pl.String)
        exprs.append(column.alias(name))
    return ExportScan(raw.select(exprs), tuple(times), tuple(inferred) if sampled else None)


def _scan_raw(files: ExportFiles, needs: ColumnNeeds) -> pl.LazyFrame:
    paths = [str(p) for p in files.paths]
    if files.format is FileFormat.PARQUET:
        return pl.scan_parquet(paths).select(needs.all())
    overrides: dict[str, pl.DataType] = {}
    for name in needs.keys | needs.timestamps:
        overrides[name] = pl.String()
    for name in needs.numbers:
        overrides[name] = pl.Float64()
    return pl.scan_csv(
        paths, schema_overrides=overrides, infer_schema_length=INFER_ROWS, raise_if_empty=True
    ).select(needs.all())


def _utc(
    files: ExportFiles,
    name: str,
    dtype: pl.DataType,
    aware: bool,
    timezone: str | None,
    layout: str | None,
) -> pl.Expr:
    """The column in UTC; text is parsed with `layout`, or value by value when it is None."""
    column = pl.col(name)
    if dtype != pl.String:
        if aware:
            return column.dt.convert_time_zone("UTC")
        return _localize(column.cast(pl.Datetime("us")), files, name, timezone)
    # cache=False: the cache pays for columns of few distinct values, not for event times
    if aware:
        return column.str.to_datetime(
            layout, time_zone="UTC", time_unit="us", strict=True, cache=False
        )
    parsed = column.str.to_datetime(layout, time_unit="us", strict=True, cache=False)
    return _localize(parsed, files, name, timezone)


def _timestamp_kind(
    files: ExportFiles, raw: pl.LazyFrame, name: str, dtype: pl.DataType
) -> tuple[bool, str | None]:
    """Whether a timestamp column carries its offset, and the layout of its text, if it has one.

    A tz-aware type carries it; so does text when any sampled value has an offset: the column is
    then meant as absolute time, and a naive value among them fails to parse and is reported
    with its line. The layout is the first of `_LAYOUTS` that reads every sampled value as
    per-value inference does (None: not text, or no layout fits).

    Raises:
        DataError: the column is not a timestamp, or its sample cannot be read.
    """
    if isinstance(dtype, pl.Datetime | pl.Date):
        return isinstance(dtype, pl.Datetime) and dtype.time_zone is not None, None
    if dtype != pl.String:
        raise DataError(
            f"{files.label}: column '{name}' holds {dtype}, not timestamps",
            hint="export timestamps as ISO 8601 text or a datetime type",
        )
    sample = _sample(files, raw, name)
    aware = any(_OFFSET.search(v.strip()) for v in sample)
    zone = "UTC" if aware else None
    try:
        inferred = sample.str.to_datetime(time_unit="us", time_zone=zone, strict=False)
    except pl.exceptions.ComputeError:  # no value reads as a timestamp: the parse reports it
        return aware, None
    for layout in (f"{layout}%#z" if aware else layout for layout in _LAYOUTS):
        parsed = sample.str.to_datetime(layout, time_unit="us", time_zone=zone, strict=False)
        if parsed.null_count() == 0 and parsed.equals(inferred):
            return aware, layout
    return aware, None


def _sample(files: ExportFiles, raw: pl.LazyFrame, name: str) -> pl.Series:
    """The first non-null values of a text column."""
    try:
        return raw.select(pl.col(name)).drop_nulls().head(_SAMPLE_ROWS).collect().to_series()
    except pl.exceptions.PolarsError as exc:
        from croctl.io.diagnose import diagnose_failure  # diagnose imports this module

        needs = ColumnNeeds(timestamps={name})
        raise diagnose_failure([(files, needs)], exc) from exc


def _localize(column: pl.Expr, files: ExportFiles, name: str, timezone: str | None) -> pl.Expr:
    if timezone is None:
        raise DataError(
            f"{files.label}: column '{name}' has timestamps without a time zone",
            hint="set `timezone:` in the plan (e.g. timezone: UTC) or export with an offset",
        )
    return column.dt.replace_time_zone(
        timezone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def naive_timestamps(files: ExportFiles, needs: ColumnNeeds) -> set[str]:
    """Timestamp columns whose values carry no offset (read as local times in the plan's zone).

    The same decision `scan_export` makes, from the column type or a sample of its text.
    """
    raw = _scan_raw(files, needs)
    schema = raw.collect_schema()
    return {n for n in needs.timestamps if not _timestamp_kind(files, raw, n, schema[n])[0]}
