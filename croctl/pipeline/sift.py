"""A CSV's lines that no metric can use, dropped before Polars tokenizes them.

Polars' CSV reader tokenizes every field of every line before a filter runs: at 1 M users
(15 M lines, 0.9 GB) most of a readout. When every metric on a source filters one text column
to literals (`event_name = 'purchase'`, `event_name IN ('refund', 'purchase')`, the common
case), a compiled loop (`sift_kernel`) reads each line only up to the fields it needs, keeps the
lines whose key is one of the literals, and marks the other lines' unit ids in the coverage
bitmap (numbered ids) or hands them on as text (UUIDs, hex strings: their keys join coverage's).
Polars then reads the kept lines (~8 % of the benchmark's) as it reads the files, and the
metric filters run on them as before: the loop only has to keep a superset.

Whatever the loop is unsure of, it keeps; whatever the files hold that it does not handle sends
the read back to Polars whole: quotes other than around a whole field (`sift_kernel`), a line
break inside quotes, headers that differ between files, partition directories. A line no
metric uses is then not checked beyond its id: a malformed value in a page view's unused column
fails Polars' full read but not this one.
"""

from __future__ import annotations

import csv
import mmap
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from croctl.io import ExportScan, FileFormat
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.build import measures_on
from croctl.pipeline.coverage import Span
from croctl.pipeline.keys import high_word

WINDOW = 1 << 26  # bytes of a file mapped at a time (memory stays flat as files grow)
# Smaller sources are left to Polars: numba's start-up (~0.65 s of one core, ~0.3 s of it
# waited for) costs what the sift saves at ~400 MB (346 MB: 2.29 s sifted against 2.21 s;
# 875 MB: 2.71 against 3.08 s).
MIN_BYTES = 384 << 20
_NAME = r'(?:"(?P<quoted>[^"]+)"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))'
_TEXT = r"'[^']*'"
_EQUALS = re.compile(rf"\s*{_NAME}\s*=\s*(?P<values>{_TEXT})\s*")
_IN = re.compile(rf"\s*{_NAME}\s+IN\s*\(\s*(?P<values>{_TEXT}(?:\s*,\s*{_TEXT})*)\s*\)\s*", re.I)


@dataclass(frozen=True, slots=True)
class Sieve:
    """Keep a line when column `key` is one of `values` (else mark column `unit`'s id)."""

    key: str
    values: frozenset[str]
    unit: str
    prefix: str = ""  # the ids' numbering (`numbered_ids.Numbering`)
    padded: int = 0  # the padded width of their digits (0: written canonically)
    text: bool = False  # ids kept as text: the dropped lines' ids are handed on, not marked


# Where the dropped lines' ids go: numbered ids to a bitmap over the exposures' span (and a
# spare slot); text ids, as coverage keys them (`keys.high_word` of the text Polars would read),
# to a function, half a window's at a time in no set order (one call at a time)
TextKeys = Callable[[pl.Series], None]


def sieve_of(bound: BoundPlan, source: BoundSource, span: Span | None) -> Sieve | None:
    """The sieve for a CSV source, or None when its lines must all go to Polars.

    Every measure on the source must filter the same text column to literals, not the unit
    column. Unit ids numbered (`numbered_ids`) are marked in a bitmap (a compact span); ids
    kept as text, stored as text, are handed on.
    """
    numbering, sieve = bound.numbering, _literal_sieve(bound, source)
    if sieve is None or sieve.key == sieve.unit:
        return None
    if numbering is not None and span is not None and span.compact:
        return replace(sieve, prefix=numbering.prefix, padded=numbering.width or 0)
    assert source.scan is not None
    if bound.unit_dtype == pl.String and _as_written(source.scan, sieve.unit):
        return replace(sieve, text=True)
    return None


def _as_written(scan: ExportScan, column: str) -> bool:
    """Is `column` text the scan keeps as written (not `123.0` made `123`, say)?"""
    typed = [e for e in scan.typing if e.meta.output_name() == column]
    plain = len(typed) == 1 and typed[0].meta.undo_aliases().meta.eq(pl.col(column))
    return plain and scan.stored.get(column) == pl.String


def sifted_scan(
    bound: BoundPlan,
    source: BoundSource,
    span: Span | None,
    seen: npt.NDArray[np.bool_],
    text_keys: TextKeys | None = None,
) -> ExportScan:
    """The source's scan over the lines `sift_csv` keeps, the others' ids marked in `seen`.

    Text ids' keys go to `text_keys` instead; without it, a source with text ids is not sifted.
    Its own scan when it cannot be sifted (`seen` then untouched). A sift given up midway may
    have handed some keys on: of ids the source has, which its whole read keys again.
    """
    assert source.scan is not None
    sieve = sieve_of(bound, source, span)
    if sieve is None or (text_keys is None if sieve.text else span is None):
        return source.scan
    parts = sift_csv(source.files.paths, sieve, span, seen, text_keys)
    if parts is None:
        seen[:] = False  # a sift given up midway may have marked some ids
        return source.scan
    # the lines as Polars reads the files, each needed column typed as the files' scan types it
    raw = pl.scan_csv(parts, schema_overrides=source.scan.stored, infer_schema=False)
    raw = raw.select(source.scan.typing)
    if source.unit_text is not None:  # as `numbered_ids` keyed the files' ids
        assert bound.numbering is not None
        raw = bound.numbering.numbered(raw, bound.plan.sources[source.name].unit)
    return replace(source.scan, raw=raw)


