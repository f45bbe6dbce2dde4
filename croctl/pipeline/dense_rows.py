"""A source's rows for the dense loop (`dense`): tagged, filtered at the scan, summed per unit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from croctl.errors import DataError
from croctl.io import FileFormat
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.build import measures_on
from croctl.pipeline.coverage import Bitmap
from croctl.pipeline.held import KEEP, kept_chunks
from croctl.pipeline.keys import fingerprint_words
from croctl.pipeline.sift import sifted_scan
from croctl.pipeline.slots import KeyedSlots, RangeSlots, Slots, long_ids
from croctl.pipeline.table import source_counts
from croctl.pipeline.unit_sums import UnitSums, measure_rows
from croctl.plan import MetricSpec

if TYPE_CHECKING:
    from croctl.pipeline.kernel import I64, MeasureSpans
    from croctl.pipeline.unit_index import I32

MAX_FILTERS = 32  # flag bits 0-31: one per distinct metric filter
MAX_VALUES = 30  # flag bits 32-61: one per value column's NaN/inf (bit 62: a null event id)
_MICROSECOND = timedelta(microseconds=1)


def matrix(batch: pl.DataFrame, names: list[str], dtype: type[np.generic]) -> np.ndarray:
    """The named columns of a batch as rows of one array (zero rows when there are none)."""
    if not names:
        return np.zeros((0, batch.height), dtype)
    return np.stack([batch.get_column(c).to_numpy() for c in names])


def source_sums(
    bound: BoundPlan, source: BoundSource, slots: Slots, units: I64, kept: I32 | None = None
) -> tuple[UnitSums, I64, dict[str, int]]:
    """Per measure and slot, the source's sums; per check and variant code, its counts.

    `units`: per slot, the unit's start and variant code, -1 when its rows do not count
    (`kernel.unit_pairs`). `kept`: the kept rows' slots, when their ids were read apart
    (`read_apart`); the kept rows' read then leaves the ids out.
    """
    from croctl.pipeline import kernel

    spec = bound.plan.sources[source.name]
    measures = Measures.of(bound, source.name)
    values = bound.plan.source_values(source.name)
    sums: UnitSums | None = None  # laid out by how the first batch's rows come (`_zeros`)
    variants = int(units[:, 1].max(initial=0)) + 1
    checks = np.zeros((len(source_counts(bound.plan, source.name)), variants), np.int64)
    spans = measures.spans(values)
    integer = _integer_ids(bound, source)
    if source.name in csv_sources(bound):
        # Parquet reads one column for coverage, and decodes the kept rows' other columns only
        # where the filter holds; a CSV is tokenized whole either way, so it is read once. Its
        # ids are counted as they come (a count would be the second read).
        batches = _one_pass(bound, source, slots, measures, values)
        ids = kernel.IdSet(integer)
    else:
        rows = _tagged_rows(bound, source, slots if kept is None else None, measures, values)
        batches = rows.collect_batches(engine="streaming", maintain_order=True)
        ids = kernel.IdSet(
            integer, 0 if integer or not spec.id else _expected_rows(source, measures)
        )
    for batch, unit in _with_units(batches, slots, kept, source):
        flags = batch.get_column("__flags").to_numpy()
        id_high = batch.get_column("__id_high").to_numpy()
        ids.reserve(id_high, flags >> kernel.NULL_ID_BIT & 1 == 0)
        scattered = slots.scattered or far_apart(unit)
        if sums is None:
            sums = _zeros(measures, len(units), scattered)
        kernel.add_rows(
            unit,
            batch.get_column("__ts").to_numpy(),
            flags,
            id_high,
            batch.get_column("__id_low").to_numpy(),
            matrix(batch, values, np.float64),
            units,
            (spans.flag, spans.value, spans.since, spans.until, spans.before, spans.row),
            spec.timestamp is not None,
            spec.id is not None,
            ids.bits,
            ids.keys,
            ids.state,
            sums.counts,
            sums.values,
            checks,
            scattered,
        )
    if sums is None:
        sums = _zeros(measures, len(units), slots.scattered)
    return sums, checks, measures.columns


def read_apart(bound: BoundPlan, source: BoundSource, slots: Slots) -> I32 | None:
    """The kept rows' slots from a read of every row's unit id, when the ids are stored long.

    Polars decodes a column stored plainly (UUID text from pyarrow, `slots.long_ids`) whole,
    filter or not: the kept rows' read would decode every row's id a second time after
    coverage's read (10 M users, 150 M rows: ~7 s each). Read apart, the kept rows come
    without their ids, and the table of keys can go before the sums come. None: the kept
    rows' read finds their slots. Also when every row is kept: the slots would be as many.
    """
    if not isinstance(slots, KeyedSlots) or not long_ids(bound, source):
        return None
    measures = Measures.of(bound, source.name)
    if measures.unfiltered:
        return None
    return slots.kept_slots(source, pl.any_horizontal(measures.filters))


def _with_units(
    batches: Iterable[pl.DataFrame], slots: Slots, kept: I32 | None, source: BoundSource
) -> Iterator[tuple[pl.DataFrame, I64]]:
    """Each batch of kept rows with its rows' slots: `kept` in order, when read apart."""
    if kept is None:
        yield from ((batch, slots.of(batch)) for batch in batches)
        return
    at = 0
    for batch in batches:
        if at + batch.height > len(kept):
            raise _changed(source)
        yield batch, kept[at : at + batch.height].astype(np.int64)
        at += batch.height
    if at != len(kept):
        raise _changed(source)


