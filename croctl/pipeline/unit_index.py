"""A slot per distinct unit key, for ids the dense arrays cannot place by subtraction (numba).

Text ids (UUIDs, hex strings) and integer ids scattered over a wide range (hashed ids) have no
`id - lo`. `UnitIndex` numbers them instead: the exposures' keys get slots 0, 1, 2, ... in the
order they are first seen (`assign`), and a source's rows then find their unit's slot (`find`).
A key is two 64-bit words: a text id's fingerprint words (`keys.fingerprint_words`: the 128 bits
the hash query joins on), or an integer id and 0 (exact). A null id has no slot.

The table is open addressing with linear probing: `table[place]` holds a key's high and low
words at a place picked from the high word by Fibonacci hashing (which also spreads integer ids
numbered in order), and `slots[place]` its slot. A row's key is one cache line in each, both at
the place its probe starts, so the loop asks for them a few rows ahead (`kernel.AHEAD`): the
exposures and a source's kept rows come in no order of the table (10 M users: ~3.2 s of
`assign` and ~1.9 s of `find` waited on memory before). Coverage reads every row of a source
(150 M at 10 M users) and compares the high word only, as the hash query's coverage does
(`Marker`). A key whose high word equals `EMPTY` is kept aside, in a slot of its own, whatever
its low word: exact for integers (low word 0), and two text ids would share it only if both
hashed to `EMPTY` (2^-64 each).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
from numba import njit

from croctl.pipeline.kernel import AHEAD, I64, U64, Bools
from croctl.pipeline.prefetch import prefetch

I32 = npt.NDArray[np.int32]

EMPTY = np.iinfo(np.int64).min  # a free place in the table
NO_SLOT = -1  # a null id; in `find`, also an id no exposure has
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio
_MAX_LOAD = 0.7  # keys per place before the table doubles (linear probing slows past ~0.75)
_ASIDE = 1  # in `state`: the slot of the key whose high word is EMPTY
_MIN_BITS = 16  # the smallest table: 2^16 places (1.3 MiB)
_PART_BITS = 14  # `Marker`: 2^14 groups of neighbouring places (16 KiB each at 16 M places)


class UnitIndex:
    """Slots for unit keys (high, low words), numbered in order of first sight."""

    def __init__(self, bits: int = _MIN_BITS) -> None:
        self.bits = bits
        self.table = _empty_table(bits)
        self.slots = np.zeros(1 << bits, np.int32)  # 2^31 units would not fit in memory
        # slots given, the slot of the key whose high word is EMPTY
        self.state = np.array([0, NO_SLOT], np.int64)

    @classmethod
    def for_keys(cls, keys: int) -> UnitIndex:
        """An empty index with room for `keys` keys before its table doubles."""
        return cls(_bits_for(keys + 1))  # the aside slot may be among them

    @property
    def size(self) -> int:
        """How many slots have been given."""
        return int(self.state[0])

    def assign(self, high: I64, low: I64, null: Bools) -> I64:
        """Each row's slot, giving new keys the next ones (`null`: the row's id is null)."""
        self._reserve(len(high))
        return self._slots(high, low, null, insert=True)

    def find(self, high: I64, low: I64, null: Bools) -> I64:
        """Each row's slot, or `NO_SLOT` for a key no exposure has and for a null id."""
        return self._slots(high, low, null, insert=False)

    def marker(self) -> Marker:
        """A fresh `Marker` of the keys a source has."""
        return Marker(self)

    def _slots(self, high: I64, low: I64, null: Bools, *, insert: bool) -> I64:
        out = np.empty(len(high), np.int64)
        _slots(self.table, self.slots, self.state, self.bits, high, low, null, insert, out)
        return out

    def _reserve(self, rows: int) -> None:
        """Room for `rows` more keys (a wider table)."""
        bits = _bits_for(self.size + rows + 1, self.bits)  # the aside slot may be among them
        if bits == self.bits:
            return
        table, slots = _empty_table(bits), np.zeros(1 << bits, np.int32)
        _rehash(self.table, self.slots, table, slots, bits)
        self.table, self.slots, self.bits = table, slots, bits


class Marker:
    """Marks the table's keys whose high word a source's rows have (coverage), in bulk.

    A source's rows name units in no order (150 M at 10 M users), and one random read of a
    table far larger than the cache per row cost ~50 ns. So the high words wait in a buffer;
    when it is full, they are grouped by the range of places they start probing at (16384
    ranges: 16 KiB each at 10 M units), and each group reads its range while it is in cache, a
    few words ahead (4096 ranges of 64 KiB without asking ahead: 37.5 ns a word against 24).
    A full buffer is marked on a thread of its own (the loop releases the GIL) while the next
    one fills: the read that gives the words runs on, instead of waiting for each flush.
    """

    BUFFER = 1 << 22  # high words per flush (32 MiB each: filling, being marked, grouped)

    def __init__(self, index: UnitIndex) -> None:
        self.index = index
        # one bit per place (the last one: the EMPTY key): 2 MiB for 16 M places
        self.places = np.zeros(len(index.table) // 64 + 1, np.uint64)
        self.buffer = np.empty(self.BUFFER, np.int64)
        self.spare = np.empty(self.BUFFER, np.int64)  # the buffer being marked, if any
        self.grouped = np.empty(self.BUFFER, np.int64)
        self.held = 0
        self.marking: Future[None] | None = None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="croctl-marker")

    def add(self, high: I64) -> None:
        """Mark the keys whose high word is in `high` (no nulls), now or at the next flush."""
        start = 0
        while start < len(high):
            take = min(len(high) - start, self.BUFFER - self.held)
            self.buffer[self.held : self.held + take] = high[start : start + take]
            self.held += take
            start += take
            if self.held == self.BUFFER:
                self._flush()

    def covered(self) -> Bools:
        """Per slot: was it marked?"""
        self._flush()
        self._wait()
        self.close()
        covered = np.zeros(self.index.size, np.bool_)
        _harvest(self.index.slots, self.index.state, self.places, covered)
        return covered

    def close(self) -> None:
        """Let the worker thread go (a read that failed leaves the marking unfinished)."""
        self.worker.shutdown(cancel_futures=True)

    def _flush(self) -> None:
        """Start marking the buffer's words, once the previous ones are marked."""
        self._wait()
        index, words, grouped = self.index, self.buffer[: self.held], self.grouped[: self.held]
        self.marking = self.worker.submit(
            _mark, index.table, index.bits, words, grouped, self.places
        )
        self.buffer, self.spare, self.held = self.spare, self.buffer, 0

    def _wait(self) -> None:
        if self.marking is not None:
            self.marking.result()
            self.marking = None


