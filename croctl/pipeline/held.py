"""CSV exports read once before the hash query: coverage read, the rows needed held in memory.

A CSV is tokenized whole whatever columns a query projects, so the query's two readers of a
source, the rows some metric uses and every row's unit id (coverage), cost two reads of it
(~0.8 s each at 15 M rows). Here one streaming read does both: every row's id marks coverage (a
bitmap over a compact integer range, else a set of keys), and the rows some metric could use
(most rows are page views no metric uses) are kept with their times parsed. The query then reads
those from memory, as many as the metrics keep (~8 % of the benchmark's rows). The exposures,
which the id check, the id range, the caps' sample and the query all read, are held whole.

When every metric on a source filters one text column to literals, a compiled loop (`sift`)
drops the lines none of them keeps before Polars tokenizes any, marking their ids itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import polars as pl

from croctl.io import FileFormat
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.build import rows_used
from croctl.pipeline.coverage import Bitmap, Coverage, KeysSeen, Span
from croctl.pipeline.keys import source_key
from croctl.pipeline.sift import sifted_scan

KEEP = "__keep"  # the column `kept_chunks` keeps a row by
_COVER = "__cover"
# Kept rows parsed at a time. A filtered text column still holds its batch's whole text buffers,
# so a chunk holds ~12 times its own rows' text (1 << 20: +0.6 GiB at 1 M users).
CHUNK_ROWS = 1 << 17
INLINE = 12  # text of up to this many bytes is stored in the column's views, not its buffers


def hold_exposures(bound: BoundPlan) -> BoundPlan:
    """The plan with its exposures in memory when they are a CSV, read once.

    The id check (`numbered_ids`), the id range, the caps' sample and the query all read them.
    """
    exposures = bound.exposures
    if exposures.files.format is not FileFormat.CSV or exposures.held:
        return bound
    assert exposures.scan is not None
    frame = exposures.scan.frame.collect(engine="streaming")
    scan = replace(exposures.scan, raw=frame.lazy(), times=(), inferred=None)
    return replace(bound, exposures=replace(exposures, scan=scan, held=True))


def hold_csv_exports(bound: BoundPlan, span: Span | None) -> tuple[BoundPlan, dict[str, Coverage]]:
    """The plan with CSV exports in memory, and the coverage of the sources held.

    Exposures are held whole (`hold_exposures`). A source is held as the rows some metric could
    use; one that a metric reads whole (no filter) is left to the query, since holding it would
    hold every row.
    """
    bound = hold_exposures(bound)
    sources, covered = dict(bound.sources), {}
    for name, source in bound.sources.items():
        used = rows_used(bound, name)
        if source.files.format is FileFormat.CSV and used is not None:
            sources[name], covered[name] = _hold(bound, source, used, span)
    return replace(bound, sources=sources), covered


def _hold(
    bound: BoundPlan, source: BoundSource, used: pl.Expr, span: Span | None
) -> tuple[BoundSource, Coverage]:
    assert source.scan is not None
    key = source_key(bound, source)
    span = span if span is not None and span.compact else None  # a bitmap, else a set of keys
    seen = np.zeros(span.width + 1 if span is not None else 0, np.bool_)
    sifted: list[pl.Series] = []  # the keys of the text ids of the lines the sift drops
    rows, times = sifted_scan(bound, source, span, seen, sifted.append).before(used)
    columns = rows.collect_schema().names()
    if span is not None:  # null ids, and ids outside the exposures' range, mark a spare slot
        key = pl.when(key.is_between(span.lo, span.hi)).then(key - span.lo).otherwise(span.width)
    stream = rows.with_columns(used.fill_null(False).alias(KEEP), key.alias(_COVER))
    keys = KeysSeen(stream.collect_schema()[_COVER])
    for words in sifted:
        keys.add(words)

    def mark(batch: pl.DataFrame) -> None:
        # numpy only: a Polars call here waits for the thread pool the read keeps busy
        if span is not None:
            seen[batch.get_column(_COVER).to_numpy()] = True
        else:
            keys.add(batch.get_column(_COVER))

    def parsed(chunk: pl.DataFrame) -> pl.DataFrame:
        return chunk.lazy().with_columns(times).select(columns).collect()

    long: list[str] | None = None  # the text columns to copy, by the first rows kept

    def owned(chunk: pl.DataFrame) -> pl.DataFrame:
        nonlocal long
        long = _long_text(chunk) if long is None else long
        return _own_text(chunk, long)

    held = [parsed(pl.DataFrame(schema=stream.collect_schema()))]  # typed, should none be kept
    held += (owned(parsed(chunk)) for chunk in kept_chunks(stream, mark))
    scan = replace(source.scan, raw=pl.concat(held).lazy(), times=(), inferred=None)
    return replace(source, scan=scan, held=True), (
        Bitmap(span.lo, seen[:-1]) if span is not None else keys.keys()
    )


def _long_text(frame: pl.DataFrame) -> list[str]:
    """The text columns whose values are mostly longer than a view holds (`_own_text`)."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    means = frame.select(pl.col(text).str.len_bytes().mean()).row(0) if text else ()
    return [name for name, mean in zip(text, means, strict=True) if (mean or 0) > INLINE]


def _own_text(frame: pl.DataFrame, long: list[str]) -> pl.DataFrame:
    """The frame with its `long` text columns copied out of the batches it was filtered from.

    A filtered text column keeps its whole batch's text buffers alive: with 32-character ids,
    the kept 8 % of rows held every row's ids (1 M CSV users: 2.2 GiB, 1.4 once copied). Values
    of up to 12 bytes live in the column itself, so a column of mostly short values (event
    names) is left as it is: a copy costs ~5 ms per 128 k values. Only the round trip through
    Arrow copies; Polars' own operations (gather, slice, casts) share the buffers. Series by
    Series: a frame's `with_columns` is a query, queued behind the read for the thread pool.
    """
    import pyarrow as pa  # loaded for CSV only (as by `iso`), not at start-up

    return pl.DataFrame(
        pl.Series(c.name, c.to_arrow().cast(pa.large_string())) if c.name in long else c
        for c in frame.iter_columns()
    )


def kept_chunks(
    stream: pl.LazyFrame, mark: Callable[[pl.DataFrame], None]
) -> Iterator[pl.DataFrame]:
    """One read of `stream`, in order: each batch to `mark`, its rows where `KEEP` holds back.

    The kept rows come about `CHUNK_ROWS` at a time, for their times to be parsed.
    """
    # in order: which of a repeated event id's rows counts follows the rows' order
    waiting: list[pl.DataFrame] = []
    held = 0
    for batch in stream.collect_batches(engine="streaming", maintain_order=True):
        mark(batch)
        mask = batch.get_column(KEEP)
        # column by column: `DataFrame.filter` plans a query per batch (~3x the time)
        waiting.append(pl.DataFrame([column.filter(mask) for column in batch.iter_columns()]))
        held += waiting[-1].height
        if held >= CHUNK_ROWS:
            yield pl.concat(waiting)
            waiting, held = [], 0
    if held:
        yield pl.concat(waiting)