def _changed(source: BoundSource) -> DataError:
    """Two reads of a source disagree on its kept rows: it was written to as they ran."""
    return DataError(
        f"{source.files.label}: the export changed while it was read",
        hint="read it again once it is written in full",
    )


def far_apart(unit: I64) -> bool:
    """Do a batch's rows jump between distant units (an export in time order, not by unit)?

    Judged on its first rows: in an export grouped by unit, most neighbouring rows are of the
    same unit or the next ones. Such rows are prefetched (`kernel.add_rows`) and summed unit by
    unit (`_zeros`).
    """
    steps = np.abs(np.diff(unit[:_SAMPLE]))
    return bool(len(steps)) and float(np.mean(steps > _NEAR)) > 0.5


_NEAR = 64  # slots: a step between neighbouring rows' units this short stays in the cache's reach
_SAMPLE = 4096  # rows `far_apart` looks at


def _zeros(measures: Measures, units: int, scattered: bool) -> UnitSums:
    """The measures' zero sums over `units` slots, unit by unit when the rows come `scattered`."""
    return UnitSums.zeros(measures.counted, units, scattered)


def csv_sources(bound: BoundPlan) -> set[str]:
    """The plan's CSV sources: read once, for their rows and their coverage (`_one_pass`)."""
    return {name for name, s in bound.sources.items() if s.files.format is FileFormat.CSV}


