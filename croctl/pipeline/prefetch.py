"""A cache prefetch for the compiled loops (numba has none of its own).

Rows that come scattered over the units (an export in time order, not grouped by user) make
`kernel.add_rows` wait on memory: each row's unit arrays are a cache miss, ~100 ns, and the
loop's body is too long for the CPU to run far enough ahead on its own. Asking for the lines
of a row a few rows ahead overlaps the misses (rows in random order of 10 M units: 44 ns a row
against 150 ns). Call it in the loop itself: a helper handed the arrays, even one numba
inlines, takes and gives back a reference to each of them per call (~45 ns a row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx, array, index):  # type: ignore[no-untyped-def]  # pragma: no cover
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        kind = signature.args[0]
        data = context.make_array(kind)(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, data.strides, kind.ndim)[0]
        byte = ir.IntType(8).as_pointer()
        at = builder.gep(builder.bitcast(data.data, byte), [builder.mul(args[1], stride)])
        i32 = ir.IntType(32)
        signature_ = ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32])
        function = cgutils.get_or_insert_function(builder.module, signature_, "llvm.prefetch.p0i8")
        builder.call(function, [at, i32(0), i32(3), i32(1)])  # a read, kept in every cache, data
        return context.get_dummy_value()

    return types.void(array, index), codegen


# `prefetch(array, i)`: start loading the cache line of `array[i]` (row i of a 2-d array). It
# never faults, so `i` may lie outside the array; it only costs the load when it is unused.
prefetch = cast(Callable[[npt.NDArray[Any], int | np.integer[Any]], None], _prefetch)
