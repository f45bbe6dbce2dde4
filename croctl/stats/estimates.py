"""Per-arm point estimates and their sampling variances, from sufficient statistics only."""

from __future__ import annotations

import math
from dataclasses import dataclass

from croctl.sufficient import Moments


@dataclass(frozen=True, slots=True)
class Estimate:
    """One arm's estimate of a metric: `value` and the variance of that estimate."""

    units: int
    value: float
    variance: float


@dataclass(frozen=True, slots=True)
class CupedFit:
    """CUPED coefficient fitted on the pooled sample (Deng et al. 2013)."""

    theta: float
    mean_x: float


def _var(n: int, total: float, squares: float) -> float:
    """Unbiased sample variance from a sum and a sum of squares (nan below 2 units)."""
    if n < 2:
        return math.nan
    return max((squares - total * total / n) / (n - 1), 0.0)


def _cov(n: int, sum_a: float, sum_b: float, cross: float) -> float:
    """Unbiased sample covariance from sums and the cross-product sum."""
    if n < 2:
        return math.nan
    return (cross - sum_a * sum_b / n) / (n - 1)


def estimate_mean(m: Moments, cuped: CupedFit | None = None, *, uncapped: bool = False) -> Estimate:
    """Mean of per-unit values with variance var/n; CUPED-adjusted when `cuped` is given.

    Adjusted mean ȳ − θ(x̄ − x̄_pooled), variance (var_y − 2θ·cov_xy + θ²·var_x)/n.
    """
    total, squares = (m.r, m.rr) if uncapped else (m.y, m.yy)
    if m.n == 0:
        return Estimate(0, math.nan, math.nan)
    mean = total / m.n
    var = _var(m.n, total, squares)
    if cuped is not None and math.isfinite(cuped.theta):
        mean -= cuped.theta * (m.x / m.n - cuped.mean_x)
        var = (
            var
            - 2 * cuped.theta * _cov(m.n, m.x, m.y, m.xy)
            + cuped.theta**2 * _var(m.n, m.x, m.xx)
        )
        var = max(var, 0.0)
    return Estimate(m.n, mean, var / m.n)


def estimate_ratio(m: Moments) -> Estimate:
    """Ratio sum(y)/sum(d) with delta-method variance (Deng, Knoblich & Lu 2018, eq. 3).

    Var ≈ (var_y/μd² − 2μy·cov_yd/μd³ + μy²·var_d/μd⁴)/n; nan when the denominator sums to 0.
    """
    if m.n == 0 or m.d == 0:
        return Estimate(m.n, math.nan, math.nan)
    mu_y, mu_d = m.y / m.n, m.d / m.n
    var_y, var_d = _var(m.n, m.y, m.yy), _var(m.n, m.d, m.dd)
    cov = _cov(m.n, m.y, m.d, m.yd)
    variance = (var_y / mu_d**2 - 2 * mu_y * cov / mu_d**3 + mu_y**2 * var_d / mu_d**4) / m.n
    return Estimate(m.n, m.y / m.d, max(variance, 0.0))


def fit_cuped(pooled: Moments) -> CupedFit:
    """θ = cov(Y, X)/var(X) on the pooled sample; θ = 0 when X has no variance."""
    var_x = _var(pooled.n, pooled.x, pooled.xx)
    cov = _cov(pooled.n, pooled.x, pooled.y, pooled.xy)
    theta = cov / var_x if var_x > 0 else 0.0
    return CupedFit(theta=theta, mean_x=pooled.x / pooled.n if pooled.n else math.nan)


def variance_reduction(pooled: Moments, fit: CupedFit) -> float:
    """Share of the pooled per-unit variance that CUPED removes: ρ² at the fitted θ."""
    var_y = _var(pooled.n, pooled.y, pooled.yy)
    if not var_y > 0:
        return math.nan
    var_x = _var(pooled.n, pooled.x, pooled.xx)
    cov = _cov(pooled.n, pooled.x, pooled.y, pooled.xy)
    adjusted = var_y - 2 * fit.theta * cov + fit.theta**2 * var_x
    return 1.0 - adjusted / var_y