@dataclass(slots=True)
class Measures:
    """A source's distinct measures, in the order of `kernel.MeasureSpans`."""

    filters: list[pl.Expr]
    unfiltered: bool  # some measure reads every row of the source
    flag: list[int]
    value: list[str | None]
    since: list[int]
    until: list[int]
    before: list[int]
    columns: dict[str, int]  # metric side (`num3`, `pre3`) -> its measure

    @classmethod
    def of(cls, bound: BoundPlan, name: str) -> Measures:
        """The measures of every metric reading source `name`."""
        from croctl.pipeline.kernel import NEVER

        as_of = micros(bound.plan.as_of) if bound.plan.as_of is not None else NEVER
        found = cls([], False, [], [], [], [], [], {})
        keys: dict[tuple[object, ...], int] = {}
        filters: dict[str, int] = {}
        for i, side, metric, measure in measures_on(bound, name):
            condition = bound.filters.get((metric.name, side))
            text = "" if condition is None else str(condition)
            if text not in filters:
                filters[text] = len(found.filters)
                found.filters.append(pl.lit(True) if condition is None else condition)
                found.unfiltered |= condition is None
            bit = filters[text]
            window = _span(measure.window) if measure.window is not None else NEVER
            key = (measure.filter, measure.value, measure.window)
            found.add(f"{side}{i}", key, (bit, measure.value, 0, window, as_of), keys)
            lookback = _lookback(metric)
            if side == "num" and lookback is not None and bound.plan.sources[name].timestamp:
                pre = (bit, measure.value, -lookback, 0, NEVER)
                found.add(f"pre{i}", ("pre", lookback, *key), pre, keys)
        return found

    def add(
        self,
        side: str,
        key: tuple[object, ...],
        span: tuple[int, str | None, int, int, int],
        keys: dict[tuple[object, ...], int],
    ) -> None:
        """Name `side`'s measure; a measure several metrics share (same `key`) is summed once."""
        if key not in keys:
            keys[key] = len(self.flag)
            self.flag.append(span[0])
            self.value.append(span[1])
            self.since.append(span[2])
            self.until.append(span[3])
            self.before.append(span[4])
        self.columns[side] = keys[key]

    @property
    def counted(self) -> list[bool]:
        """Per measure: does it count rows (rather than sum a value)?"""
        return [value is None for value in self.value]

    def spans(self, values: list[str]) -> MeasureSpans:
        """The arrays for `kernel.add_rows`; `values` orders the rows of its values matrix."""
        from croctl.pipeline.kernel import MeasureSpans

        order = {v: k for k, v in enumerate(values)}
        return MeasureSpans(
            np.array(self.flag, np.int64),
            np.array([-1 if v is None else order[v] for v in self.value], np.int64),
            np.array(self.since, np.int64),
            np.array(self.until, np.int64),
            np.array(self.before, np.int64),
            np.array(measure_rows(self.counted), np.int64),
        )


def _lookback(metric: MetricSpec) -> int | None:
    if metric.covariate is None or metric.covariate.lookback is None:
        return None
    return _span(metric.covariate.lookback)


def _span(delta: timedelta) -> int:
    return delta // _MICROSECOND


def micros(moment: datetime) -> int:
    """`moment` in epoch microseconds, as `dt.epoch("us")` gives a timestamp."""
    return _span(moment - datetime(1970, 1, 1, tzinfo=UTC))


def row_count(rows: pl.LazyFrame) -> int:
    """How many rows a frame has, reading only the columns its filters need."""
    return int(rows.select(pl.len()).collect(engine="streaming").item())


def _expected_rows(source: BoundSource, measures: Measures) -> int:
    """About how many rows some metric uses: their share of the first rows, times every row.

    Sizes the table of a source's text event ids before its rows arrive (`kernel.IdSet`): one
    that doubles as rows come rehashes every id each time (~6 s at 12 M ids), and counting the
    rows first reads every row's filter columns (2-3 s at 150 M rows). An estimate off either
    way costs memory or a doubling, never a wrong count.
    """
    assert source.scan is not None
    if measures.unfiltered:
        return row_count(source.scan.raw)
    keep = pl.any_horizontal(measures.filters).fill_null(False)
    rows, _ = source.scan.before(keep)
    total = row_count(rows)  # Parquet: from the footers
    sampled = rows.head(_SAMPLE_ROWS).select(pl.len(), keep.sum()).collect(engine="streaming")
    seen, kept = sampled.row(0)
    return int(total * kept / seen * _MARGIN) if seen else 0


_SAMPLE_ROWS = 1 << 20
_MARGIN = 1.1  # a little room: the share of the first rows is an estimate


def _integer_ids(bound: BoundPlan, source: BoundSource) -> bool:
    spec = bound.plan.sources[source.name]
    assert source.scan is not None
    return bool(spec.id) and source.scan.raw.collect_schema()[spec.id or ""].is_integer()


