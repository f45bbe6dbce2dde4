"""The Polars engine's aggregation over per-unit arrays, no joins, from 2 M exposure rows.

The hash query (`build`) keys every step by unit: a group-by for the first exposures, a join of
the kept rows to the units, a duplicate flag, a per-unit group-by and a left join back, each a
hash table of every unit. Here each unit has a slot in plain arrays instead: `id - lo` when the
exposures' ids fill most of a range (ids numbered densely, as warehouse exports often are), else
a number a compiled hash table gives each exposed id (`slots`):

1. The exposure rows in the window stream through a compiled loop (`kernel.first_exposures`)
   that keeps each unit's earliest start, segments and covariates, and its variant codes.
2. Each source's rows are read once, filtered at the scan to the rows some metric uses, and
   streamed through a second loop (`kernel.add_rows`) that flags repeated event ids and adds
   every measure into a per-unit array. (A CSV is read whole, once: the same read marks
   coverage, `dense_rows._one_pass`.)
3. The arrays become the columns of a unit table (no copy), from which the query's last steps
   (metric values, caps, cells) run as in `build`. Caps are exact: every unit's value is at hand.

Same data rules, same statistics table; the parity tests run both paths on every plan.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from croctl.pipeline import build, sift
from croctl.pipeline.bound import BoundPlan
from croctl.pipeline.cells import MAX_CELLS, cells_frame, refuse_too_many_cells
from croctl.pipeline.coverage import Bitmap, Span
from croctl.pipeline.dense_rows import (
    MAX_FILTERS,
    MAX_VALUES,
    Measures,
    csv_sources,
    matrix,
    micros,
    read_apart,
    row_count,
    source_sums,
)
from croctl.pipeline.keys import segment_words, segments_from_words
from croctl.pipeline.names import MISSING_SEGMENT, START, VARIANT, word_col
from croctl.pipeline.slots import KeyedSlots, RangeSlots, Slots
from croctl.pipeline.table import source_counts
from croctl.plan import Plan

if TYPE_CHECKING:
    from croctl.pipeline.kernel import F64, I64, U32, U64, Bools
    from croctl.pipeline.unit_sums import Sums

VALID = "__valid"
_EXPOSURE_COUNTS = ("rows", "no_timestamp", "before_start", "after_end")
SLOTS_PER_UNIT = 2  # arrays at most twice as long as there are exposure rows
MIN_ROWS = 2_000_000  # fewer exposure rows: the hash query is as fast, without numba's start-up


def exposure_rows(bound: BoundPlan, span: Span | None) -> int:
    """How many exposure rows there are.

    `span`: the exposures' integer id range, which counted them (None for text ids, whose rows
    are counted here: Parquet from the footers, a CSV by its lines).
    """
    assert bound.exposures.scan is not None
    return span.rows if span is not None else row_count(bound.exposures.scan.raw)


def applies(bound: BoundPlan, rows: int) -> bool:
    """Use the arrays: enough exposure `rows` to pay for numba, and filters the loop can flag.

    A quarter as many when a CSV is sifted, which loads numba anyway: 1 M users with 32-character
    ids (1.6 M exposure rows) read out in 4.0 s against 4.55 s by the hash query.
    """
    if rows < (MIN_ROWS // 4 if sift.sifting(bound) else MIN_ROWS):
        return False
    for name in bound.sources:
        measures = Measures.of(bound, name)
        if len(measures.filters) > MAX_FILTERS or len(bound.plan.source_values(name)) > MAX_VALUES:
            return False
    return True


def slots_for(
    bound: BoundPlan,
    span: Span | None,
    rows: int,
    bitmaps: Callable[[Collection[str]], dict[str, Bitmap]],
) -> Slots:
    """Slots by subtraction when the ids fill most of a range, else by key.

    `rows`: how many exposure rows there are (`exposure_rows`). `bitmaps(skip)` builds the
    range's coverage bitmaps of the sources not in `skip` (`collect.coverage_bitmaps`); a CSV
    source's come from its one read (`RangeSlots.mark`). They are built in another thread while
    the exposures and kept rows are read: that pass leaves a core idle half the time as it marks
    (~0.35 s of 7 s at 10 M units). Call `release` on the slots when done, failed or not.
    """
    if span is not None and span.compact and span.width <= SLOTS_PER_UNIT * span.rows:
        pool = ThreadPoolExecutor(1, thread_name_prefix="croctl-coverage")
        marking = pool.submit(bitmaps, csv_sources(bound))
        pool.shutdown(wait=False)  # the thread ends with its one task
        return RangeSlots(bound, span, marking)
    return KeyedSlots(bound, rows)


def dense_results(bound: BoundPlan, slots: Slots) -> dict[str, pl.DataFrame]:
    """Every section of the statistics table, as `collect` hands them to `stats_from_frames`.

    The slots are released once the rows are read; when this fails, by the caller.
    """
    from croctl.pipeline.kernel import unit_pairs

    plan = bound.plan
    # Polars forgets its global categories once no data holds one, and would then read the
    # codes the loops keep against a fresh mapping: this label holds them until the end.
    anchor = pl.Series([MISSING_SEGMENT], dtype=pl.Categorical)
    units = _Units.of(bound, slots)
    valid, summary = units.settle()
    _refuse_too_many_cells(plan, units, valid)
    results = {
        "exposures": units.exposures(plan.covariate_columns),
        "multiple_variants": summary,
    }
    columns: dict[str, str] = {}  # metric side (`num3`) -> the column of its per-unit sums
    sums: dict[str, Sums] = {}
    table: dict[str, object] = {
        VARIANT: units.low,
        VALID: valid,
        **{word_col(k): units.words[k] for k in range(len(units.words))},
        **{c: units.covariates[k] for k, c in enumerate(plan.covariate_columns)},
    }
    pairs = unit_pairs(units.first, units.low, valid)  # every source's rows look units up
    units.first, units.high = np.zeros(0, np.int64), np.zeros(0, np.uint32)  # read no more (0.1 GB)
    measured_sums = {}  # per source: its sums, and which measure each metric side reads
    apart = {name: read_apart(bound, source, slots) for name, source in bound.sources.items()}
    covered = {}
    if all(kept is not None for kept in apart.values()):
        # every source's coverage is marked: the table of keys (~0.3 GiB at 10 M units)
        # goes before the sums come
        covered = {name: slots.covered(name) for name in bound.sources}
        slots.release()
    for name, source in bound.sources.items():
        unit_sums, checks, measured = source_sums(bound, source, slots, pairs, apart.pop(name))
        measured_sums[name] = (unit_sums, measured)
        results[f"rows:{name}"] = _per_variant(checks, source_counts(plan, name))
    del pairs  # coverage reads each row's unit alone: ~0.16 GB less held while it reads
    for name in bound.sources:
        table[f"__covered:{name}"] = covered[name] if name in covered else slots.covered(name)
    slots.release()  # the keyed slots' table (~0.3 GB at 10 M units), not read by the cells
    for name in list(measured_sums):
        unit_sums, measured = measured_sums.pop(name)
        per_measure = unit_sums.per_measure()  # contiguous columns: the frame takes them uncopied
        for side, j in measured.items():
            columns[side] = f"__sum:{name}:{j}"
            sums[columns[side]] = per_measure[j]
    frame = pl.DataFrame(table | sums).lazy().filter(pl.col(VALID))
    frame = frame.with_columns(
        pl.col(VARIANT).cat.to(pl.Categorical),
        *segments_from_words(len(plan.segments)),
    )
    frames = {
        "cells": cells_frame(
            bound, frame, columns, _caps(plan, sums, columns, valid), with_checks=False
        ),
        **{
            f"coverage:{name}": frame.group_by(VARIANT).agg(
                pl.col(f"__covered:{name}").sum().alias("covered")
            )
            for name in bound.sources
        },
    }
    collected = pl.collect_all(list(frames.values()), engine="streaming")
    del anchor
    return results | dict(zip(frames, collected, strict=True))


_PER_UNIT = ("first", "low", "high", "words", "covariates")  # `_Units`' arrays with a slot axis


def _unseen(name: str, rows: tuple[int, ...], size: int) -> np.ndarray:
    """`_Units`' array `name` (one of `_PER_UNIT`) for `size` slots, no unit seen in any."""
    from croctl.pipeline.kernel import UNSEEN

    fill, dtype = {
        "first": (UNSEEN, np.int64),  # earliest start: none yet
        "low": (np.iinfo(np.uint32).max, np.uint32),  # lowest code: above every code
        "high": (0, np.uint32),
        "words": (0, np.uint64),
        "covariates": (0, np.float64),
    }[name]
    # zeros stay unwritten pages until a unit takes the slot (`np.full` would write them all)
    return np.full((*rows, size), fill, dtype) if fill else np.zeros((*rows, size), dtype)