def preload(bound: BoundPlan) -> None:
    """Load the compiled loop on a thread of its own if a source may be sifted.

    Importing numba and loading the loop take ~0.6 s of one core; the exposures are read
    meanwhile.
    """
    if sifting(bound):
        threading.Thread(target=_compiled).start()


def sifting(bound: BoundPlan) -> bool:
    """May a source be sifted (numba is then loaded whatever reads the rows)?"""
    return any(_literal_sieve(bound, s) for s in bound.sources.values())


def _literal_sieve(bound: BoundPlan, source: BoundSource) -> Sieve | None:
    """`sieve_of` by the files and the filters alone."""
    scan, files = source.scan, source.files
    if scan is None or files.format is not FileFormat.CSV or files.partitions or files.reordered:
        return None
    if sum(path.stat().st_size for path in files.paths) < MIN_BYTES:
        return None
    filters = [_literal_filter(m.filter) for *_, m in measures_on(bound, source.name)]
    keys = {f[0] if f is not None else None for f in filters}
    if len(keys) != 1 or (key := keys.pop()) is None or scan.stored.get(key) != pl.String:
        return None
    values = frozenset().union(*(f[1] for f in filters if f is not None))
    return Sieve(key, values, bound.plan.sources[source.name].unit)


def _literal_filter(sql: str | None) -> tuple[str, frozenset[str]] | None:
    """`col = 'a'` or `col IN ('a', 'b')` as (col, {a, b}); None for any other filter."""
    match = _EQUALS.fullmatch(sql or "") or _IN.fullmatch(sql or "")
    if match is None:
        return None
    name = match["quoted"] or match["plain"]
    return name, frozenset(re.findall(r"'([^']*)'", match["values"]))


def sift_csv(
    paths: Sequence[Path],
    sieve: Sieve,
    span: Span | None,
    seen: npt.NDArray[np.bool_],
    text_keys: TextKeys | None = None,
) -> list[bytes] | None:
    """The lines `sieve` keeps, in order, as CSV texts under the files' header; None: read whole.

    Polars reads such a list as one table. Texts of a few MB each (a half-window's kept lines),
    where one text joined at the end held every line twice at the peak (3 M CSV users with
    32-character ids: ~0.5 GB). Dropped lines' ids are marked in `seen` (`Bitmap`'s layout over
    `span` plus a spare slot), or their keys handed to `text_keys` when they are text.
    """
    header: bytes | None = None
    parts: list[bytes] = []
    for path in paths:
        sifted = _sift_file(path, sieve, _Marks(span, seen, text_keys))
        if sifted is None or (header is not None and sifted[0] != header):
            return None
        header = sifted[0]
        parts += sifted[1]
    return None if header is None else parts or [header]


def _sift_file(path: Path, sieve: Sieve, marks: _Marks) -> tuple[bytes, list[bytes]] | None:
    """A file's header line and its kept lines under it, window by window (None: read it whole)."""
    size = path.stat().st_size
    if size == 0:
        return None
    parts: list[bytes] = []
    with path.open("rb") as file:
        first = file.readline(WINDOW)
        if not first.endswith(b"\n") or first.count(b'"') % 2:  # a quoted name goes on
            return None
        names = next(csv.reader([first.decode("utf-8-sig", "replace").rstrip("\r\n")]))
        if len(set(names)) < len(names):
            return None
        if sieve.key not in names or sieve.unit not in names:
            return None
        sift = _Sifter(sieve, names, marks, first)
        at = len(first)
        while at < size:
            base = at - at % mmap.ALLOCATIONGRANULARITY
            length = min(at - base + WINDOW, size - base)
            flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
            with mmap.mmap(file.fileno(), length, flags, mmap.PROT_READ, offset=base) as window:
                end = window.rfind(b"\n", at - base) + 1
                if end == 0 and base + length < size:
                    return None  # a line longer than a window
                if end == 0:  # the last line, without a line break: kept
                    parts.append(first + window[at - base :] + b"\n")
                    end = length
                else:
                    kept = sift(window, at - base, end)
                    if kept is None:
                        return None
                    parts += kept
            at = base + end
    return first, parts


@dataclass(frozen=True, slots=True)
class _Marks:
    """Where a dropped line's unit id goes (`sift_csv`)."""

    span: Span | None
    seen: npt.NDArray[np.bool_]
    text_keys: TextKeys | None


