"""Power and sample size, pinned to statsmodels' solvers and a published formula."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import NormalIndPower, normal_power_het, normal_sample_size_one_tail

from croctl.stats import (
    Allocation,
    Baseline,
    guardrail_aware_power,
    mde_at,
    power_at,
    units_needed,
    units_to_clear_margin,
)

GRID = [
    # (mean, sd, relative mde, alpha, power, control share)
    (10.0, 25.0, 0.03, 0.05, 0.8, 0.5),
    (10.0, 25.0, 0.05, 0.01, 0.9, 0.5),
    (3.2, 1.1, 0.02, 0.05, 0.8, 0.3),
    (100.0, 400.0, 0.10, 0.10, 0.95, 0.7),
]


@pytest.mark.parametrize(("mean", "sd", "mde", "alpha", "power", "share"), GRID)
def test_mean_sample_size_matches_statsmodels_normal_ind_power(mean, sd, mde, alpha, power, share):
    allocation = Allocation(share, 1 - share)
    total = units_needed(Baseline(mean, sd), mde, alpha, power, allocation)
    control = NormalIndPower().solve_power(
        effect_size=mde * mean / sd, alpha=alpha, power=power, ratio=(1 - share) / share
    )
    assert total * share == pytest.approx(control, rel=1e-6)


@pytest.mark.parametrize(("mean", "sd", "mde", "alpha", "power", "share"), GRID)
def test_mean_power_and_mde_invert_each_other(mean, sd, mde, alpha, power, share):
    allocation = Allocation(share, 1 - share)
    baseline = Baseline(mean, sd)
    total = units_needed(baseline, mde, alpha, power, allocation)
    assert power_at(total, baseline, mde, alpha, allocation) == pytest.approx(power, abs=1e-9)
    assert mde_at(total, baseline, alpha, power, allocation) == pytest.approx(mde, rel=1e-6)
    reference = NormalIndPower().power(
        effect_size=mde * mean / sd, nobs1=total * share, alpha=alpha, ratio=(1 - share) / share
    )
    assert power_at(total, baseline, mde, alpha, allocation) == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize(
    ("rate", "mde", "share"),
    [(0.10, 0.2, 0.5), (0.03, 0.1, 0.5), (0.5, 0.05, 0.2), (0.2, -0.1, 0.5)],
)
def test_proportion_power_matches_statsmodels_with_unpooled_variances(rate, mde, share):
    allocation = Allocation(share, 1 - share)
    baseline = Baseline.rate(rate)
    treated = rate * (1 + mde)
    spread = math.sqrt(rate * (1 - rate) / share + treated * (1 - treated) / (1 - share))
    for total in (2_000, 20_000, 200_000):
        reference = normal_power_het(
            rate * mde, total, 0.05, std_null=spread, std_alternative=spread
        )
        assert power_at(total, baseline, mde, 0.05, allocation) == pytest.approx(
            reference, abs=1e-9
        )


def test_proportion_sample_size_matches_the_textbook_formula():
    """10 % → 12 %, two-sided 5 %, 80 %: n = (z.975 + z.8)² (p1q1 + p2q2) / Δ² ≈ 3,838 per arm."""
    total = units_needed(Baseline.rate(0.10), 0.2, 0.05, 0.8, Allocation())
    expected = (1.959964 + 0.841621) ** 2 * (0.09 + 0.12 * 0.88) / 0.02**2
    assert total / 2 == pytest.approx(expected, rel=1e-5)
    assert round(total / 2) == 3838


def test_more_arms_split_alpha_by_bonferroni():
    baseline = Baseline(5.0, 10.0)
    three = units_needed(baseline, 0.05, 0.05, 0.8, Allocation(1 / 3, 1 / 3, treatments=2))
    two = units_needed(baseline, 0.05, 0.025, 0.8, Allocation(1 / 3, 1 / 3))
    assert three == pytest.approx(two, rel=1e-12)
    assert Allocation.of([0.5, 0.25, 0.25]) == Allocation(0.5, 0.25, 2)


@pytest.mark.parametrize(("margin", "power", "share"), [(0.5, 0.8, 0.5), (0.2, 0.95, 0.4)])
def test_guardrail_margin_sample_size_matches_statsmodels_one_tail(margin, power, share):
    baseline = Baseline(4.0, 9.0)
    total = units_to_clear_margin(baseline, margin, 0.05, power, Allocation(share, 1 - share))
    spread = 9.0 * math.sqrt(1 / share + 1 / (1 - share))
    reference = normal_sample_size_one_tail(margin, power, 0.05, std_null=spread)
    assert total == pytest.approx(reference, rel=1e-9)


def test_guardrail_aware_power_splits_beta():
    assert guardrail_aware_power(0.8, 0) == pytest.approx(0.8)
    assert guardrail_aware_power(0.8, 3) == pytest.approx(0.95)


def test_no_effect_needs_infinite_units():
    assert units_needed(Baseline(1.0, 1.0), 0.0, 0.05, 0.8, Allocation()) == math.inf
    assert mde_at(100, Baseline(0.0, 1.0), 0.05, 0.8, Allocation()) == math.inf


def test_an_inconclusive_readout_says_how_much_longer_the_test_needs():
    from croctl.evaluate import evaluate
    from tests.conftest import ROOT

    report = evaluate(ROOT / "plans" / "saas.yaml")  # decision.mde: 0.05
    power = report.power
    assert report.verdict.value == "inconclusive" and power.planned_mde == 0.05
    # sample size scales with (detectable effect / planned effect)²
    ratio = (power.mde_relative / power.planned_mde) ** 2
    assert power.units_needed / power.units == pytest.approx(ratio, rel=0.02)
    assert power.days_more == pytest.approx(power.units_more / power.units_per_day)
    assert any(f"{power.units_more:,.0f} more units" in r for r in report.reasons)
