"""`unit_index.UnitIndex` numbers keys as a dict would, and its `Marker` marks as a set would."""

from __future__ import annotations

import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from croctl.pipeline.unit_index import EMPTY, NO_SLOT, Marker, UnitIndex

WORDS = st.one_of(
    st.integers(-3, 3),  # few distinct high words: long probe chains, same high with other lows
    st.just(int(EMPTY)),  # the table's free-place marker, kept aside
    st.integers(-(2**63), 2**63 - 1),
)
# a high word equal to EMPTY is one slot whatever the low word (`unit_index`: 2^-64 per text id)
KEYS = st.one_of(
    st.none(),
    st.tuples(WORDS, st.integers(-2, 2)).map(lambda k: (k[0], 0) if k[0] == EMPTY else k),
)


class _SmallMarker(Marker):
    BUFFER = 7  # several flushes, some in the middle of a batch


def _words(keys: list[tuple[int, int] | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    high = np.array([0 if k is None else k[0] for k in keys], np.int64)
    low = np.array([0 if k is None else k[1] for k in keys], np.int64)
    return high, low, np.array([k is None for k in keys], np.bool_)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(KEYS, max_size=300), max_size=4),
    st.lists(KEYS, max_size=60),
    st.lists(WORDS, max_size=60),
)
def test_slots_and_marks_match_a_dict_and_a_set(batches, probes, rows):
    index = UnitIndex(bits=4)  # small: the table grows (rehashes) within a few batches
    expected: dict[tuple[int, int], int] = {}
    for batch in batches:
        slots = index.assign(*_words(batch))
        for key, slot in zip(batch, slots, strict=True):
            if key is None:
                assert slot == NO_SLOT
                continue
            assert expected.setdefault(key, len(expected)) == slot  # numbered in order of sight
    assert index.size == len(expected)
    found = index.find(*_words(probes))
    assert list(found) == [NO_SLOT if k is None else expected.get(k, NO_SLOT) for k in probes]

    marker = _SmallMarker(index)
    for start in range(0, len(rows), 5):
        marker.add(np.array(rows[start : start + 5], np.int64))
    covered = marker.covered()
    highs = set(rows)
    marked = {slot for key, slot in expected.items() if key[0] in highs}
    # a high word marks one key that has it (the one met first): at most one slot per word
    assert set(np.flatnonzero(covered)) <= marked
    assert len(set(np.flatnonzero(covered))) == len({k[0] for k in expected} & highs)


def _marker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("croctl-marker")]


def test_slots_released_after_a_failed_read_leave_no_marker_thread():
    from croctl.pipeline.slots import KeyedSlots

    before = _marker_threads()
    slots = KeyedSlots(bound=None)  # type: ignore[arg-type]  # marking reads no plan
    slots.index.assign(*_words([(1, 0), (2, 0)]))
    slots.markers["events"] = _SmallMarker(slots.index)
    slots.markers["events"].add(np.arange(20, dtype=np.int64))  # flushed: its thread started
    assert len(_marker_threads()) > len(before)
    slots.release()  # as `dense_results` does when a read fails before `covered`
    assert _marker_threads() == before
    assert slots.markers == {}
