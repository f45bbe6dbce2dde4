"""The compiled loop of `sift`: which lines of a CSV no metric can use, and their unit ids.

Bytes in, bytes out, so that Polars parses only the lines kept. A line is dropped only when
every test below says so with certainty; any doubt keeps it, and Polars then reads it (and
fails on it) as it would have read the whole file:

- it has exactly the header's number of fields;
- its key field (the column every metric filter tests) is none of the literals;
- its unit id is written as `numbered_ids` reads a number: after the ids' prefix (`user_42`),
  `0` or `-?[1-9][0-9]*`, or exactly the padded width (`u000042`); up to 18 digits (19-digit
  ids are kept for Polars to check against 2^63). Ids kept as text: any ASCII text.

A dropped line's unit id marks coverage (`seen[id - lo]`, or the spare slot `seen[width]` for a
null or an id outside the exposures' range), as `held` marks a kept line's; a text id is
copied out instead, for `sift` to key as Polars' read would.

A field may be quoted whole (`"purchase"`, as R's `write.csv` and `QUOTE_ALL` writers write
every text), and is then read without its quotes (`""` is an empty text: its line is kept when
it is the id). Any other quote ends the loop (-1) and the file goes to Polars whole: a line
break inside quotes (lines would not be rows), a doubled quote, text after a closing quote, a
quote inside an unquoted field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

COMMA, NEWLINE, RETURN, QUOTE, MINUS, ZERO = 44, 10, 13, 34, 45, 48
MAX_DIGITS = 18  # below 2^63 whatever the digits
_FORTY_FIVES, _TOP_BITS = np.uint64(0x2D2D2D2D2D2D2D2D), np.uint64(0x8080808080808080)

Bytes = npt.NDArray[np.uint8]
Typed = tuple[object, object]  # an intrinsic's signature and code generator


@njit(cache=True, nogil=True)
def sift_lines(
    text: Bytes,
    columns: int,
    unit: int,
    key: int,
    literals: Bytes,
    ends: npt.NDArray[np.int64],
    prefix: Bytes,
    padded: int,
    lo: int,
    width: int,
    seen: npt.NDArray[np.bool_],
    out: Bytes,
    text_ids: bool,
    ids: Bytes,
    id_ends: npt.NDArray[np.int64],
    found: npt.NDArray[np.int64],
) -> int:  # pragma: no cover - compiled; run by every sifted CSV readout
    """Copy the lines of `text` to keep into `out`; return how many bytes they take.

    -1: a quote the loop does not read (the module's docstring).

    `text` is whole lines, the last ending in a line break. `literals` holds the key's values
    end to end, literal `i` ending at `ends[i]`. With `text_ids`, a dropped line's id is copied
    to `ids` instead of marked (`_copy_unit`; `found` counts the ids and their bytes).
    """
    kept, start, stop = 0, 0, text.shape[0]
    while start < stop:
        field, j, field_start, close = 0, start, start, -1
        key_start, key_end, unit_start, unit_end, unit_quoted = 0, -1, 0, -1, False
        while True:
            j = _next_stop(text, j, stop - 8)
            if text[j] == COMMA or text[j] == NEWLINE:
                if field in (key, unit):
                    begin, finish = (field_start + 1, close) if close >= 0 else (field_start, j)
                    if field == key:
                        key_start, key_end = begin, finish
                    else:
                        unit_start, unit_end, unit_quoted = begin, finish, close >= 0
                field += 1
                if text[j] == NEWLINE:
                    break
                field_start, close = j + 1, -1
                j += 1
            elif text[j] == QUOTE:
                if j != field_start or close >= 0:
                    return -1  # a quote inside a field: Polars reads it its own way
                close = _closing_quote(text, j + 1, stop - 8)
                if close < 0:
                    return -1
                j = close + 1
                if not (
                    text[j] == COMMA
                    or text[j] == NEWLINE
                    or (text[j] == RETURN and text[j + 1] == NEWLINE)
                ):
                    return -1  # text after the closing quote, or a doubled quote
            else:
                j += 1
        end = j  # the line break
        if key_end == end and key_end > key_start and text[key_end - 1] == RETURN:
            key_end -= 1
        if unit_end == end and unit_end > unit_start and text[unit_end - 1] == RETURN:
            unit_end -= 1
        keep = field != columns or _is_literal(text, key_start, key_end, literals, ends)
        if not keep:  # `""`: an empty text, not a null
            keep = unit_quoted and unit_start == unit_end
        if not keep and text_ids:
            keep = not _copy_unit(text, unit_start, unit_end, ids, id_ends, found)
        elif not keep:
            keep = not _mark_unit(text, unit_start, unit_end, prefix, padded, lo, width, seen)
        if keep:
            length = end + 1 - start
            out[kept : kept + length] = text[start : end + 1]
            kept += length
        start = end + 1
    return kept


@njit(cache=True, nogil=True, inline="always")
def _closing_quote(text: Bytes, at: int, last_word: int) -> int:  # pragma: no cover - compiled
    """The index of the first quote from `at`; -1 if a line break comes first (inside quotes)."""
    while True:
        at = _next_stop(text, at, last_word)  # quotes and line breaks are below a comma
        if text[at] == QUOTE:
            return at
        if text[at] == NEWLINE:
            return -1
        at += 1


@njit(cache=True, nogil=True, inline="always")
def _next_stop(text: Bytes, at: int, last_word: int) -> int:  # pragma: no cover - compiled
    """The first index from `at` whose byte is a space, one of !"#$%&'()*+, a comma or below.

    Every other byte of an unquoted field is above a comma. Eight bytes at a time while a word
    fits before `last_word` (`text` ends in a line break, which stops the byte loop after it):
    a byte below 45 sets its top bit in `(x - 0x2d..2d) & ~x & 0x80..80`. A borrow can set
    bits above a true one, never below, so the lowest set bit is exact.
    """
    while at <= last_word:
        word = _load_word(text, at)
        below = (word - _FORTY_FIVES) & ~word & _TOP_BITS
        if below:
            return at + int(_trailing_zeros(below) >> np.uint64(3))
        at += 8
    while text[at] > COMMA:
        at += 1
    return at


def _load_word_typing(typingctx: object, text: types.Array, at: types.Integer) -> Typed:
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]  # pragma: no cover
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        word = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(word, align=1)

    return types.uint64(text, at), codegen


def _trailing_zeros_typing(typingctx: object, word: types.Integer) -> Typed:
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]  # pragma: no cover
        i64 = ir.IntType(64)
        count = ir.FunctionType(i64, [i64, ir.IntType(1)])
        function = cgutils.get_or_insert_function(builder.module, count, "llvm.cttz.i64")  # type: ignore[no-untyped-call]
        return builder.call(function, [args[0], ir.Constant(ir.IntType(1), 1)])

    return types.uint64(word), codegen


# `text[at:at + 8]` as one little-endian unsigned 64-bit word (an unaligned load)
_load_word = cast(Callable[[Bytes, int], np.uint64], intrinsic(_load_word_typing))
# how many low bits of a nonzero 64-bit word are 0 (LLVM's `cttz`: one instruction)
_trailing_zeros = cast(Callable[[np.uint64], np.uint64], intrinsic(_trailing_zeros_typing))


@njit(cache=True, nogil=True, inline="always")
def _is_literal(
    text: Bytes, start: int, end: int, literals: Bytes, ends: npt.NDArray[np.int64]
) -> bool:  # pragma: no cover - compiled
    """Are the bytes `text[start:end]` one of the literals?"""
    begin = 0
    for i in range(ends.shape[0]):
        if ends[i] - begin == end - start:
            same = True
            for k in range(end - start):
                if text[start + k] != literals[begin + k]:
                    same = False
                    break
            if same:
                return True
        begin = ends[i]
    return False


@njit(cache=True, nogil=True, inline="always")
def _copy_unit(
    text: Bytes,
    start: int,
    end: int,
    ids: Bytes,
    id_ends: npt.NDArray[np.int64],
    found: npt.NDArray[np.int64],
) -> bool:  # pragma: no cover - compiled
    """Copy the unit id `text[start:end]` to the end of `ids`; False to leave it to Polars.

    `id_ends[i]` is where id `i` ends; `found` holds how many ids and bytes there are. An
    empty field is a null id, which marks nothing. Text with a byte past ASCII is left to
    Polars, which checks that it is UTF-8.
    """
    if start == end:
        return True
    for k in range(start, end):
        if text[k] >= 128:
            return False
    count, size = found[0], found[1]
    ids[size : size + end - start] = text[start:end]
    id_ends[count] = size + end - start
    found[0], found[1] = count + 1, size + end - start
    return True


@njit(cache=True, nogil=True, inline="always")
def _mark_unit(
    text: Bytes,
    start: int,
    end: int,
    prefix: Bytes,
    padded: int,
    lo: int,
    width: int,
    seen: npt.NDArray[np.bool_],
) -> bool:  # pragma: no cover - compiled
    """Mark the unit id `text[start:end]` seen; False if `numbered_ids` would not read it.

    Its number follows `prefix`, written canonically, or in exactly `padded` digits (> 0).
    """
    if start == end:  # an empty field: a null id
        seen[width] = True
        return True
    if end - start < prefix.shape[0]:
        return False
    for k in range(prefix.shape[0]):
        if text[start + k] != prefix[k]:
            return False
    at = start + prefix.shape[0]
    negative = at < end and text[at] == MINUS
    if negative:
        at += 1
    digits = end - at
    if digits == 0 or digits > MAX_DIGITS or (padded and (negative or digits != padded)):
        return False  # a prefix alone, too long, `-7` or another width where ids are padded
    if not padded and text[at] == ZERO and (digits > 1 or negative):
        return False  # `007`, `-0`: not canonical
    number = 0
    for k in range(at, end):
        digit = int(text[k]) - ZERO
        if digit < 0 or digit > 9:
            return False
        number = number * 10 + digit
    offset = (-number if negative else number) - lo
    seen[offset if 0 <= offset < width else width] = True
    return True
