"""Numbered text unit ids read straight off Arrow's string views (numba), for coverage.

Coverage reads every row's unit id (150 M at 10 M users). Polars' checked conversion of
numbered text (`numbered_ids.Numbering.numbered`) strips the prefix, checks and parses in
several passes (~60 ns a row: 4.1 s of a 13.6 s readout); one compiled loop over the views
reads each id where it lies (in its view up to 12 bytes, else in a data buffer) and marks its
number in the bitmap. An id not written as the numbering writes them marks nothing: it cannot
be the text of an exposed unit, since every exposure id was converted strictly.

An id whose view equals the one before it is the same text (the views of equal inline text are
equal; out-of-line views point at the same bytes), so it is not parsed again. Exports that keep
each unit's rows together (as warehouse exports sorted by user do) parse one id in fifteen:
0.015 s per 15 M ids against 0.11-0.15 s; in time order it costs nothing measurable.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit, prange

from croctl.pipeline.coverage import Bitmap, Span
from croctl.pipeline.held import INLINE
from croctl.pipeline.kernel import Bools
from croctl.pipeline.numbered_ids import Numbering

Bytes = npt.NDArray[np.uint8]
_VIEW = 16  # bytes per value: length, then the text (up to 12 bytes) or prefix, buffer, offset
_PIECE = 1 << 12  # the fewest ids a thread takes at once; it remembers its last view
_PIECES = 64  # the most runs of ids the threads share


def numbered_bitmap(text_ids: pl.LazyFrame, numbering: Numbering, span: Span) -> Bitmap:
    """`coverage.bitmap_of` for text ids (one column) that `numbering` turns into numbers."""
    seen = np.zeros(span.width, np.bool_)
    for batch in text_ids.collect_batches(maintain_order=False, engine="streaming"):
        mark_numbered(seen, batch.to_series(), numbering, span.lo)
    return Bitmap(span.lo, seen)


def mark_numbered(seen: Bools, ids: pl.Series, numbering: Numbering, lo: int) -> None:
    """`seen[n - lo] = True` for each id of `ids` (text) written as `numbering`'s number n."""
    import pyarrow as pa

    array = ids.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.string_view():
        raise TypeError(f"{ids.name}: {array.type}, not text views")
    validity, views, *buffers = array.buffers()
    sizes = [0 if b is None else b.size for b in buffers]
    _mark(
        seen,
        np.frombuffer(views, np.uint8),
        np.frombuffer(views, np.uint64),
        np.concatenate([np.frombuffer(b, np.uint8) for b in buffers if b is not None] or [_NONE]),
        np.cumsum([0, *sizes[:-1]], dtype=np.int64),
        _NONE if validity is None or array.null_count == 0 else np.frombuffer(validity, np.uint8),
        array.offset,
        len(array),
        np.frombuffer(numbering.prefix.encode(), np.uint8),
        -1 if numbering.width is None else numbering.width,
        lo,
    )


_NONE = np.zeros(0, np.uint8)


@njit(cache=True, nogil=True, parallel=True)
def _mark(
    seen: Bools,
    views: Bytes,
    words: npt.NDArray[np.uint64],
    data: Bytes,
    starts: npt.NDArray[np.int64],
    validity: Bytes,
    offset: int,
    n: int,
    prefix: Bytes,
    width: int,
    lo: int,
) -> None:  # pragma: no cover - compiled; run by every dense readout of numbered text ids
    """Mark each valid id's number; `width` -1: written canonically (no sign but -, no 0 lead)."""
    hi = lo + len(seen) - 1
    piece = max(_PIECE, (n + _PIECES - 1) // _PIECES)
    # runs in parallel: many may mark the same unit, all with True
    for p in prange((n + piece - 1) // piece):
        last0, last1, have_last = np.uint64(0), np.uint64(0), False
        for i in range(p * piece, min(n, (p + 1) * piece)):
            at = offset + i
            if len(validity) and not (validity[at >> 3] >> (at & 7)) & 1:
                continue
            word0, word1 = words[2 * at], words[2 * at + 1]
            if have_last and word0 == last0 and word1 == last1:
                continue  # the same text as the id before
            last0, last1, have_last = word0, word1, True
            base = at * _VIEW
            size = _u32(views, base)
            if size <= INLINE:
                text, first = views, base + 4
            else:
                buffer = _u32(views, base + 8)
                text, first = data, starts[buffer] + _u32(views, base + 12)
            found, number = _number(text, first, size, prefix, width)
            if found and lo <= number <= hi:
                seen[number - lo] = True


@njit(cache=True, inline="always")
def _u32(bytes_: Bytes, at: int) -> np.int64:  # pragma: no cover - compiled
    """The little-endian 32-bit number at `bytes_[at:at + 4]`."""
    return (
        np.int64(bytes_[at])
        | np.int64(bytes_[at + 1]) << 8
        | np.int64(bytes_[at + 2]) << 16
        | np.int64(bytes_[at + 3]) << 24
    )


@njit(cache=True, inline="always")
def _number(
    text: Bytes, first: int | np.int64, size: np.int64, prefix: Bytes, width: int
) -> tuple[bool, int]:  # pragma: no cover - compiled
    """Is text[first:first + size] `prefix` and a number written so, and which number?"""
    skip = len(prefix)
    if size <= skip:
        return False, 0
    for k in range(skip):
        if text[first + k] != prefix[k]:
            return False, 0
    at, end = first + skip, first + size
    negative = width < 0 and text[at] == 45  # "-"
    if negative:
        at += 1
    digits = end - at
    if digits == 0 or digits > 19 or (width >= 0 and digits != width):
        return False, 0
    if width < 0 and text[at] == 48 and (digits > 1 or negative):  # "0" leading, or "-0"
        return False, 0
    if digits == 19:
        return _long_number(text, at, end, negative)
    value = 0
    for k in range(at, end):
        digit = int(text[k]) - 48
        if digit < 0 or digit > 9:
            return False, 0
        value = value * 10 + digit
    return True, -value if negative else value


@njit(cache=True)
def _long_number(
    text: Bytes, at: int | np.int64, end: int | np.int64, negative: bool
) -> tuple[bool, int]:  # pragma: no cover - compiled
    """19 digits: they fit 64 unsigned bits; Int64 holds up to 2^63 - 1, or 2^63 negated."""
    value = np.uint64(0)
    for k in range(at, end):
        digit = np.int64(text[k]) - 48
        if digit < 0 or digit > 9:
            return False, 0
        value = value * np.uint64(10) + np.uint64(digit)
    if value > np.uint64(9223372036854775807) + np.uint64(negative):
        return False, 0
    if negative:
        return True, int(-np.int64(value - np.uint64(1)) - np.int64(1))
    return True, int(np.int64(value))
