"""The few distribution functions the readout needs, taken from `scipy.special`.

`scipy.stats` computes the same numbers through these same special functions (`norm.sf(x)` is
`ndtr(-x)`, `chi2.sf(q, df)` is `chdtrc(df, q)`), but importing it costs about a second of CPU on
every run, which is most of croctl's fixed cost on a small export; `scipy.special` costs a third
of that. tests/test_stats.py checks each function here against `scipy.stats` on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import special


def normal_cdf(x: float) -> float:
    """P(Z ≤ x) for a standard normal Z."""
    return float(special.ndtr(x))


def normal_sf(x: float) -> float:
    """P(Z > x), accurate in the far upper tail (not 1 − cdf)."""
    return float(special.ndtr(-x))


def normal_quantile(q: float) -> float:
    """The x with P(Z ≤ x) = q."""
    return float(special.ndtri(q))


def chi2_sf(statistic: float, df: int) -> float:
    """P(χ²(df) > statistic)."""
    return float(special.chdtrc(df, statistic))


def pearson_chi2(observed: Sequence[float], expected: Sequence[float]) -> tuple[float, float]:
    """Goodness of fit: Σ (o − e)² / e on k − 1 degrees of freedom; returns (statistic, p).

    As `scipy.stats.chisquare`: an expected count of zero makes the statistic undefined (nan).
    """
    statistic = _pearson(observed, expected)
    return statistic, chi2_sf(statistic, len(observed) - 1)


def contingency_p(hits: Sequence[int], misses: Sequence[int]) -> float:
    """p-value that the share hits / (hits + misses) is the same in every column of a 2×k table.

    Pearson's test of independence, as `scipy.stats.chi2_contingency`: on a 2×2 table (one degree
    of freedom) with Yates' continuity correction, each cell moved toward its expected count by
    at most ½ and never past it. Rows or columns summing to zero leave it undefined (nan).
    """
    rows = (sum(hits), sum(misses))
    columns = [h + m for h, m in zip(hits, misses, strict=True)]
    total = sum(rows)
    observed: list[float] = [*hits, *misses]
    expected = [r * c / total if total else 0.0 for r in rows for c in columns]
    if len(columns) == 2:
        observed = [
            o + math.copysign(min(0.5, abs(e - o)), e - o)
            for o, e in zip(observed, expected, strict=True)
        ]
    return chi2_sf(_pearson(observed, expected), len(columns) - 1)


def _pearson(observed: Sequence[float], expected: Sequence[float]) -> float:
    if any(e <= 0 for e in expected):
        return math.nan
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
