"""Per-unit sums laid out unit by unit, in memory given back as it is copied out measure by measure.

Rows in no order of the units (an export in time order, text ids' slots) touch their unit's sums
at random: one cache line for all its measures beats one per measure (`dense_rows._zeros`). The
unit table wants each measure's values contiguous, so the sums are copied at the end
(`measure_major`), and holding both copies was the readout's peak: twice the sums (10 M units and
a plan of 25 metrics, 27 measures: 4.3 GB). The unit-major sums live in an anonymous mapping
instead of numpy's heap, and its pages go back to the system a chunk of units at a time, as
soon as they are copied.
"""

from __future__ import annotations

import mmap

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_CHUNK = 64 << 20  # bytes of unit-major sums copied between two releases


def unit_major_zeros(units: int, measures: int) -> F64:
    """`sums[j, u]`, zero, each unit's measures side by side (a view of a [u, j] array)."""
    size = units * measures * 8
    if size == 0 or not hasattr(mmap, "MADV_DONTNEED"):  # none to give back (or no way to)
        return np.zeros((units, measures)).T
    # private: a shared mapping's pages are kept (as shared memory) when given back
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)  # zero until written
    if hasattr(mmap, "MADV_HUGEPAGE"):  # as numpy asks for its large arrays: fewer TLB misses
        buffer.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(buffer, np.float64).reshape(units, measures).T


def measure_major(sums: F64) -> F64:
    """`sums[j, u]` with each measure's values contiguous; consumes sums laid out unit by unit.

    Sums from `unit_major_zeros` give their pages back as they are copied: do not read `sums`
    after this.
    """
    from croctl.pipeline.kernel import transpose

    if sums.flags.c_contiguous:
        return sums
    by_unit = sums.T
    units, measures = by_unit.shape
    out = np.empty(sums.shape)  # its pages are taken as they are written
    buffer = _mapping(by_unit)
    step = max(1, _CHUNK // (8 * measures))
    released = 0
    for start in range(0, units, step):
        end = min(start + step, units)
        transpose(by_unit, out, start, end)
        if buffer is not None:
            released = _release(buffer, released, end * measures * 8)
    return out


def _mapping(array: F64) -> mmap.mmap | None:
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
