"""Sample size, minimum detectable effect and power of the readout's own tests.

The readout compares arms with a z test on unpooled variances (comparisons.py), so planning uses
the same normal approximation: with total sample N split in shares s_c (control) and s_t
(treatment), the standard error of the difference is sqrt(σ_c²/s_c + σ_t²/s_t) / sqrt(N).
Several treatment arms share alpha by Bonferroni (Holm's first step, the conservative plan).

The sample size and the MDE solve `power_at(...) = power`, which rises monotonically in both, by
bisection (`_root`). `scipy.optimize.brentq` converges in fewer steps, but importing
`scipy.optimize` costs ~0.2 s on every readout (the MDE at the sample reached is in every report),
and the bisection's ~50 steps take well under a millisecond.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

from croctl.stats.distributions import normal_cdf, normal_quantile


@dataclass(frozen=True, slots=True)
class Baseline:
    """The control arm's mean of the metric and its per-unit standard deviation."""

    mean: float
    sd: float
    proportion: bool = False

    @classmethod
    def rate(cls, p: float) -> Baseline:
        """A proportion metric with baseline rate `p`."""
        return cls(p, math.sqrt(p * (1 - p)), proportion=True)

    def treated_sd(self, relative: float) -> float:
        """Per-unit sd under the alternative: a proportion's variance moves with its mean."""
        if not self.proportion:
            return self.sd
        p = min(max(self.mean * (1 + relative), 0.0), 1.0)
        return math.sqrt(p * (1 - p))


@dataclass(frozen=True, slots=True)
class Allocation:
    """Share of all units in control and in the smallest treatment arm; number of treatments."""

    control: float = 0.5
    treatment: float = 0.5
    treatments: int = 1

    @classmethod
    def of(cls, shares: list[float]) -> Allocation:
        """From planned shares, control first (normalized to sum to 1)."""
        total = sum(shares)
        return cls(shares[0] / total, min(shares[1:]) / total, len(shares) - 1)


def _z(q: float) -> float:
    return normal_quantile(q)


def _unit_se(baseline: Baseline, relative: float, allocation: Allocation) -> float:
    """Standard error of the difference times sqrt(N)."""
    return math.sqrt(
        baseline.sd**2 / allocation.control
        + baseline.treated_sd(relative) ** 2 / allocation.treatment
    )


def _alpha(alpha: float, allocation: Allocation) -> float:
    return alpha / allocation.treatments


def power_at(
    units: float, baseline: Baseline, relative: float, alpha: float, allocation: Allocation
) -> float:
    """Power of the two-sided z test at `units` in total to detect a relative change."""
    delta = abs(relative * baseline.mean)
    se = _unit_se(baseline, relative, allocation) / math.sqrt(units)
    critical = _z(1 - _alpha(alpha, allocation) / 2)
    return normal_cdf(delta / se - critical) + normal_cdf(-delta / se - critical)


def units_needed(
    baseline: Baseline, relative: float, alpha: float, power: float, allocation: Allocation
) -> float:
    """Total units (all arms) for the two-sided test to reach `power` at a relative change.

    N = (z_{1-α/2} + z_{power})² (σ_c²/s_c + σ_t²/s_t) / Δ², then refined to include the far tail.
    """
    delta = abs(relative * baseline.mean)
    if delta == 0 or not math.isfinite(delta):
        return math.inf
    if not _spread(baseline, relative, allocation):
        return math.nan
    a = _alpha(alpha, allocation)
    first = ((_z(1 - a / 2) + _z(power)) * _unit_se(baseline, relative, allocation) / delta) ** 2
    return _root(
        lambda n: power_at(n, baseline, relative, alpha, allocation) - power,
        first * 0.5,
        first * 1.5,
    )


def mde_at(
    units: float, baseline: Baseline, alpha: float, power: float, allocation: Allocation
) -> float:
    """Smallest relative change (increase) detectable with `power` at `units` in total.

    inf when no change is (a zero baseline); nan when the control arm has no spread to plan
    with (one unit, or every unit converted), where any change would look detectable.
    """
    if baseline.mean == 0 or units <= 0:
        return math.inf
    if not _spread(baseline, 0.0, allocation):
        return math.nan

    def short(relative: float) -> float:
        return power_at(units, baseline, relative, alpha, allocation) - power

    upper = 1.0
    while short(upper) < 0:
        if upper > 1e6 or (baseline.proportion and baseline.mean * (1 + upper) >= 1):
            return math.inf
        upper *= 2
    return _root(short, 1e-12, upper)


def _spread(baseline: Baseline, relative: float, allocation: Allocation) -> bool:
    """Has the difference a positive, finite standard error (`_unit_se`) to plan with?"""
    se = _unit_se(baseline, relative, allocation)
    return math.isfinite(se) and se > 0


def units_to_clear_margin(
    baseline: Baseline, margin: float, alpha: float, power: float, allocation: Allocation
) -> float:
    """Total units for a one-sided non-inferiority test to clear an absolute margin m.

    With no true change: N = (z_{1-α} + z_{power})² · σ²(1/s_c + 1/s_t) / m². Guardrails are not
    alpha-corrected, so the number of treatments does not enter.
    """
    if margin <= 0:
        return math.inf
    spread = baseline.sd**2 * (1 / allocation.control + 1 / allocation.treatment)
    return (_z(1 - alpha) + _z(power)) ** 2 * spread / margin**2


def _root(f: Callable[[float], float], low: float, high: float) -> float:
    """The x in [low, high] where `f` changes sign, to brentq's default tolerance.

    Raises:
        ValueError: `f(low)` and `f(high)` have the same sign (no root is bracketed).
    """
    f_low, f_high = f(low), f(high)
    if f_low == 0:
        return low
    if f_high == 0:
        return high
    if (f_low < 0) == (f_high < 0):
        raise ValueError(f"no sign change of f between {low} and {high}")
    while True:
        middle = low + (high - low) / 2
        if high - low <= _XTOL + _RTOL * abs(middle) or middle in (low, high):
            return middle
        f_middle = f(middle)
        if f_middle == 0:
            return middle
        if (f_middle < 0) == (f_low < 0):
            low, f_low = middle, f_middle
        else:
            high = middle


_XTOL, _RTOL = 2e-12, 4 * sys.float_info.epsilon  # scipy.optimize.brentq's defaults


def guardrail_aware_power(power: float, guardrails: int) -> float:
    """Power each of G+1 tests needs for all to clear together with `power` (Bonferroni on β)."""
    return 1 - (1 - power) / (guardrails + 1)