def _one_pass(
    bound: BoundPlan, source: BoundSource, slots: Slots, measures: Measures, values: list[str]
) -> Iterator[pl.DataFrame]:
    """`_tagged_rows`' batches, from one read of every row that also marks coverage.

    A CSV cannot be read one column at a time: a pass over its unit ids for coverage tokenizes
    the whole file again (~0.8 s of ~1.5 s at 15 M rows). Here every row's key marks coverage,
    and the rows some metric could use are tagged a chunk at a time (times parsed on those only).
    """
    assert source.scan is not None
    keep = pl.any_horizontal(measures.filters)
    scan = source.scan
    # lines no metric keeps dropped (`sift`), their ids marked
    if isinstance(slots, RangeSlots):
        seen = np.zeros(slots.size + 1, np.bool_)  # and a spare slot for ids outside
        scan = sifted_scan(bound, source, slots.span, seen)
        if scan is not source.scan:
            slots.bitmaps[source.name] = Bitmap(slots.span.lo, seen[: slots.size])
    elif not bound.unit_dtype.is_integer():  # text ids: by their keys' high words
        keyed = slots

        def mark(words: pl.Series) -> None:
            keyed.mark_words(source.name, words.to_numpy())

        scan = sifted_scan(bound, source, None, np.zeros(0, np.bool_), mark)
    rows, times = scan.before(keep)
    stream = rows.with_columns(*slots.columns(source), keep.fill_null(False).alias(KEEP))
    tags: list[str | pl.Expr] = [*slots.names, *_tags(bound, source, measures, values)]
    for chunk in kept_chunks(stream, lambda batch: slots.mark(source.name, batch)):
        yield chunk.lazy().with_columns(times).select(tags).collect()


def _tagged_rows(
    bound: BoundPlan,
    source: BoundSource,
    slots: Slots | None,
    measures: Measures,
    values: list[str],
) -> pl.LazyFrame:
    """The rows some metric could use: unit (`slots`, if any), time, flags, event id, values."""
    assert source.scan is not None
    if measures.unfiltered:
        rows = source.scan.frame
    else:  # rows no metric uses (page views) drop at the scan, before their times are parsed
        rows = source.scan.filtered(pl.any_horizontal(measures.filters))
    if slots is None:  # the ids were read apart (`KeyedSlots.kept_slots`)
        return rows.select(_tags(bound, source, measures, values))
    rows = rows.with_columns(slots.columns(source))
    return rows.select(*slots.names, *_tags(bound, source, measures, values))


def _tags(
    bound: BoundPlan, source: BoundSource, measures: Measures, values: list[str]
) -> list[pl.Expr]:
    """A row's time, flag bits, event id words and values, for `kernel.add_rows`."""
    from croctl.pipeline.kernel import NO_TIME, NULL_ID_BIT

    assert source.scan is not None
    spec = bound.plan.sources[source.name]
    bits = [f.fill_null(False).cast(pl.UInt64) * (1 << b) for b, f in enumerate(measures.filters)]
    bits += [
        (~pl.col(v).is_finite()).fill_null(False).cast(pl.UInt64) * (1 << (32 + k))
        for k, v in enumerate(values)
    ]
    high, low = pl.lit(0, pl.Int64), pl.lit(0, pl.Int64)
    if spec.id:
        ids = pl.col(spec.id)
        bits.append(ids.is_null().cast(pl.UInt64) * (1 << NULL_ID_BIT))
        if _integer_ids(bound, source):
            dtype = source.scan.raw.collect_schema()[spec.id]
            high = ids.reinterpret(signed=True) if dtype == pl.UInt64 else ids.cast(pl.Int64)
        else:
            high, low = fingerprint_words(ids.cast(pl.String))
    ts = pl.lit(NO_TIME, pl.Int64)
    if spec.timestamp:
        ts = pl.col(spec.timestamp).dt.epoch("us").fill_null(NO_TIME)
    return [
        ts.alias("__ts"),
        pl.sum_horizontal(bits).cast(pl.UInt64).alias("__flags"),
        high.fill_null(0).alias("__id_high"),
        low.fill_null(0).alias("__id_low"),
        *[pl.col(v).cast(pl.Float64).fill_null(0.0) for v in values],
    ]
