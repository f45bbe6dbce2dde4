"""Numbered text ids read straight off Arrow's string views (numba): coverage, and conversion.

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

`numbers` is the strict conversion (`Numbering.numbered`) in the same loop, for readouts that
load numba anyway: 0.08-0.3 s per 15 M ids against Polars' 0.3-0.4 s.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit, prange

from croctl.pipeline.coverage import Bitmap, Span
from croctl.pipeline.held import INLINE
from croctl.pipeline.kernel import I64, U64, Bools
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
    _mark(seen, _views(ids), *_written(numbering), lo)


def numbers(ids: pl.Series, numbering: Numbering) -> pl.Series:
    """`Numbering.numbered`'s conversion in one compiled pass: the ids' numbers (null stays null).

    Raises:
        polars.exceptions.ComputeError: an id is not written as `numbering` writes them.
    """
    import pyarrow as pa

    views = _views(ids)
    values = np.empty(len(ids), np.int64)
    other = np.full(_PIECES, -1, np.int64)
    _numbers(values, other, views, *_written(numbering))
    if other.max(initial=-1) >= 0:
        at = int(other[other >= 0].min())
        raise pl.exceptions.ComputeError(
            f"{ids.name}: {ids[at]!r} is not written as {numbering} writes the ids"
        )
    nulls = ids.is_null().to_numpy() if ids.has_nulls() else None
    return pl.Series(ids.name, pa.array(values, mask=nulls))


Views = tuple[Bytes, U64, Bytes, I64, Bytes, int, int]


def _views(ids: pl.Series) -> Views:
    """Text ids' Arrow string views, as the loops read them.

    The views as bytes and as words, the data buffers end to end and where each starts, the
    validity bits (empty: no nulls), the offset and the length.
    """
    import pyarrow as pa

    array = ids.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.string_view():
        raise TypeError(f"{ids.name}: {array.type}, not text views")
    validity, views, *buffers = array.buffers()
    sizes = [0 if b is None else b.size for b in buffers]
    return (
        np.frombuffer(views, np.uint8),
        np.frombuffer(views, np.uint64),
        np.concatenate([np.frombuffer(b, np.uint8) for b in buffers if b is not None] or [_NONE]),
        np.cumsum([0, *sizes[:-1]], dtype=np.int64),
        _NONE if validity is None or array.null_count == 0 else np.frombuffer(validity, np.uint8),
        array.offset,
        len(array),
    )


def _written(numbering: Numbering) -> tuple[Bytes, int]:
    """The prefix's bytes and the width (-1: written canonically), as `_number` reads them."""
    return (
        np.frombuffer(numbering.prefix.encode(), np.uint8),
        -1 if numbering.width is None else numbering.width,
    )


_NONE = np.zeros(0, np.uint8)


@njit(cache=True, inline="always")
def _pieces(n: int) -> tuple[int, int]:  # pragma: no cover - compiled
    """How many ids each piece holds, and how many pieces there are (at most `_PIECES`)."""
    piece = max(_PIECE, (n + _PIECES - 1) // _PIECES)
    return piece, (n + piece - 1) // piece


@njit(cache=True, nogil=True, parallel=True)
def _mark(
    seen: Bools, text: Views, prefix: Bytes, width: int, lo: int
) -> None:  # pragma: no cover - compiled; run by every dense readout of numbered text ids
    """Mark each valid id's number; `width` -1: written canonically (no sign but -, no 0 lead)."""
    views, words, data, starts, validity, offset, n = text
    hi = lo + len(seen) - 1
    piece, pieces = _pieces(n)
    for p in prange(pieces):  # in parallel: many may mark the same unit, all with True
        last0, last1, have_last = np.uint64(0), np.uint64(0), False
        for i in range(p * piece, min(n, (p + 1) * piece)):
            at = offset + i
            if len(validity) and not (validity[at >> 3] >> (at & 7)) & 1:
                continue
            if have_last and words[2 * at] == last0 and words[2 * at + 1] == last1:
                continue  # the same text as the id before
            last0, last1, have_last = words[2 * at], words[2 * at + 1], True
            found, number = _read(views, data, starts, at, prefix, width)
            if found and lo <= number <= hi:
                seen[number - lo] = True


@njit(cache=True, nogil=True, parallel=True)
def _numbers(
    values: I64, other: I64, text: Views, prefix: Bytes, width: int
) -> None:  # pragma: no cover - compiled; run by dense readouts of numbered text ids
    """`values[i]`: id i's number (0 when null).

    `other[p]`: the first id of piece p not written so (-1: none); the piece stops there.
    """
    views, words, data, starts, validity, offset, n = text
    piece, pieces = _pieces(n)
    for p in prange(pieces):
        last0, last1, have_last, number = np.uint64(0), np.uint64(0), False, 0
        for i in range(p * piece, min(n, (p + 1) * piece)):
            at = offset + i
            if len(validity) and not (validity[at >> 3] >> (at & 7)) & 1:
                values[i] = 0
                continue
            if not (have_last and words[2 * at] == last0 and words[2 * at + 1] == last1):
                last0, last1, have_last = words[2 * at], words[2 * at + 1], True
                found, number = _read(views, data, starts, at, prefix, width)
                if not found:
                    other[p] = i
                    break
            values[i] = number


@njit(cache=True, inline="always")
def _read(
    views: Bytes, data: Bytes, starts: I64, at: int, prefix: Bytes, width: int
) -> tuple[bool, int]:  # pragma: no cover - compiled
    """Is view `at`'s text `prefix` and a number written so, and which number?"""
    base = at * _VIEW
    size = _u32(views, base)
    if size <= INLINE:
        return _number(views, base + 4, size, prefix, width)
    buffer = _u32(views, base + 8)
    return _number(data, starts[buffer] + _u32(views, base + 12), size, prefix, width)


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
