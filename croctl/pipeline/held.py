"""A CSV source read once before the hash query: coverage read and the kept rows held in memory.

A CSV is tokenized whole whatever columns a query projects, so the query's two readers of a
source, the rows some metric uses and every row's unit id (coverage), cost two reads of it
(~0.8 s each at 15 M rows). Here one streaming read does both: every row's id marks coverage (a
bitmap over a compact integer range, else a set of keys), and the rows some metric could use
(most rows are page views no metric uses) are kept with their times parsed. The query then reads
those from memory, as many as the metrics keep (~8 % of the benchmark's rows).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from croctl.io import FileFormat
from croctl.pipeline.bind import BoundPlan, BoundSource
from croctl.pipeline.build import rows_used
from croctl.pipeline.coverage import Bitmap, Coverage, Keys, Span
from croctl.pipeline.keys import source_key
from croctl.pipeline.names import UNIT

_KEEP, _COVER = "__keep", "__cover"
# Kept rows parsed at a time: a filtered text column still holds its batch's whole text, so
# the batches wait unparsed no longer than this.
CHUNK_ROWS = 1 << 17


def hold_csv_exports(bound: BoundPlan, span: Span | None) -> tuple[BoundPlan, dict[str, Coverage]]:
    """The plan with CSV exports in memory, and the coverage of the sources held.

    Exposures are held whole: the caps' sample and the query read them again. A source is held
    as the rows some metric could use; one that a metric reads whole (no filter) is left to the
    query, since holding it would hold every row.
    """
    exposures, sources, covered = bound.exposures, dict(bound.sources), {}
    if exposures.files.format is FileFormat.CSV:
        assert exposures.scan is not None
        frame = exposures.scan.frame.collect(engine="streaming")
        scan = replace(exposures.scan, raw=frame.lazy(), times=(), inferred=None)
        exposures = replace(exposures, scan=scan, held=True)
    for name, source in bound.sources.items():
        used = rows_used(bound, name)
        if source.files.format is FileFormat.CSV and used is not None:
            sources[name], covered[name] = _hold(bound, source, used, span)
    return replace(bound, exposures=exposures, sources=sources), covered


def _hold(
    bound: BoundPlan, source: BoundSource, used: pl.Expr, span: Span | None
) -> tuple[BoundSource, Coverage]:
    assert source.scan is not None
    rows, times = source.scan.before(used)
    columns = rows.collect_schema().names()
    key = source_key(bound, source)
    compact = span is not None and span.compact
    if compact:  # ids outside the exposures' range are no exposed unit's: null
        assert span is not None
        key = pl.when(key.is_between(span.lo, span.hi)).then(key - span.lo)
    stream = rows.with_columns(used.fill_null(False).alias(_KEEP), key.alias(_COVER))
    seen = np.zeros(span.width if compact and span is not None else 0, np.bool_)
    keys = [pl.Series(UNIT, [], stream.collect_schema()[_COVER])]
    parsed: list[pl.DataFrame] = []
    waiting = [pl.DataFrame(schema=rows.collect_schema())]  # typed, should no row come
    held = 0
    # in order: which of a repeated event id's rows counts follows the rows' order
    for batch in stream.collect_batches(engine="streaming", maintain_order=True):
        ids = batch.get_column(_COVER).drop_nulls()
        if compact:
            seen[ids.to_numpy()] = True
        else:
            keys.append(ids.unique().alias(UNIT))
        mask = batch.get_column(_KEEP)
        # column by column: `DataFrame.filter` plans a query per batch (~3x the time)
        waiting.append(pl.DataFrame([batch.get_column(c).filter(mask) for c in columns]))
        held += waiting[-1].height
        if held >= CHUNK_ROWS:
            parsed.append(_parsed(waiting, times))
            waiting, held = [], 0
    if waiting:
        parsed.append(_parsed(waiting, times))
    scan = replace(source.scan, raw=pl.concat(parsed).lazy(), times=(), inferred=None)
    if compact:
        assert span is not None
        return replace(source, scan=scan, held=True), Bitmap(span.lo, seen)
    return replace(source, scan=scan, held=True), Keys(pl.concat(keys).unique().to_frame())


def _parsed(batches: list[pl.DataFrame], times: tuple[pl.Expr, ...]) -> pl.DataFrame:
    return pl.concat(batches).lazy().with_columns(times).collect()
