"""Pure statistics on sufficient statistics: estimates, comparisons, corrections, SRM, power."""

from croctl.stats.comparisons import (
    Effect,
    NonInferiority,
    compute_effect,
    compute_mde,
    compute_non_inferiority,
    compute_srm,
)
from croctl.stats.corrections import adjust_p_values
from croctl.stats.estimates import (
    CupedFit,
    Estimate,
    estimate_mean,
    estimate_ratio,
    fit_cuped,
    variance_reduction,
)

__all__ = [
    "CupedFit",
    "Effect",
    "Estimate",
    "NonInferiority",
    "adjust_p_values",
    "compute_effect",
    "compute_mde",
    "compute_non_inferiority",
    "compute_srm",
    "estimate_mean",
    "estimate_ratio",
    "fit_cuped",
    "variance_reduction",
]
