"""Where a unit lives in the dense arrays (`dense`): at `id - lo`, or at its key's slot.

- `RangeSlots`: integer ids filling most of a range. The slot is a subtraction in the scan
  (ids outside the range: none), and coverage comes from the bitmaps (`coverage`), marked by a
  pass of their own in another thread while the exposures and kept rows are read, or for a CSV
  from marking the slots of every row as the one read passes (`mark`).
- `KeyedSlots`: any other ids (text, or integers spread wide). The scan hands each row's key
  words over, and a `unit_index.UnitIndex` numbers the exposures' keys and finds the rows' ones.

A null unit id has no slot (a negative one): an exposure row without an id is no unit, and a
source's row without one belongs to none, as in the hash query's joins. The loops skip rows
without a slot.
"""

from __future__ import annotations

from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from croctl.io import stored_row_bytes
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.coverage import Bitmap, Span, id_batches
from croctl.pipeline.keys import fingerprint_words, high_word, low_word, source_ids, unit_id
from croctl.pipeline.names import UNIT

if TYPE_CHECKING:
    from croctl.pipeline.kernel import I64, Bools
    from croctl.pipeline.unit_index import I32, Marker, UnitIndex

IDX = "__idx"  # a row's unit: its place in the per-unit arrays
_HIGH, _LOW, _NULL = "__key_high", "__key_low", "__key_null"


@dataclass(slots=True)
class RangeSlots:
    """Unit `id` at `id - lo`.

    `marking`: the bitmaps of the sources read apart for coverage (`dense.slots_for` starts
    that pass in another thread); `bitmaps`: those of the CSV sources, marked as they are read.
    """

    bound: BoundPlan
    span: Span
    marking: Future[dict[str, Bitmap]]
    bitmaps: dict[str, Bitmap] = field(default_factory=dict)

    names = (IDX,)  # the columns `columns` adds
    scattered = False  # rows may come by unit (numbered as written): `dense_rows.far_apart` tells

    @property
    def size(self) -> int:
        """How many slots there are (fixed by the range)."""
        return self.span.width

    @property
    def room(self) -> int:
        """How many units to make room for before the exposures are read."""
        return self.size

    def columns(self, source: BoundSource) -> list[pl.Expr]:
        """The columns a batch of the source's rows carries for `of`."""
        ids = unit_id(self.bound, source)
        inside = ids.is_between(self.span.lo, self.span.hi)
        place = pl.when(inside).then(ids - pl.lit(self.span.lo, self.bound.unit_dtype))
        return [place.cast(pl.Int64).fill_null(-1).alias(IDX)]

    def of(self, batch: pl.DataFrame, exposures: bool = False) -> I64:
        """The slot of each row of a batch."""
        return batch.get_column(IDX).to_numpy()

    def mark(self, name: str, batch: pl.DataFrame) -> None:
        """Mark the units a batch of source `name`'s rows (with `columns`) has rows for."""
        from croctl.pipeline.kernel import mark

        if name not in self.bitmaps:
            self.bitmaps[name] = Bitmap(self.span.lo, np.zeros(self.size, np.bool_))
        mark(self.bitmaps[name].seen, batch.get_column(IDX).to_numpy(), 0, self.size - 1)

    def covered(self, name: str) -> Bools:
        """Per slot: has source `name` a row for the unit? Raises the marking pass's error."""
        if name not in self.bitmaps:
            self.bitmaps |= self.marking.result()
        return self.bitmaps[name].seen

    def release(self) -> None:
        """Wait for the marking pass, so that no read outlives the readout (the bitmaps stay)."""
        wait([self.marking])


