"""A source's per-unit sums: counts and sums of values, each laid out as the rows come.

Most measures count rows (conversions, orders, refunds, errors): they are held as 32-bit
integers, exact and half the memory of float64 sums: at 10 M units, 40 MB a count instead of 80.
The loop is the first to touch that memory, and on this VM each fresh GiB costs ~0.7-3.5 s of
page faults: the benchmark's plan (five counts, one sum of values) reads out ~5 % faster, a plan
of twenty metrics ~20 % faster and 0.35 GiB lower. (The hash query's counts are 32-bit too:
Polars sums booleans as UInt32.)

Rows in no order of the units (an export in time order, text ids' slots) touch their unit's sums
at random: a cache line for its counts and one for its values beat one per measure. The
unit table wants each measure's values contiguous, so the sums are copied at the end
(`measure_major`), and holding both copies was the readout's peak: twice the sums (10 M units and
a plan of 25 metrics, 27 measures: 4.3 GB). The unit-major sums live in an anonymous mapping
instead of numpy's heap, and its pages go back to the system a chunk of units at a time, as
soon as they are copied.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Sums = npt.NDArray[Any]  # [measure, unit], of counts or of values

_CHUNK = 64 << 20  # bytes of unit-major sums copied between two releases


@dataclass(frozen=True, slots=True)
class UnitSums:
    """Per measure j and unit u, `counts[row[j], u]` (a count) or `values[row[j], u]` (a sum)."""

    counts: Sums  # uint32
    values: Sums  # float64
    counted: list[bool]  # per measure: a count of rows, or a sum of values

    @classmethod
    def zeros(cls, counted: list[bool], units: int, scattered: bool) -> UnitSums:
        """Zero sums of `units` units, laid out unit by unit when the rows come `scattered`."""
        counts, values = sum(counted), len(counted) - sum(counted)
        zeros = unit_major_zeros if scattered else lambda u, m, dtype: np.zeros((m, u), dtype)
        return cls(zeros(units, counts, np.uint32), zeros(units, values, np.float64), counted)

    def per_measure(self) -> list[Sums]:
        """Each measure's sums over the units, contiguous; unit-major ones are consumed."""
        counts, values = measure_major(self.counts), measure_major(self.values)
        rows = measure_rows(self.counted)
        return [counts[k] if c else values[k] for c, k in zip(self.counted, rows, strict=True)]


def measure_rows(counted: list[bool]) -> list[int]:
    """Each measure's row in its sums (`MeasureSpans.row`): counts and values numbered apart."""
    rows, seen = [], [0, 0]  # per kind (values, counts): the measures numbered so far
    for kind in counted:
        rows.append(seen[kind])
        seen[kind] += 1
    return rows


def unit_major_zeros(units: int, measures: int, dtype: type[np.generic] = np.float64) -> Sums:
    """`sums[j, u]`, zero, each unit's measures side by side (a view of a [u, j] array)."""
    size = units * measures * np.dtype(dtype).itemsize
    if size == 0 or not hasattr(mmap, "MADV_DONTNEED"):  # none to give back (or no way to)
        return np.zeros((units, measures), dtype).T
    # private: a shared mapping's pages are kept (as shared memory) when given back
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # zero until written
    if hasattr(mmap, "MADV_HUGEPAGE"):  # as numpy asks for its large arrays: fewer TLB misses
        buffer.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(buffer, dtype).reshape(units, measures).T


def measure_major(sums: Sums) -> Sums:
    """`sums[j, u]` with each measure's values contiguous; consumes sums laid out unit by unit.

    Sums from `unit_major_zeros` give their pages back as they are copied: do not read `sums`
    after this.
    """
    from croctl.pipeline.kernel import transpose

    if sums.flags.c_contiguous:
        return sums
    by_unit = sums.T
    units, measures = by_unit.shape
    out = np.empty(sums.shape, sums.dtype)  # its pages are taken as they are written
    buffer = _mapping(by_unit)
    width = measures * sums.itemsize  # bytes of one unit's sums
    step = max(1, _CHUNK // width)
    released = 0
    for start in range(0, units, step):
        end = min(start + step, units)
        transpose(by_unit, out, start, end)
        if buffer is not None:
            released = _release(buffer, released, end * width)
    return out


def _mapping(array: Sums) -> mmap.mmap | None:
    """The anonymous mapping an array's memory is, if it is one (`unit_major_zeros`)."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else base
    return owner if isinstance(owner, mmap.mmap) else None


def _release(buffer: mmap.mmap, start: int, end: int) -> int:
    """Give back the whole pages of bytes [start, end) of `buffer`; return where the next starts.

    Read again, they would be zeros: only bytes already copied are released.
    """
    end -= end % mmap.PAGESIZE
    if end > start:
        buffer.madvise(mmap.MADV_DONTNEED, start, end - start)
    return max(start, end)
