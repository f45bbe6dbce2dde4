"""Multiple-testing corrections of a family of p-values (nan entries are left out of the family)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from croctl.plan import Correction


def adjust_p_values(p_values: Sequence[float], method: Correction) -> list[float]:
    """Adjusted p-values, in input order; never below the raw value, capped at 1.

    Bonferroni: m·p. Holm (1979) step-down: max over j ≤ i of (m − j + 1)·p₍ⱼ₎.
    Benjamini–Hochberg (1995) step-up: min over j ≥ i of m·p₍ⱼ₎/j.
    """
    finite = [(i, p) for i, p in enumerate(p_values) if math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    m = len(finite)
    order = sorted(finite, key=lambda item: item[1])
    if method is Correction.NONE:
        values = [p for _, p in order]
    elif method is Correction.BONFERRONI:
        values = [min(1.0, m * p) for _, p in order]
    elif method is Correction.HOLM:
        values, running = [], 0.0
        for rank, (_, p) in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p))
            values.append(running)
    else:
        values, running = [0.0] * m, 1.0
        for rank in range(m - 1, -1, -1):
            running = min(running, m * order[rank][1] / (rank + 1))
            values[rank] = min(1.0, running)
    for (index, _), value in zip(order, values, strict=True):
        adjusted[index] = value
    return adjusted
