"""A slot per distinct unit key, for ids the dense arrays cannot place by subtraction (numba).

Text ids (UUIDs, hex strings) and integer ids scattered over a wide range (hashed ids) have no
`id - lo`. `UnitIndex` numbers them instead: the exposures' keys get slots 0, 1, 2, ... in the
order they are first seen (`assign`), and a source's rows then find their unit's slot (`find`).
A key is two 64-bit words: a text id's fingerprint words (`keys.fingerprint_words`: the 128 bits
the hash query joins on), or an integer id and 0 (exact). A null id has no slot.

The table is open addressing with linear probing: `table[place]` holds a key's high word at a
place picked from it by Fibonacci hashing (which also spreads integer ids numbered in order),
`slots[place]` its slot, and `lows[slot]` its low word. Coverage reads every row of a source
(150 M at 10 M users) and compares the high word only (`mark`): one random read per row, as for
a hash set. A key whose high word equals `EMPTY` is kept aside, in a slot of its own.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from croctl.pipeline.kernel import I64, Bools

EMPTY = np.iinfo(np.int64).min  # a free place in the table
NO_SLOT = -1  # a null id; in `find`, also an id no exposure has
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio
_MAX_LOAD = 0.7  # keys per place before the table doubles (linear probing slows past ~0.75)
_ASIDE = 1  # in `state`: the slot of the key whose high word is EMPTY


class UnitIndex:
    """Slots for unit keys (high, low words), numbered in order of first sight."""

    def __init__(self, bits: int = 16) -> None:
        self.bits = bits
        self.table = np.full(1 << bits, EMPTY, np.int64)
        self.slots = np.zeros(1 << bits, np.int64)
        self.lows = np.zeros(1 << (bits - 1), np.int64)
        # slots given, the slot of the key whose high word is EMPTY
        self.state = np.array([0, NO_SLOT], np.int64)

    @property
    def size(self) -> int:
        """How many slots have been given."""
        return int(self.state[0])

    def assign(self, high: I64, low: I64, null: Bools) -> I64:
        """Each row's slot, giving new keys the next ones (`null`: the row's id is null)."""
        self._reserve(len(high))
        slots = np.empty(len(high), np.int64)
        _assign(self.table, self.slots, self.lows, self.state, self.bits, high, low, null, slots)
        return slots

    def find(self, high: I64, low: I64, null: Bools) -> I64:
        """Each row's slot, or `NO_SLOT` for a key no exposure has and for a null id."""
        slots = np.empty(len(high), np.int64)
        _find(self.table, self.slots, self.lows, self.state, self.bits, high, low, null, slots)
        return slots

    def places(self) -> Bools:
        """A fresh mark per place of the table (the last one: the EMPTY key), for `mark`."""
        return np.zeros(len(self.table) + 1, np.bool_)

    def mark(self, places: Bools, high: I64) -> None:
        """Mark the place of every key whose high word is in `high` (no nulls)."""
        _mark(self.table, self.bits, high, places)

    def covered(self, places: Bools) -> Bools:
        """Per slot: was it marked?"""
        covered = np.zeros(self.size, np.bool_)
        _harvest(self.slots, self.state, places, covered)
        return covered

    def _reserve(self, rows: int) -> None:
        """Room for `rows` more keys: a wider table, and more low words."""
        needed = self.size + rows + 1  # the aside slot may be among them
        if needed > len(self.lows):
            lows = np.zeros(max(needed, 2 * len(self.lows)), np.int64)
            lows[: self.size] = self.lows[: self.size]
            self.lows = lows
        bits = self.bits
        while needed > _MAX_LOAD * (1 << bits):
            bits += 1
        if bits == self.bits:
            return
        table, slots = np.full(1 << bits, EMPTY, np.int64), np.zeros(1 << bits, np.int64)
        _rehash(self.table, self.slots, table, slots, bits)
        self.table, self.slots, self.bits = table, slots, bits


@njit(cache=True, inline="always")
def _place(high: np.int64, bits: int) -> np.int64:  # pragma: no cover - compiled
    return np.int64((np.uint64(high) * _MULTIPLIER) >> np.uint64(64 - bits))


@njit(cache=True)
def _assign(
    table: I64, slots: I64, lows: I64, state: I64, bits: int,
    high: I64, low: I64, null: Bools, out: I64,
) -> None:  # fmt: skip  # pragma: no cover - compiled
    mask = len(table) - 1
    for r in range(len(high)):
        h, lo = high[r], low[r]
        if null[r]:
            out[r] = NO_SLOT
            continue
        if h == EMPTY:
            if state[_ASIDE] == NO_SLOT:
                state[_ASIDE] = state[0]
                state[0] += 1
            out[r] = state[_ASIDE]
            continue
        i = _place(h, bits)
        while table[i] != EMPTY and not (table[i] == h and lows[slots[i]] == lo):
            i = (i + 1) & mask
        if table[i] == EMPTY:
            table[i], slots[i] = h, state[0]
            lows[state[0]] = lo
            state[0] += 1
        out[r] = slots[i]


@njit(cache=True)
def _find(
    table: I64, slots: I64, lows: I64, state: I64, bits: int,
    high: I64, low: I64, null: Bools, out: I64,
) -> None:  # fmt: skip  # pragma: no cover - compiled
    mask = len(table) - 1
    for r in range(len(high)):
        h, lo = high[r], low[r]
        if null[r]:
            out[r] = NO_SLOT
            continue
        if h == EMPTY:
            out[r] = state[_ASIDE]
            continue
        i = _place(h, bits)
        while table[i] != EMPTY and not (table[i] == h and lows[slots[i]] == lo):
            i = (i + 1) & mask
        out[r] = NO_SLOT if table[i] == EMPTY else slots[i]


@njit(cache=True)
def _mark(table: I64, bits: int, high: I64, places: Bools) -> None:  # pragma: no cover
    mask = len(table) - 1
    for r in range(len(high)):
        h = high[r]
        if h == EMPTY:
            places[len(table)] = True
            continue
        i = _place(h, bits)
        while table[i] != EMPTY:
            if table[i] == h:
                places[i] = True
                break
            i = (i + 1) & mask


@njit(cache=True)
def _harvest(slots: I64, state: I64, places: Bools, covered: Bools) -> None:  # pragma: no cover
    for i in range(len(slots)):
        if places[i]:
            covered[slots[i]] = True
    if places[len(slots)] and state[_ASIDE] != NO_SLOT:
        covered[state[_ASIDE]] = True


@njit(cache=True)
def _rehash(table: I64, slots: I64, to: I64, to_slots: I64, bits: int) -> None:  # pragma: no cover
    mask = len(to) - 1
    for k in range(len(table)):
        if table[k] == EMPTY:
            continue
        i = _place(table[k], bits)
        while to[i] != EMPTY:
            i = (i + 1) & mask
        to[i], to_slots[i] = table[k], slots[k]