@dataclass(slots=True)
class _Units:
    """Per slot (`slots`): the unit's first in-window exposure.

    Built by one pass over every exposure row (`of`), which also counts the `exposures`
    section's rows per variant code.
    """

    first: I64  # earliest start, epoch microseconds (`kernel.UNSEEN`: no exposure in the window)
    low: U32  # lowest variant code
    high: U32  # highest variant code
    words: U64  # [k, slot]: segment codes, two to a word (`keys.segment_words`)
    covariates: F64  # [c, slot]: the plan's covariate columns (null as 0)
    counts: I64  # [k, code]: the `exposures` section's counts (`kernel.first_exposures`)

    @classmethod
    def of(cls, bound: BoundPlan, slots: Slots) -> _Units:
        from croctl.pipeline.kernel import NO_TIME, NULL_CODE, UNSEEN, first_exposures

        plan = bound.plan
        words = segment_words(len(plan.segments))
        names = [word.meta.output_name() for word in words]
        units = cls.empty(len(words), len(plan.covariate_columns), slots.room)
        experiment = plan.experiment
        window = np.array(
            [
                NO_TIME if experiment.start is None else micros(experiment.start),
                UNSEEN if experiment.end is None else micros(experiment.end),
                UNSEEN if plan.as_of is None else micros(plan.as_of),
            ]
        )
        stream = build.exposure_rows(bound, slots.columns(bound.exposures)).select(
            *slots.names,
            pl.col(START).dt.epoch("us").fill_null(NO_TIME),
            pl.col(VARIANT).to_physical().fill_null(NULL_CODE),
            *words,
            *[pl.col(c).cast(pl.Float64).fill_null(0.0) for c in plan.covariate_columns],
        )
        for batch in stream.collect_batches(engine="streaming", maintain_order=False):
            codes = batch.get_column(VARIANT).to_numpy()
            units.make_room(codes)
            unit = slots.of(batch, exposures=True)
            units.grow(slots.size)
            first_exposures(
                unit,
                batch.get_column(START).to_numpy(),
                codes,
                matrix(batch, names, np.uint64),
                matrix(batch, plan.covariate_columns, np.float64),
                window,
                units.counts,
                units.first,
                units.low,
                units.high,
                units.words,
                units.covariates,
            )
        return units.trimmed(slots.size)

    @classmethod
    def empty(cls, words: int, covariates: int, size: int) -> _Units:
        """Room for `size` units, none seen yet."""
        return cls(
            _unseen("first", (), size),
            _unseen("low", (), size),
            _unseen("high", (), size),
            _unseen("words", (words,), size),
            _unseen("covariates", (covariates,), size),
            np.zeros((len(_EXPOSURE_COUNTS) + covariates, 1), np.int64),
        )

    def grow(self, size: int) -> None:
        """Room for at least `size` units (doubling, as keyed slots arrive batch by batch).

        One array at a time, each shorter one let go as its copy is made, as in `trimmed`.
        """
        have = len(self.first)
        if size <= have:
            return
        for name in _PER_UNIT:
            shorter = getattr(self, name)
            wider = _unseen(name, shorter.shape[:-1], max(size, 2 * have))
            wider[..., :have] = shorter
            setattr(self, name, wider)
            del shorter  # before the next array's wider copy is made

    def trimmed(self, size: int) -> _Units:
        """The first `size` slots, copied when the arrays are longer.

        Keyed slots make room ahead (for half the exposure rows, then by doubling), so much of
        the arrays may be room no unit took (at 10 M users up to ~0.3 GB that would stay held
        to the end); views would keep all of it. One array at a time, each longer one let go
        as its copy is made: copying all before letting any go was the realistic readout's
        peak (10 M users: 1.86 GiB in process).
        """
        for name in _PER_UNIT:
            if getattr(self, name).shape[-1] > size:
                setattr(self, name, getattr(self, name)[..., :size].copy())
        return self

    def make_room(self, codes: U32) -> None:
        """Widen `counts` to every variant code of a batch (the last column: a null variant)."""
        from croctl.pipeline.kernel import NULL_CODE

        top = int(codes.max(initial=0))
        if top == NULL_CODE:
            top = int(codes[codes != NULL_CODE].max(initial=0))
        if top + 1 < self.counts.shape[1]:
            return
        counts = np.zeros((len(self.counts), top + 2), np.int64)
        counts[:, : self.counts.shape[1] - 1] = self.counts[:, :-1]
        counts[:, -1] = self.counts[:, -1]
        self.counts = counts

    def exposures(self, covariates: list[str]) -> pl.DataFrame:
        """The `exposures` section: per variant (null last), its rows and their checks."""
        names = [*_EXPOSURE_COUNTS, *(f"nonfinite:{c}" for c in covariates)]
        return _per_variant(self.counts, names, null_last=True)

    def settle(self) -> tuple[Bools, pl.DataFrame]:
        """The valid units (in the window, one variant), and the `multiple_variants` section."""
        from croctl.pipeline.kernel import settle

        valid = np.empty(len(self.first), np.bool_)
        seen, multiple, earliest, latest = settle(self.first, self.low, self.high, valid)
        summary = pl.DataFrame(
            {
                "units": [seen],
                "multiple": [multiple],
                "first_start": [earliest / 1e6 if seen else None],
                "last_start": [latest / 1e6 if seen else None],
            },
            schema_overrides={"first_start": pl.Float64, "last_start": pl.Float64},
        )
        return valid, summary


