"""Compiled loops over a dense unit index (numba), for `dense`.

Each unit has a slot in every per-unit array (`slots`: `id - lo`, or a number given by key), so
a row finds its unit without a hash table per step. Two loops fold the rows in, batch by batch,
in any order:

- `first_exposures`: each unit's earliest in-window exposure (start, segments, covariates) and
  the lowest and highest variant code it was shown; and the `exposures` section's counts.
  `settle` then marks the valid units.
- `add_rows`: a source's kept rows. For each row of a valid unit: count it for the trust checks;
  is its event id the first of its kind (an `IdSet`); then, for every measure, does it count
  (filter bit, first of its id, timestamp inside the measure's span of the unit's start), and if
  so add 1 or its value to the unit's sum.

`mark` fills the coverage bitmaps (`coverage.bitmap_of`) for the same readouts.

Every loop releases the GIL (`nogil`): they touch arrays only, and the thread that imports the
statistics (`croctl.evaluate`) can then run beside them instead of waiting for the next batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from croctl.pipeline.prefetch import prefetch
from croctl.pipeline.unit_sums import Sums

NO_TIME = np.iinfo(np.int64).min  # a row without a timestamp: it never counts where time matters
NEVER = np.iinfo(np.int64).max // 2  # a span without an end (still safe to add a start to)
UNSEEN = np.iinfo(np.int64).max  # the first start of a unit without in-window exposures
NULL_ID_BIT = 62  # in a row's flags: its event id is null
NULL_CODE = np.iinfo(np.uint32).max  # the variant code of a row without a variant

I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@njit(cache=True, nogil=True)
def first_exposures(
    unit: I64,
    start: I64,
    variant: U32,
    words: U64,
    covariates: F64,
    window: I64,
    counts: I64,
    first: I64,
    low: U32,
    high: U32,
    word_of: U64,
    covariate_of: F64,
) -> None:  # pragma: no cover - compiled; run by every dense readout
    """Fold a batch of exposure rows into the `exposures` counts and each unit's earliest one.

    Every row counts in `counts[k, code]` (the last code: a null variant): k = 0 rows, 1 without
    a start (`NO_TIME`), 2 before the window, 3 at or after its end, 4 + c covariate c NaN or
    infinite. `window` holds the window's start and end and `as_of` (`NO_TIME`, `UNSEEN`,
    `UNSEEN` when the plan has none). Rows in the window with a variant and a unit (a slot `u`
    not negative) then fold into it: `first[u]` is its earliest start (`UNSEEN` before any
    row), `low[u]`/`high[u]` its lowest and highest variant code, `word_of[k, u]` and
    `covariate_of[c, u]` the packed segment codes and covariates of its earliest row
    (`words[k, r]`, `covariates[c, r]`).
    """
    begin, end, as_of = window[0], window[1], window[2]
    missing = counts.shape[1] - 1
    for r in range(len(unit)):
        v = variant[r]
        t = start[r]
        code = missing if v == NULL_CODE else v
        counts[0, code] += 1
        if t == NO_TIME:
            counts[1, code] += 1
        elif t < begin:
            counts[2, code] += 1
        elif end != UNSEEN and t >= end:
            counts[3, code] += 1
        for c in range(covariates.shape[0]):
            if not np.isfinite(covariates[c, r]):
                counts[4 + c, code] += 1
        u = unit[r]
        if t == NO_TIME or t < begin or t >= end or t >= as_of or v == NULL_CODE or u < 0:
            continue
        low[u] = min(low[u], v)
        high[u] = max(high[u], v)
        if t < first[u]:
            first[u] = t
            for k in range(words.shape[0]):
                word_of[k, u] = words[k, r]
            for c in range(covariates.shape[0]):
                covariate_of[c, u] = covariates[c, r]


@njit(cache=True, nogil=True)
def settle(
    first: I64, low: U32, high: U32, valid: Bools
) -> tuple[int, int, int, int]:  # pragma: no cover - compiled
    """Mark the valid units; count the units seen and those shown several variants.

    A unit is valid when it was seen in the window and shown one variant. Also returns the
    earliest and latest first start (`UNSEEN` and `NO_TIME` when no unit was seen).
    """
    seen = multiple = 0
    earliest, latest = UNSEEN, NO_TIME
    for u in range(len(first)):
        valid[u] = False
        if first[u] == UNSEEN:
            continue
        seen += 1
        valid[u] = low[u] == high[u]
        multiple += not valid[u]
        earliest = min(earliest, first[u])
        latest = max(latest, first[u])
    return seen, multiple, earliest, latest


@dataclass(frozen=True, slots=True)
class MeasureSpans:
    """Per measure j: which filter bit and value it reads, and when a row counts.

    A row counts for measure j when its filter bit `flag[j]` is set, it is the first row of its
    event id, and `start + since[j] <= ts < start + until[j]` and `ts < before[j]` (times in
    microseconds; `since`/`until` relative to the unit's start). `value[j]` is the row of the
    values matrix to add, or -1 to add 1. `row[j]`: the measure's row in the sums it adds to,
    the counts when it adds 1, else the sums of values (`unit_sums.UnitSums`).
    """

    flag: I64
    value: I64
    since: I64
    until: I64
    before: I64
    row: I64


class IdSet:
    """The event ids seen so far: a bitmap over a range of integer ids, else a hash table.

    Integer ids usually are a dense range: one bit each (150 M ids: 19 MB) beats a hash table of
    128-bit keys by an order of magnitude in memory, and memory is time here (every fresh page
    costs a fault). The range grows as batches arrive; once it would hold more than `SPARSE`
    bits per id, the ids move to the hash table. Text ids (by fingerprint) start there.

    The hash table: `keys[slot]` holds (high, low), both `FREE` in a free slot; the slot is the
    high word modulo a prime, so integer ids that arrive in order fill neighbouring slots and
    any stride spreads. A text id's high word is already a hash. An integer id's low word is 0,
    so only a text id whose two hashes are both `FREE` (2^-128) would go unseen: 16 bytes a
    key instead of 24 with a flag (12 M text ids: ~0.2 GB less).
    """

    SPARSE = 64
    MIN_BITS = 1 << 26  # 8 MB: any range this small stays a bitmap

    def __init__(self, integer: bool, rows: int = 0) -> None:
        """`rows`: how many ids to expect, if known (the table grows only past it)."""
        self.bits = np.zeros(0, np.uint64)
        self.keys = _free_keys(0 if integer else _next_prime(max(1 << 16, int(_ROOM * rows))))
        # ids held, a null id seen, 1 once hashed, the bitmap's first id
        self.state = np.array([0, 0, 0 if integer else 1, 0], np.int64)

    def reserve(self, ids: I64, present: Bools) -> None:
        """Make room for a batch's ids (`high` words; `present`: not null)."""
        if not self.state[2]:
            if present.any():
                self._cover(ids[present])
            if not self.state[2]:
                return
        needed = int(_ROOM * (int(self.state[0]) + len(ids)))
        if needed <= len(self.keys):
            return
        keys = _free_keys(_next_prime(max(needed, 2 * len(self.keys))))
        _rehash(self.keys, keys)
        self.keys = keys

    def _cover(self, ids: I64) -> None:
        lo, hi = int(ids.min()), int(ids.max())
        base, have = int(self.state[3]), 64 * len(self.bits)
        if have:
            lo, hi = min(lo, base), max(hi, base + have - 1)
        lo -= lo % 64
        width = hi - lo + 1
        if width > max(self.SPARSE * (int(self.state[0]) + len(ids)), self.MIN_BITS):
            self.keys = _free_keys(_next_prime(4 * (int(self.state[0]) + len(ids))))
            _bits_to_keys(self.bits, np.int64(base), self.keys)
            self.bits, self.state[2] = np.zeros(0, np.uint64), 1
            return
        if have and lo >= base and hi < base + have:
            return
        words = max(-(-width // 64), 2 * len(self.bits))  # room to grow upwards
        bits = np.zeros(words, np.uint64)
        shift = (base - lo) // 64 if have else 0
        bits[shift : shift + len(self.bits)] = self.bits
        self.bits, self.state[3] = bits, lo


FREE = np.iinfo(np.int64).min  # both words of a free slot of `IdSet.keys`
_ROOM = 1.5  # slots per id in `IdSet.keys`: two thirds full at most (12 M text ids: 0.3 GB)


def _free_keys(n: int) -> I64:
    return np.full((n, 2), FREE, np.int64)


def _next_prime(n: int) -> int:
    n |= 1
    while any(n % d == 0 for d in range(3, int(n**0.5) + 1, 2)):
        n += 2
    return n


@njit(cache=True, inline="always")
def _home(keys: I64, high: np.int64) -> np.int64:  # pragma: no cover - compiled
    """Where a key's probe starts: its high word modulo the table's (prime) length."""
    return np.int64(np.uint64(high) % np.uint64(len(keys)))


@njit(cache=True, nogil=True)
def _insert(keys: I64, high: np.int64, low: np.int64) -> bool:  # pragma: no cover - compiled
    """Add the key; True when it was not there before."""
    i = _home(keys, high)
    while keys[i, 0] != FREE or keys[i, 1] != FREE:
        if keys[i, 0] == high and keys[i, 1] == low:
            return False
        i += 1
        if i == len(keys):
            i = np.int64(0)
    keys[i, 0], keys[i, 1] = high, low
    return True


@njit(cache=True, nogil=True)
def _bits_to_keys(bits: U64, base: np.int64, keys: I64) -> None:  # pragma: no cover - compiled
    for w in range(len(bits)):
        for b in range(64):
            if bits[w] >> np.uint64(b) & np.uint64(1):
                _insert(keys, base + 64 * w + b, np.int64(0))


@njit(cache=True, nogil=True)
def _rehash(keys: I64, to: I64) -> None:  # pragma: no cover - compiled
    for i in range(len(keys)):
        if keys[i, 0] != FREE or keys[i, 1] != FREE:
            _insert(to, keys[i, 0], keys[i, 1])


def unit_pairs(start: I64, variant: U32, valid: Bools) -> I64:
    """Per slot, the unit's start and variant code (-1: not valid) side by side (`add_rows`)."""
    pairs = np.empty((len(start), 2), np.int64)
    _pair(start, variant, valid, pairs)  # numpy's strided writes and temporaries: ~10x longer
    return pairs


@njit(cache=True, nogil=True)
def _pair(start: I64, variant: U32, valid: Bools, pairs: I64) -> None:  # pragma: no cover
    for u in range(len(start)):
        pairs[u, 0] = start[u]
        pairs[u, 1] = variant[u] if valid[u] else -1


@njit(cache=True, nogil=True, parallel=True)  # two threads: 0.42 -> 0.24 s at 10 M units
def transpose(by_unit: Sums, out: Sums, start: int, end: int) -> None:  # pragma: no cover
    """`out[j, u] = by_unit[u, j]` for units [start, end), a block of units at a time.

    A block's lines stay in cache; numpy's strided copy took ~0.9 s at 10 M units, 7 measures.
    """
    measures = by_unit.shape[1]
    for block in prange((end - start + _BLOCK - 1) // _BLOCK):
        first = start + block * _BLOCK
        last = min(first + _BLOCK, end)
        for j in range(measures):
            for u in range(first, last):
                out[j, u] = by_unit[u, j]


_BLOCK = 2048  # units: a block of 16 KiB per measure (7 measures: 112 KiB) stays in cache


@njit(cache=True, nogil=True)
def add_rows(  # noqa: PLR0915  # one loop: a helper called per row costs refcounts
    unit: I64,
    ts: I64,
    flags: U64,
    id_high: I64,
    id_low: I64,
    values: F64,
    units: I64,
    spans: tuple[I64, I64, I64, I64, I64, I64],
    has_time: bool,
    has_id: bool,
    id_bits: U64,
    id_keys: I64,
    id_state: I64,
    counts: U32,
    sums: F64,
    checks: I64,
    ahead: bool,
) -> None:  # pragma: no cover - compiled; run by every dense readout
    """Add one batch of rows into the per-unit `counts` and `sums` and the per-variant `checks`.

    Measure j adds 1 to `counts[row[j], unit]`, or a value to `sums[row[j], unit]`
    (`MeasureSpans`); a count wraps past 2**32 - 1 rows of one unit, as Polars' does.

    `ahead`: prefetch each row's lines a few rows early (rows `dense_rows.far_apart`; else the
    CPU's own prefetcher follows the rows and the asking only costs). A microbenchmark over 10 M
    units: rows in random order of the units 44 ns a row asked ahead, 150 ns not; in the units'
    order 16 ns asked ahead, 13 ns not.

    `units[u]`: unit u's start and variant code, the code -1 when the unit is not valid (one
    cache line for both: `unit_pairs`). Rows without a unit (a negative slot) or of units that
    are not valid are skipped, as the hash query's inner join drops them.
    `flags` bit j is metric filter j; bit 32 + k: value column k is NaN or infinite; bit 62: a
    null event id. `checks[k, variant]` counts rows, rows before exposure, repeated ids and each
    value column's NaN/inf, in that order (the ones that apply).
    """
    flag, value, since, until, before, row = spans
    one = np.uint64(1)
    # row u: the unit's counts, and its sums (each together when the rows come scattered)
    counted, by_unit = counts.T, sums.T
    n = len(unit)
    slots = np.uint64(len(id_keys))
    for r in range(n):
        # Rows scattered over the units miss the cache: ask for a later row's lines early.
        # Written out here: a helper, even inlined, took a reference to each array it was
        # handed and gave it back, row after row (~45 ns a row, more than the loop's own work).
        a = r + AHEAD
        if ahead and a < n:
            if unit[a] >= 0:
                prefetch(units, unit[a])
                prefetch(counted, unit[a])
                prefetch(by_unit, unit[a])
            if has_id and not flags[a] >> np.uint64(NULL_ID_BIT) & one:
                if id_state[2]:
                    prefetch(id_keys, np.uint64(id_high[a]) % slots)  # `_home`
                else:
                    prefetch(id_bits, (id_high[a] - id_state[3]) >> 6)
        u = unit[r]
        if u < 0 or units[u, 1] < 0:
            continue
        v = units[u, 1]
        checks[0, v] += 1
        k = 1
        t = ts[r]
        s = units[u, 0]
        timed = t != NO_TIME
        if has_time:
            if timed and t < s:
                checks[k, v] += 1
            k += 1
        first = True
        if has_id:
            if flags[r] >> np.uint64(NULL_ID_BIT) & one:
                first = id_state[1] == 0
                id_state[1] = 1
            elif id_state[2]:
                first = _insert(id_keys, id_high[r], id_low[r])
            else:
                o = id_high[r] - id_state[3]
                bit = one << np.uint64(o & 63)
                first = not (id_bits[o >> 6] & bit)
                id_bits[o >> 6] |= bit
            id_state[0] += first
            if not first:
                checks[k, v] += 1
            k += 1
        for c in range(values.shape[0]):
            if flags[r] >> np.uint64(32 + c) & one:
                checks[k + c, v] += 1
        if not first:
            continue
        for j in range(len(flag)):
            if not (flags[r] >> np.uint64(flag[j]) & one):
                continue
            if has_time and not (timed and s + since[j] <= t < s + until[j] and t < before[j]):
                continue
            if value[j] < 0:
                counts[row[j], u] += 1
            else:
                sums[row[j], u] += values[value[j], r]


AHEAD = 8  # rows: far enough for the lines to arrive in time, few enough that none is dropped


@njit(cache=True, nogil=True)
def mark(seen: Bools, ids: I64, lo: int, hi: int) -> None:  # pragma: no cover
    """`seen[id - lo] = True` for the ids in [lo, hi]: 5x numpy's filter and fancy assignment."""
    for i in range(len(ids)):
        if lo <= ids[i] <= hi:
            seen[ids[i] - lo] = True