@dataclass(slots=True)
class KeyedSlots:
    """Slots numbered by a `UnitIndex`: the exposures' keys in order of first sight.

    `rows`: how many exposure rows there are. The table and the per-unit arrays start with
    room for half as many units (most units are exposed once or a few times), so they double
    at most once, where growing from small ones rehashed the table seven times: 1.2 s of 3.7 s
    at 16 M exposure rows of 10 M text ids. Fewer units leave them a few times too long.
    """

    bound: BoundPlan
    rows: int = 0
    index: UnitIndex = field(init=False)
    markers: dict[str, Marker] = field(init=False, default_factory=dict)

    names = (_HIGH, _LOW, _NULL)  # the columns `columns` adds
    scattered = True  # a unit's rows may be anywhere (slots follow first sight, not the rows)

    def __post_init__(self) -> None:
        from croctl.pipeline.unit_index import UnitIndex  # numba loads for the dense path only

        self.index = UnitIndex.for_keys(self.room)

    @property
    def size(self) -> int:
        """How many slots the exposures have given so far."""
        return self.index.size

    @property
    def room(self) -> int:
        """How many units to make room for before the exposures are read."""
        return self.rows // 2

    def columns(self, source: BoundSource) -> list[pl.Expr]:
        """The columns a batch of the source's rows carries for `of`: its key words."""
        ids = unit_id(self.bound, source)
        if self.bound.unit_dtype.is_integer():
            high, low = _integer_word(ids, self.bound.unit_dtype), pl.lit(0, pl.Int64)
        else:
            high, low = fingerprint_words(ids)
        return [
            high.fill_null(0).alias(_HIGH),
            low.fill_null(0).alias(_LOW),
            ids.is_null().alias(_NULL),
        ]

    def of(self, batch: pl.DataFrame, exposures: bool = False) -> I64:
        """The slot of each row of a batch (new keys get one in the exposures), or `NO_SLOT`."""
        words = [batch.get_column(c).to_numpy() for c in (_HIGH, _LOW, _NULL)]
        return self.index.assign(*words) if exposures else self.index.find(*words)

    def mark(self, name: str, batch: pl.DataFrame) -> None:
        """Mark the units a batch of source `name`'s rows (with `columns`) has rows for."""
        high, null = batch.get_column(_HIGH).to_numpy(), batch.get_column(_NULL).to_numpy()
        self.mark_words(name, high[~null] if null.any() else high)

    def mark_words(self, name: str, high: I64) -> None:
        """Mark the units whose keys' high words (no null ids') source `name` has rows for."""
        if name not in self.markers:
            self.markers[name] = self.index.marker()
        self.markers[name].add(high)

    def kept_slots(self, source: BoundSource, keep: pl.Expr) -> I32:
        """One read of every row's unit id: marks coverage, and gives the kept rows' slots.

        In row order, the slot (`of`) of each row `keep` holds for. For ids stored long
        (`long_ids`): the kept rows' read then leaves the ids out, instead of decoding every
        row's again (Polars decodes a column stored plainly whole, filter or not).
        """
        from croctl.pipeline.held import KEEP

        assert source.scan is not None
        rows, _ = source.scan.before(keep)
        ids = unit_id(self.bound, source)
        # every row's high word (coverage); the low word only of the kept rows' ids, hashed
        # here: a second hash of every row's id cost ~1.9 s at 150 M rows
        high = high_word(ids).fill_null(0).alias(_HIGH)
        stream = rows.select(
            high, ids.is_null().alias(_NULL), ids.alias(UNIT), keep.fill_null(False).alias(KEEP)
        )
        found = [np.zeros(0, np.int32)]
        # in order: the kept rows' read gives the same rows in the same order
        for batch in stream.collect_batches(engine="streaming", maintain_order=True):
            self.mark(source.name, batch)
            mask = batch.get_column(KEEP)
            kept = [batch.get_column(c).filter(mask) for c in (_HIGH, _NULL, UNIT)]
            low = low_word(kept[2]).fill_null(0).to_numpy()
            slots = self.index.find(kept[0].to_numpy(), low, kept[1].to_numpy())
            found.append(slots.astype(np.int32))  # half the memory: slots fit 32 bits
        return np.concatenate(found)

    def covered(self, name: str) -> Bools:
        """Per slot: has source `name` a row for the unit? `mark`ed, else a pass over its ids."""
        if name in self.markers:
            return self.markers.pop(name).covered()
        ids = source_ids(self.bound, self.bound.sources[name])
        if self.bound.unit_dtype.is_integer():
            ids = ids.select(_integer_word(pl.col(UNIT), self.bound.unit_dtype).alias(UNIT))
        marker = self.index.marker()
        try:
            for batch in id_batches(ids):
                marker.add(batch)
            return marker.covered()
        finally:
            marker.close()

    def release(self) -> None:
        """Let the table of keys go once every source's rows and coverage are read, or failed.

        Also lets go of the marker threads of sources whose read failed before `covered`.
        """
        from croctl.pipeline.unit_index import UnitIndex

        for marker in self.markers.values():
            marker.close()
        self.markers.clear()
        self.index = UnitIndex()


Slots = RangeSlots | KeyedSlots


def long_ids(bound: BoundPlan, source: BoundSource) -> bool:
    """Are a Parquet source's text unit ids stored over `LONG_ID_BYTES` a row (first footer)?

    pyarrow writes a UUID's text into a dictionary until the row group's dictionary page is
    full, then plainly (40 bytes a row), and Polars decodes such a column whole even where a
    filter drops most rows, on about one core of two (10 M users, 150 M rows: ~7 s).
    """
    if bound.unit_dtype.is_integer():
        return False
    stored = stored_row_bytes(source.files, bound.plan.sources[source.name].unit)
    return stored is not None and stored > LONG_ID_BYTES


# Polars' own writer keeps 32-character ids in a dictionary, ~10 bytes a row: read apart, such
# a readout takes as long (10 M realistic users: 19.1-19.5 s against 19.2-20.0 s) and peaks
# lower (1859-1995 MiB against 1926-2088 MiB: the table of keys goes before the sums come)
LONG_ID_BYTES = 8


def _integer_word(ids: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An integer id as one signed 64-bit word (UInt64 ones by their bits)."""
    return ids.reinterpret(signed=True) if dtype == pl.UInt64 else ids.cast(pl.Int64)