class _Sifter:
    """`sift_lines` over a window of whole lines, in two threads (one per core)."""

    def __init__(self, sieve: Sieve, names: list[str], marks: _Marks, header: bytes) -> None:
        self.header = header
        values = [v.encode() for v in sorted(sieve.values)]
        self.literals = np.frombuffer(b"".join(values) or b"\0", np.uint8)
        self.ends = np.cumsum([len(v) for v in values], dtype=np.int64)
        self.prefix, self.padded = np.frombuffer(sieve.prefix.encode(), np.uint8), sieve.padded
        self.columns, self.key, self.unit = (
            len(names),
            names.index(sieve.key),
            names.index(sieve.unit),
        )
        span, self.seen = marks.span, marks.seen
        self.text_keys = marks.text_keys if sieve.text else None
        self.lo, self.width = (span.lo, span.width) if span is not None else (0, 0)
        # each thread's room for text ids, reused window after window: fresh pages cost time
        self.ids = [_TextIds.room(0), _TextIds.room(0)]
        self.handing = threading.Lock()  # `text_keys` is called by one thread at a time
        self.lines = _compiled()

    def __call__(self, window: mmap.mmap, begin: int, end: int) -> list[bytes] | None:
        """The kept lines of `window[begin:end]` (whole lines), a half on each thread.

        None: a quote the loop does not read. Each half's kept lines go to a new buffer (only
        the pages written are backed), copied under the header into a text Polars reads; its
        dropped lines' text ids to another, keyed and handed on.
        """
        half = window.find(b"\n", (begin + end) // 2) + 1
        pieces = [
            np.frombuffer(window, np.uint8, half - begin, begin),
            np.frombuffer(window, np.uint8, end - half, half),
        ]
        outs = [np.empty(len(piece), np.uint8) for piece in pieces]
        ids = [self._room(i, len(piece)) for i, piece in enumerate(pieces)]
        kept = [0, 0]

        def run(i: int) -> None:
            kept[i] = self.lines(
                pieces[i],
                self.columns,
                self.unit,
                self.key,
                self.literals,
                self.ends,
                self.prefix,
                self.padded,
                self.lo,
                self.width,
                self.seen,
                outs[i],
                self.text_keys is not None,
                ids[i].data,
                ids[i].ends,
                ids[i].found,
            )
            if self.text_keys is not None and kept[i] >= 0:  # while the other half is sifted
                words = high_word(ids[i].series())  # before the ids' room is written again
                with self.handing:
                    self.text_keys(words)

        failed: list[BaseException] = []

        def run_other() -> None:
            try:
                run(1)
            except BaseException as error:  # raised here, not lost with the thread
                failed.append(error)

        other = threading.Thread(target=run_other)
        other.start()
        try:
            run(0)
        finally:
            other.join()  # before the window it reads is unmapped
            pieces.clear()  # views of the window: it could not be unmapped as an error goes up
        if failed:
            raise failed[0]
        if min(kept) < 0:
            return None
        return [
            b"".join((self.header, out[:n].data)) for out, n in zip(outs, kept, strict=True) if n
        ]

    def _room(self, thread: int, size: int) -> _TextIds:
        """Thread `thread`'s room for the text ids of `size` bytes of lines, emptied."""
        if self.text_keys is not None and len(self.ids[thread].data) < size:
            self.ids[thread] = _TextIds.room(size + size // 8)  # windows' halves vary a little
        self.ids[thread].found[:] = 0
        return self.ids[thread]


@dataclass(frozen=True, slots=True)
class _TextIds:
    """The ids `sift_lines` copies: end to end in `data`, id `i` ending at `ends[i]`."""

    data: npt.NDArray[np.uint8]
    ends: npt.NDArray[np.int64]
    found: npt.NDArray[np.int64]  # how many ids, and how many bytes they take

    @classmethod
    def room(cls, size: int) -> _TextIds:
        """Room for the ids of `size` bytes of lines (each at least 2 bytes)."""
        return cls(np.empty(size, np.uint8), np.empty(size // 2, np.int64), np.zeros(2, np.int64))

    def series(self) -> pl.Series:
        """The ids as Polars reads them from the lines: `String` values over `data` (no copy)."""
        import pyarrow as pa  # loaded for CSV only, as by `held`

        count, size = (int(n) for n in self.found)
        offsets = np.concatenate([np.zeros(1, np.int64), self.ends[:count]])
        data = pa.py_buffer(self.data[:size])
        return pl.Series(pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), data))


def _compiled() -> Callable[..., int]:
    """`sift_lines`, compiled (or loaded from numba's cache) and run once.

    Run on a line of its own (kept: it has too few fields): a window's array passed to a first
    call, which compiles, stayed referenced and its memory map could not be closed. Read-only,
    as an array over a map is (numba compiles each kind apart).
    """
    from croctl.pipeline.sift_kernel import sift_lines  # numba: loaded when a CSV is sifted

    none, line = np.zeros(1, np.bool_), np.frombuffer(b"\n", np.uint8)
    ends, out, found = np.ones(1, np.int64), np.zeros(1, np.uint8), np.zeros(2, np.int64)
    sift_lines(line, 2, 0, 1, line, ends, line, 0, 0, 0, none, out, False, out, ends, found)
    return sift_lines