@njit(cache=True, inline="always")
def _place(high: np.int64, bits: int) -> np.int64:  # pragma: no cover - compiled
    return np.int64((np.uint64(high) * _MULTIPLIER) >> np.uint64(64 - bits))


@njit(cache=True, nogil=True)
def _slots(
    table: I64, slots: I32, state: I64, bits: int,
    high: I64, low: I64, null: Bools, insert: bool, out: I64,
) -> None:  # fmt: skip  # pragma: no cover - compiled
    """Each row's slot (`NO_SLOT`: a null id, or a new key when not `insert`ing)."""
    mask = len(table) - 1
    n = len(high)
    for r in range(n):
        if r + AHEAD < n:
            ahead = _place(high[r + AHEAD], bits)
            prefetch(table, ahead)
            prefetch(slots, ahead)
        h, lo = high[r], low[r]
        if null[r]:
            out[r] = NO_SLOT
            continue
        if h == EMPTY:
            if insert and state[_ASIDE] == NO_SLOT:
                state[_ASIDE] = state[0]
                state[0] += 1
            out[r] = state[_ASIDE]
            continue
        i = _place(h, bits)
        while table[i, 0] != EMPTY and not (table[i, 0] == h and table[i, 1] == lo):
            i = (i + 1) & mask
        if table[i, 0] == EMPTY and insert:
            table[i, 0], table[i, 1], slots[i] = h, lo, state[0]
            state[0] += 1
        out[r] = NO_SLOT if table[i, 0] == EMPTY else slots[i]


@njit(cache=True, inline="always")
def _is_set(places: U64, i: np.int64) -> bool:  # pragma: no cover - compiled
    return bool(places[i >> 6] >> np.uint64(i & 63) & np.uint64(1))


@njit(cache=True, nogil=True)
def _mark(table: I64, bits: int, high: I64, grouped: I64, places: U64) -> None:  # pragma: no cover
    """Set the place bit of each key in `high`, group by group of neighbouring places.

    The groups: a counting sort of the keys by their place's top bits, into `grouped`.
    """
    part_bits = max(bits - _PART_BITS, 0)  # the low bits of a place: its offset in a group
    starts = np.zeros((1 << (bits - part_bits)) + 1, np.int64)
    for r in range(len(high)):
        starts[(_place(high[r], bits) >> part_bits) + 1] += 1
    for g in range(1, len(starts)):
        starts[g] += starts[g - 1]
    for r in range(len(high)):
        group = _place(high[r], bits) >> part_bits
        grouped[starts[group]] = high[r]
        starts[group] += 1
    mask, n = len(table) - 1, len(grouped)
    for r in range(n):
        if r + AHEAD < n:
            prefetch(table, _place(grouped[r + AHEAD], bits))
        h = grouped[r]
        at = np.int64(len(table))  # the bit past the places: the key whose high word is EMPTY
        if h != EMPTY:
            at = _place(h, bits)
            while table[at, 0] != EMPTY and table[at, 0] != h:
                at = (at + 1) & mask
            if table[at, 0] == EMPTY:
                continue  # no exposure has this key
        # Set here, not by a helper: handed `places`, even inlined, it took and gave back a
        # reference to it key by key (~2 ns of ~18 a key).
        places[at >> 6] |= np.uint64(1) << np.uint64(at & 63)


@njit(cache=True, nogil=True)
def _harvest(slots: I32, state: I64, places: U64, covered: Bools) -> None:  # pragma: no cover
    for i in range(len(slots)):
        if _is_set(places, np.int64(i)):
            covered[slots[i]] = True
    if _is_set(places, np.int64(len(slots))) and state[_ASIDE] != NO_SLOT:
        covered[state[_ASIDE]] = True


@njit(cache=True, nogil=True)
def _rehash(table: I64, slots: I32, to: I64, to_slots: I32, bits: int) -> None:  # pragma: no cover
    mask = len(to) - 1
    for k in range(len(table)):
        if k + AHEAD < len(table) and table[k + AHEAD, 0] != EMPTY:
            prefetch(to, _place(table[k + AHEAD, 0], bits))  # the keys land anywhere in `to`
        if table[k, 0] == EMPTY:
            continue
        i = _place(table[k, 0], bits)
        while to[i, 0] != EMPTY:
            i = (i + 1) & mask
        to[i, 0], to[i, 1], to_slots[i] = table[k, 0], table[k, 1], slots[k]


def _bits_for(keys: int, bits: int = _MIN_BITS) -> int:
    """The fewest bits, from `bits` up, of a table that holds `keys` keys."""
    while keys > _MAX_LOAD * (1 << bits):
        bits += 1
    return bits


def _empty_table(bits: int) -> I64:
    """`1 << bits` free places: (high, low) words, the high word `EMPTY`."""
    table = np.zeros((1 << bits, 2), np.int64)
    table[:, 0] = EMPTY
    return table
