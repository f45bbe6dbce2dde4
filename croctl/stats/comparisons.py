"""Two-arm comparisons: z tests, delta-method relative CIs, non-inferiority, SRM, power."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from croctl.stats.distributions import (
    chi2_sf,
    normal_cdf,
    normal_quantile,
    normal_sf,
    pearson_chi2,
)
from croctl.stats.estimates import Estimate


@dataclass(frozen=True, slots=True)
class Effect:
    """Treatment minus control, absolute and relative, with two-sided CIs and the z-test p-value.

    `reason` is set (and the numbers are nan) when the effect cannot be estimated.
    """

    absolute: float
    absolute_ci: tuple[float, float]
    absolute_se: float
    relative: float
    relative_ci: tuple[float, float]
    relative_se: float
    p_value: float
    reason: str | None = None
    relative_unbounded: bool = False  # Fieller: the control mean is not clearly non-zero


_NAN_PAIR = (math.nan, math.nan)
_UNBOUNDED = (-math.inf, math.inf)


def fieller_interval(
    control: Estimate, treatment: Estimate, z: float
) -> tuple[float, float] | None:
    """Fieller's interval for the ratio of means m_t/m_c of independent arms; None if unbounded.

    The set {ρ : |m_t − ρ·m_c| ≤ z·sqrt(v_t + ρ²·v_c)} is the interval between the roots of
    (m_c² − z²v_c)ρ² − 2·m_t·m_c·ρ + (m_t² − z²v_t) = 0 when g = z²v_c/m_c² < 1, and unbounded
    otherwise (Fieller 1954; Franz 2007, "Ratios: a short guide to confidence limits").
    """
    a, b, va, vb = treatment.value, control.value, treatment.variance, control.variance
    lead = b * b - z * z * vb
    if lead <= 0:
        return None
    root = math.sqrt(max(a * a * vb + b * b * va - z * z * va * vb, 0.0))
    return ((a * b - z * root) / lead, (a * b + z * root) / lead)


def compute_effect(
    control: Estimate, treatment: Estimate, alpha: float, *, fieller: bool = False
) -> Effect:
    """Difference of means with unpooled variances (Welch-type z test), CI at 1 − alpha.

    Relative effect t/c − 1 with delta-method variance v_t/m_c² + m_t²·v_c/m_c⁴ (v = variance of
    each arm's estimate); with `fieller`, the relative CI is Fieller's instead (possibly
    unbounded). Non-finite inputs or zero standard error give an Effect with `reason`.
    """
    reason = _why_not_estimable(control, treatment)
    if reason:
        return Effect(
            math.nan, _NAN_PAIR, math.nan, math.nan, _NAN_PAIR, math.nan, math.nan, reason
        )
    z_crit = normal_quantile(1 - alpha / 2)
    diff = treatment.value - control.value
    se = math.sqrt(treatment.variance + control.variance)
    p_value = 2 * normal_sf(abs(diff / se))
    relative, rel_se, rel_ci = math.nan, math.nan, _NAN_PAIR
    ratio = treatment.value / control.value if control.value != 0 else math.inf
    if math.isfinite(ratio):
        relative = ratio - 1
        # = sqrt(v_t/m_c² + m_t²·v_c/m_c⁴), written so that m_c⁴ cannot underflow and a huge
        # ratio cannot overflow a square (`ratio**2` raises OverflowError)
        spread = math.hypot(math.sqrt(treatment.variance), ratio * math.sqrt(control.variance))
        rel_se = spread / abs(control.value)
        rel_ci = (relative - z_crit * rel_se, relative + z_crit * rel_se)
    unbounded = False
    if fieller and math.isfinite(relative):
        interval = fieller_interval(control, treatment, z_crit)
        unbounded = interval is None
        rel_ci = _UNBOUNDED if interval is None else (interval[0] - 1, interval[1] - 1)
    return Effect(
        diff,
        (diff - z_crit * se, diff + z_crit * se),
        se,
        relative,
        rel_ci,
        rel_se,
        p_value,
        relative_unbounded=unbounded,
    )


def _why_not_estimable(control: Estimate, treatment: Estimate) -> str | None:
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.units < 2:
            return f"{name} has {arm.units} unit(s)"
        if not (math.isfinite(arm.value) and math.isfinite(arm.variance)):
            return f"{name} estimate is not finite (empty denominator?)"
    if control.variance + treatment.variance <= 0:
        return "zero variance in both arms"
    return None


@dataclass(frozen=True, slots=True)
class NonInferiority:
    """A guardrail's one-sided test: the harmful-direction bound against the margin."""

    holds: bool
    bound: float  # one-sided 1 − alpha upper bound of the harm, on the margin's scale
    power: float  # power to clear the margin if the true effect were zero


def compute_non_inferiority(
    estimate: float, se: float, harm_sign: int, margin: float, alpha: float
) -> NonInferiority:
    """Non-inferiority at one-sided level alpha: holds when harm + z₁₋ₐ·se < margin.

    `harm_sign` is +1 when an increase is harmful, −1 when a decrease is. Power assumes no true
    effect: Φ(margin/se − z₁₋ₐ) (Chow, Shao & Wang, Sample Size Calculations, §3.2.2).
    """
    z = normal_quantile(1 - alpha)
    bound = harm_sign * estimate + z * se
    power = normal_cdf(margin / se - z) if se > 0 else math.nan
    return NonInferiority(holds=bound < margin, bound=bound, power=power)


def compute_srm(observed: Sequence[int], shares: Sequence[float]) -> tuple[float, float]:
    """Pearson chi-square of observed units against planned shares; returns (statistic, p)."""
    total = sum(observed)
    expected = [total * s for s in shares]
    return pearson_chi2(observed, expected)


def compute_mde(se: float, alpha: float, power: float) -> float:
    """Smallest true effect detectable with `power` by a two-sided test at alpha, given se."""
    return (normal_quantile(1 - alpha / 2) + normal_quantile(power)) * se


@dataclass(frozen=True, slots=True)
class Heterogeneity:
    """Cochran's Q test that several independent effects share one value."""

    q: float
    df: int
    p_value: float
    i_squared: float  # share of the spread beyond chance, max(0, (Q − df)/Q)


def compute_heterogeneity(effects: Sequence[float], ses: Sequence[float]) -> Heterogeneity:
    """Q = Σ w_i (δ_i − δ̄)² with w_i = 1/se_i² and δ̄ the inverse-variance mean; Q ~ χ²(k − 1).

    Cells without a finite positive standard error are left out; fewer than two cells → nan.
    """
    pairs = [
        (e, s)
        for e, s in zip(effects, ses, strict=True)
        if math.isfinite(e) and math.isfinite(s) and s > 0
    ]
    if len(pairs) < 2:
        return Heterogeneity(math.nan, max(len(pairs) - 1, 0), math.nan, math.nan)
    weights = [1 / s**2 for _, s in pairs]
    mean = sum(w * e for w, (e, _) in zip(weights, pairs, strict=True)) / sum(weights)
    q = sum(w * (e - mean) ** 2 for w, (e, _) in zip(weights, pairs, strict=True))
    df = len(pairs) - 1
    i_squared = max(0.0, (q - df) / q) if q > 0 else 0.0
    return Heterogeneity(q, df, chi2_sf(q, df), i_squared)