def _refuse_too_many_cells(plan: Plan, units: _Units, valid: Bools) -> None:
    """`cells.refuse_too_many_cells` before the cells are built: their group-by is the cost.

    Codes are the categories' global ones, so their highest + 1 bounds a dimension's values
    (~10 ms); only when the bound passes the limit are the valid units' combinations counted.
    """
    bound = len(plan.experiment.variants)
    for word in units.words:  # two dimensions' codes to a word (`keys.segment_words`)
        halves = word.view(np.uint32)  # strided views: no copy (10 M units: ~10 ms)
        bound *= (int(halves[0::2].max(initial=0)) + 1) * (int(halves[1::2].max(initial=0)) + 1)
    if bound <= MAX_CELLS:
        return
    keys = {"v": units.low} | {f"w{k}": word for k, word in enumerate(units.words)}
    refuse_too_many_cells(plan, pl.DataFrame(keys).filter(pl.Series(valid)).n_unique())


def _caps(
    plan: Plan, sums: dict[str, Sums], columns: dict[str, str], valid: Bools
) -> pl.LazyFrame | None:
    """Each capped metric's pooled quantile over the valid units, as `caps.padded_quantile`."""
    if not plan.capped or not valid.any():
        return None
    caps = {}
    for i, q in plan.capped.items():
        values = sums[columns[f"num{i}"]][valid]
        rank = (len(values) - 1) * q
        low = int(np.floor(rank))
        high = min(low + 1, len(values) - 1)
        ordered = np.partition(values, [low, high])  # NaN last, as Polars sorts it
        cap = ordered[low] + (rank - low) * (ordered[high] - ordered[low])
        caps[f"cap{i}"] = [float(cap)]
    return pl.LazyFrame(caps)


def _per_variant(counts: I64, names: list[str], *, null_last: bool = False) -> pl.DataFrame:
    """A section of counts per variant code with rows: `counts[k, code]`, named `names[k]`.

    With `null_last`, the last code stands for rows without a variant.
    """
    codes: list[int | None] = list(range(counts.shape[1]))
    if null_last:
        codes[-1] = None
    frame = pl.DataFrame(
        {
            VARIANT: pl.Series(codes, dtype=pl.UInt32),
            **{name: counts[k] for k, name in enumerate(names)},
        }
    )
    return frame.filter(pl.col("rows") > 0).with_columns(pl.col(VARIANT).cat.to(pl.Categorical))
