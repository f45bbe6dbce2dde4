"""Timestamps: zones, local times, dates written day or month first, ISO 8601 read by Arrow.

ISO 8601 text is parsed by Arrow's parser, ~10 times faster than Polars' layouts.

Polars reads a layout with a fraction or an offset through chrono, one value at a time (0.45 s
per 1.2 M values); Arrow's ISO 8601 parser takes 0.04 s. `scan` uses it for a text column whose
sample it reads exactly as the sniffed layout does.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TypeVar
from zoneinfo import ZoneInfo

import polars as pl

_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
# Warehouse exports put a space before the zone: BigQuery `... 12:00:00 UTC`, Snowflake
# `... 12:00:00.000 +0000`. Such text is closed up to ISO 8601 (`Z`, `+0000`) before the parse.
_SPACED_ZONE = re.compile(r" (UTC|[+-]\d{2}:?\d{2})$")
SPACED_ZONES = ((" UTC", "Z"), (" +", "+"), (" -", "-"))  # literal replacements, in order
BEFORE_CHANGE = timedelta(hours=3)  # no zone changes its offset twice within three hours
_Text = TypeVar("_Text", pl.Expr, pl.Series)

# A date written day and month first or month and day first: 02/10/2026, 10-02-2026
_DAY_MONTH = r"^\s*(\d{1,2})[/-](\d{1,2})[/-]\d{2,4}\b"


def day_month_text(sample: pl.Series) -> bool:
    """Are some sampled values dates written day and month first, or month and day first?"""
    return bool(sample.str.contains(_DAY_MONTH).any())


def highest_day_month(text: pl.Expr) -> list[pl.Expr]:
    """The highest first and second fields of such dates, over a column (`day_month_problem`)."""
    return [
        text.str.extract(_DAY_MONTH, group).cast(pl.Int32).max().alias(f"field{group}")
        for group in (1, 2)
    ]


def day_month_problem(first: int | None, second: int | None) -> str | None:
    """Why the dates' order is not clear from their highest fields, or None when it is.

    Polars reads `02/10/2026` as 2 October, always: right for a European export, silently
    wrong for an American one (10 February), whose timestamps would then fall outside the
    window or before exposure. The order is clear when some date has a first field above 12
    (a day) and none a second field above 12.
    """
    if second is not None and second > 12:
        return f"dates are written month first (a day of {second} comes second)"
    if first is None or first <= 12:
        return "no date has a day above 12, so 02/10/2026 may be 2 October or 10 February"
    return None


def spaced_zone(sample: pl.Series) -> bool:
    """Whether any value of a text timestamp sample has a space before its zone."""
    return any(_SPACED_ZONE.search(v) for v in sample)


def zone_in_text(sample: pl.Series) -> bool:
    """Whether any value of a text timestamp sample carries a zone, after a space or not."""
    return any(_OFFSET.search(v.strip()) for v in close_up_zone(sample.drop_nulls()))


def close_up_zone(text: _Text) -> _Text:
    """Timestamp text with the space before its zone removed and `UTC` written `Z`."""
    for old, new in SPACED_ZONES:
        text = text.str.replace(old, new, literal=True)
    return text


def iso_reads(sample: pl.Series, parsed: pl.Series) -> bool:
    """Does Arrow's parser (`iso_values`) read the sample as its layout did (`parsed`)?"""
    try:
        aware = isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None
        return iso_values(sample, aware).equals(parsed)
    except pl.exceptions.ComputeError:
        return False


def iso_values(text: pl.Series, aware: bool) -> pl.Series:
    """ISO 8601 text as times in microseconds (UTC if `aware`), by Arrow's parser.

    Arrow is strict: an offset where none is expected (or none where one is), more than six
    fraction digits, or anything else off the layout fails, and the query then falls back to
    per-value inference.

    Raises:
        polars.exceptions.ComputeError: a value Arrow cannot read.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("us", "UTC" if aware else None)
    try:
        times = pc.cast(text.to_arrow().cast(pa.large_string()), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise pl.exceptions.ComputeError(f"{text.name}: {exc}") from exc
    return pl.Series(text.name, times)


def local_to_utc(local: pl.Expr, timezone: str) -> pl.Expr:
    """Naive local times in `timezone` as UTC times.

    Of a local time's two readings around a daylight-saving change, the later instant is taken
    (as DuckDB and PostgreSQL read it): a repeated hour's second pass, and a skipped hour's time
    read with the offset from before the change (the offset three hours earlier).
    """
    reading = local.dt.replace_time_zone(timezone, ambiguous="latest", non_existent="null")
    if not _changes_offset(timezone):  # UTC, Asia/Tokyo: every local time has one reading
        return reading.dt.convert_time_zone("UTC")
    pair = pl.struct(local.alias("local"), reading.alias("reading"))
    # Polars reads a skipped time as null. Reading every row again took as long as the first
    # reading (+85 % at 30 M rows); a pass over each batch reads those few again (+40 %).
    read_skipped = partial(_read_skipped, timezone=timezone)
    dtype = pl.Datetime("us", timezone)
    fixed = pair.map_batches(read_skipped, return_dtype=dtype, is_elementwise=True)
    return fixed.dt.convert_time_zone("UTC")


@cache
def _changes_offset(timezone: str) -> bool:
    """Does the zone's offset change between 1970 and 2100 (January against July)?"""
    zone = ZoneInfo(timezone)
    moments = (
        datetime(year, month, 1, tzinfo=zone) for year in range(1970, 2101) for month in (1, 7)
    )
    return len({moment.utcoffset() for moment in moments}) > 1


def _read_skipped(pair: pl.Series, timezone: str) -> pl.Series:
    local, reading = pair.struct.field("local"), pair.struct.field("reading")
    skipped = reading.is_null() & local.is_not_null()
    if not skipped.any():
        return reading
    earlier = (local.filter(skipped) - BEFORE_CHANGE).dt.replace_time_zone(
        timezone, ambiguous="latest", non_existent="null"
    )
    return reading.scatter(skipped.arg_true(), earlier + BEFORE_CHANGE)
