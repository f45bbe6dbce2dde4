"""Pure statistics on sufficient statistics: estimates, comparisons, corrections, SRM, power."""

from croctl.stats.comparisons import (
    Effect,
    Heterogeneity,
    NonInferiority,
    compute_effect,
    compute_heterogeneity,
    compute_mde,
    compute_non_inferiority,
    compute_srm,
    fieller_interval,
)
from croctl.stats.corrections import adjust_p_values
from croctl.stats.distributions import contingency_p, normal_quantile
from croctl.stats.estimates import (
    CupedFit,
    Estimate,
    estimate_mean,
    estimate_ratio,
    fit_cuped,
    variance_reduction,
)
from croctl.stats.power import (
    Allocation,
    Baseline,
    guardrail_aware_power,
    mde_at,
    power_at,
    units_needed,
    units_to_clear_margin,
)

__all__ = [
    "Allocation",
    "Baseline",
    "CupedFit",
    "Effect",
    "Estimate",
    "Heterogeneity",
    "NonInferiority",
    "adjust_p_values",
    "compute_effect",
    "compute_heterogeneity",
    "compute_mde",
    "compute_non_inferiority",
    "compute_srm",
    "contingency_p",
    "estimate_mean",
    "estimate_ratio",
    "fieller_interval",
    "fit_cuped",
    "guardrail_aware_power",
    "mde_at",
    "normal_quantile",
    "power_at",
    "units_needed",
    "units_to_clear_margin",
    "variance_reduction",
]
