"""A CSV's lines that no metric can use, dropped before Polars tokenizes them.

Polars' CSV reader tokenizes every field of every line before a filter runs: at 1 M users
(15 M lines, 0.9 GB) most of a readout. When every metric on a source filters one text column
to literals (`event_name = 'purchase'`, `event_name IN ('refund', 'purchase')`, the common
case), a compiled loop (`sift_kernel`) reads each line only up to the fields it needs, keeps the
lines whose key is one of the literals, and marks the other lines' unit ids in the coverage
bitmap. Polars then reads the kept lines (~8 % of the benchmark's) as it reads the files, and
the metric filters run on them as before: the loop only has to keep a superset.

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


def sieve_of(bound: BoundPlan, source: BoundSource, span: Span | None) -> Sieve | None:
    """The sieve for a CSV source, or None when its lines must all go to Polars.

    Every measure on the source must filter the same text column to literals; the unit ids must
    be numbered (`numbered_ids`), marked in a bitmap (a compact span).
    """
    numbering, sieve = bound.numbering, _literal_sieve(bound, source)
    if numbering is None or sieve is None or span is None or not span.compact:
        return None
    return replace(sieve, prefix=numbering.prefix, padded=numbering.width or 0)


def sifted_scan(
    bound: BoundPlan, source: BoundSource, span: Span | None, seen: npt.NDArray[np.bool_]
) -> ExportScan:
    """The source's scan over the lines `sift_csv` keeps, the others' ids marked in `seen`.

    Its own scan when it cannot be sifted (`seen` then untouched).
    """
    assert source.scan is not None
    sieve = sieve_of(bound, source, span)
    if sieve is None or span is None:  # (`sieve_of` has checked the span: for the types)
        return source.scan
    text = sift_csv(source.files.paths, sieve, span, seen)
    if text is None:
        seen[:] = False  # a sift given up midway may have marked some ids
        return source.scan
    # the lines as Polars reads the files, each needed column typed as the files' scan types it
    raw = pl.scan_csv(text, schema_overrides=source.scan.stored, infer_schema=False)
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
    if any(_literal_sieve(bound, s) for s in bound.sources.values()):
        threading.Thread(target=_compiled).start()


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
    paths: Sequence[Path], sieve: Sieve, span: Span, seen: npt.NDArray[np.bool_]
) -> bytes | None:
    """The files' header and the lines `sieve` keeps, as one CSV text; None to read them whole.

    Dropped lines' ids are marked in `seen` (`Bitmap`'s layout plus a spare slot).
    """
    header: bytes | None = None
    parts: list[memoryview] = []
    for path in paths:
        sifted = _sift_file(path, sieve, span, seen)
        if sifted is None or (header is not None and sifted[0] != header):
            return None
        header = sifted[0]
        parts += sifted[1]
    return None if header is None else b"".join([header, *parts])


def _sift_file(
    path: Path, sieve: Sieve, span: Span, seen: npt.NDArray[np.bool_]
) -> tuple[bytes, list[memoryview]] | None:
    """A file's header line and its kept lines, window by window (None: read it whole)."""
    size = path.stat().st_size
    if size == 0:
        return None
    parts: list[memoryview] = []
    with path.open("rb") as file:
        first = file.readline(WINDOW)
        if not first.endswith(b"\n") or first.count(b'"') % 2:  # a quoted name goes on
            return None
        names = next(csv.reader([first.decode("utf-8-sig", "replace").rstrip("\r\n")]))
        if len(set(names)) < len(names):
            return None
        if sieve.key not in names or sieve.unit not in names:
            return None
        sift = _Sifter(sieve, names, span, seen)
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
                    parts.append(memoryview(window[at - base :] + b"\n"))
                    end = length
                else:
                    kept = sift(window, at - base, end)
                    if kept is None:
                        return None
                    parts += kept
            at = base + end
    return first, parts


class _Sifter:
    """`sift_lines` over a window of whole lines, in two threads (one per core)."""

    def __init__(
        self, sieve: Sieve, names: list[str], span: Span, seen: npt.NDArray[np.bool_]
    ) -> None:
        values = [v.encode() for v in sorted(sieve.values)]
        self.literals = np.frombuffer(b"".join(values) or b"\0", np.uint8)
        self.ends = np.cumsum([len(v) for v in values], dtype=np.int64)
        self.prefix, self.padded = np.frombuffer(sieve.prefix.encode(), np.uint8), sieve.padded
        self.columns, self.key, self.unit = (
            len(names),
            names.index(sieve.key),
            names.index(sieve.unit),
        )
        self.lo, self.width, self.seen = span.lo, span.width, seen
        self.lines = _compiled()

    def __call__(self, window: mmap.mmap, begin: int, end: int) -> list[memoryview] | None:
        """The kept lines of `window[begin:end]` (whole lines), a half on each thread.

        None: a quote the loop does not read. Each half's kept lines go to a new buffer (only
        the pages written are backed), copied once, into the text Polars reads.
        """
        half = window.find(b"\n", (begin + end) // 2) + 1
        pieces = [
            np.frombuffer(window, np.uint8, half - begin, begin),
            np.frombuffer(window, np.uint8, end - half, half),
        ]
        outs = [np.empty(len(piece), np.uint8) for piece in pieces]
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
            )

        other = threading.Thread(target=run, args=(1,))
        other.start()
        run(0)
        other.join()
        return None if min(kept) < 0 else [out[:n].data for out, n in zip(outs, kept, strict=True)]


def _compiled() -> Callable[..., int]:
    """`sift_lines`, compiled (or loaded from numba's cache) and run once.

    Run on a line of its own (kept: it has too few fields): a window's array passed to a first
    call, which compiles, stayed referenced and its memory map could not be closed. Read-only,
    as an array over a map is (numba compiles each kind apart).
    """
    from croctl.pipeline.sift_kernel import sift_lines  # numba: loaded when a CSV is sifted

    none, line = np.zeros(1, np.bool_), np.frombuffer(b"\n", np.uint8)
    ends, out = np.ones(1, np.int64), np.zeros(1, np.uint8)
    sift_lines(line, 2, 0, 1, line, ends, line, 0, 0, 0, none, out)
    return sift_lines
