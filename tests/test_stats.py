"""Statistics pinned to independent references computed here from raw arrays."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from croctl.plan import Correction
from croctl.stats import (
    Estimate,
    adjust_p_values,
    compute_effect,
    compute_mde,
    compute_non_inferiority,
    compute_srm,
    estimate_mean,
    estimate_ratio,
    fieller_interval,
    fit_cuped,
    variance_reduction,
)
from croctl.stats.distributions import (
    chi2_sf,
    contingency_p,
    normal_cdf,
    normal_quantile,
    normal_sf,
    pearson_chi2,
)
from croctl.sufficient import Moments

ALPHA = 0.05


def moments(y, d=None, x=None) -> Moments:
    y = np.asarray(y, float)
    d = np.zeros_like(y) if d is None else np.asarray(d, float)
    x = np.zeros_like(y) if x is None else np.asarray(x, float)
    sums = {
        "y": y.sum(),
        "yy": (y * y).sum(),
        "d": d.sum(),
        "dd": (d * d).sum(),
        "yd": (y * d).sum(),
        "x": x.sum(),
        "xx": (x * x).sum(),
        "xy": (x * y).sum(),
    }
    return Moments(n=len(y), **{k: float(v) for k, v in sums.items()})


def test_mean_effect_matches_statsmodels_unequal_variance_ztest():
    rng = np.random.default_rng(1)
    control, treatment = rng.lognormal(3, 1, 900), rng.lognormal(3.08, 1, 1100)
    effect = compute_effect(
        estimate_mean(moments(control)), estimate_mean(moments(treatment)), ALPHA
    )
    reference = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, p = reference.ztest_ind(usevar="unequal")
    lo, hi = reference.zconfint_diff(alpha=ALPHA, usevar="unequal")
    assert effect.absolute == pytest.approx(treatment.mean() - control.mean())
    assert effect.p_value == pytest.approx(p, rel=1e-9)
    assert effect.absolute_ci == pytest.approx((lo, hi), rel=1e-9)


def test_proportion_effect_matches_statsmodels_on_binary_arrays():
    rng = np.random.default_rng(2)
    control, treatment = rng.random(5000) < 0.10, rng.random(5200) < 0.115
    effect = compute_effect(
        estimate_mean(moments(control)), estimate_mean(moments(treatment)), ALPHA
    )
    _, p = CompareMeans(
        DescrStatsW(treatment.astype(float)), DescrStatsW(control.astype(float))
    ).ztest_ind(usevar="unequal")
    assert effect.p_value == pytest.approx(p, rel=1e-9)


def test_relative_ci_is_the_published_delta_method_formula():
    rng = np.random.default_rng(3)
    c, t = rng.normal(10, 3, 400), rng.normal(11, 4, 500)
    effect = compute_effect(estimate_mean(moments(c)), estimate_mean(moments(t)), ALPHA)
    mc, mt = c.mean(), t.mean()
    var = t.var(ddof=1) / (len(t) * mc**2) + mt**2 * c.var(ddof=1) / (len(c) * mc**4)
    z = sps.norm.ppf(1 - ALPHA / 2)
    assert effect.relative == pytest.approx(mt / mc - 1)
    assert effect.relative_ci == pytest.approx(
        (mt / mc - 1 - z * math.sqrt(var), mt / mc - 1 + z * math.sqrt(var))
    )


def test_ratio_delta_method_matches_numpy_formula_and_monte_carlo():
    rng = np.random.default_rng(4)

    def sample(n):
        d = rng.poisson(2, n) + 0.0
        return rng.gamma(2, 20, n) * d, d

    y, d = sample(3000)
    est = estimate_ratio(moments(y, d))
    mu_y, mu_d = y.mean(), d.mean()
    cov = np.cov(y, d, ddof=1)
    expected = (
        cov[0, 0] / mu_d**2 - 2 * mu_y * cov[0, 1] / mu_d**3 + mu_y**2 * cov[1, 1] / mu_d**4
    ) / len(y)
    assert est.value == pytest.approx(y.sum() / d.sum())
    assert est.variance == pytest.approx(expected, rel=1e-9)
    ratios = [a.sum() / b.sum() for a, b in (sample(3000) for _ in range(400))]
    assert est.variance == pytest.approx(np.var(ratios, ddof=1), rel=0.2)


def test_cuped_equals_welch_on_adjusted_values_with_pooled_theta():
    rng = np.random.default_rng(5)
    xc, xt = rng.gamma(2, 10, 2000), rng.gamma(2, 10, 2000)
    yc, yt = 0.8 * xc + rng.normal(0, 5, 2000), 0.8 * xt + rng.normal(1, 5, 2000)
    x, y = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    theta = np.cov(y, x, ddof=1)[0, 1] / np.var(x, ddof=1)
    fit = fit_cuped(moments(yc, x=xc) + moments(yt, x=xt))
    assert fit.theta == pytest.approx(theta, rel=1e-9)
    adj_c, adj_t = yc - theta * (xc - x.mean()), yt - theta * (xt - x.mean())
    effect = compute_effect(
        estimate_mean(moments(yc, x=xc), fit), estimate_mean(moments(yt, x=xt), fit), ALPHA
    )
    _, p = CompareMeans(DescrStatsW(adj_t), DescrStatsW(adj_c)).ztest_ind(usevar="unequal")
    assert effect.absolute == pytest.approx(adj_t.mean() - adj_c.mean(), rel=1e-9)
    assert effect.p_value == pytest.approx(p, rel=1e-6)
    reduction = variance_reduction(moments(y, x=x), fit)
    assert reduction == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-6)


@pytest.mark.parametrize(
    ("method", "reference"),
    [(Correction.HOLM, "holm"), (Correction.BONFERRONI, "bonferroni"), (Correction.BH, "fdr_bh")],
)
def test_corrections_match_statsmodels(method, reference):
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert adjust_p_values(p, method) == pytest.approx(list(multipletests(p, method=reference)[1]))


def test_three_arm_holm_on_real_comparisons():
    rng = np.random.default_rng(6)
    control = estimate_mean(moments(rng.random(3000) < 0.10))
    arms = [estimate_mean(moments(rng.random(3000) < rate)) for rate in (0.10, 0.12, 0.13)]
    raw = [compute_effect(control, arm, ALPHA).p_value for arm in arms]
    assert adjust_p_values(raw, Correction.HOLM) == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )


def test_nan_p_values_are_left_out_of_the_family():
    adjusted = adjust_p_values([0.01, math.nan, 0.02], Correction.BONFERRONI)
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def test_srm_is_pearson_chi_square_by_hand():
    observed, shares = [5100, 4900, 5300], [1 / 3] * 3
    expected = sum(observed) / 3
    chi2 = sum((o - expected) ** 2 / expected for o in observed)
    statistic, p = compute_srm(observed, shares)
    assert statistic == pytest.approx(chi2)
    assert p == pytest.approx(sps.chi2.sf(chi2, 2))


@pytest.mark.parametrize("x", [-40.0, -8.5, -1.96, -0.3, 0.0, 0.7, 1.645, 6.0, 37.0])
def test_normal_functions_match_scipy_stats(x):
    assert normal_cdf(x) == pytest.approx(sps.norm.cdf(x), rel=1e-12, abs=0)
    assert normal_sf(x) == pytest.approx(sps.norm.sf(x), rel=1e-12, abs=0)
    q = sps.norm.cdf(x)
    if 0 < q < 1:
        assert normal_quantile(q) == pytest.approx(sps.norm.ppf(q), rel=1e-12)


@pytest.mark.parametrize(("statistic", "df"), [(0.0, 1), (0.4, 1), (3.84, 1), (12.0, 3), (95.0, 9)])
def test_chi2_sf_matches_scipy_stats(statistic, df):
    assert chi2_sf(statistic, df) == pytest.approx(sps.chi2.sf(statistic, df), rel=1e-12)


@given(st.lists(st.integers(1, 10_000), min_size=2, max_size=5))
def test_pearson_chi2_matches_scipy_chisquare(observed):
    k = len(observed)
    expected = [sum(observed) / k] * k
    reference = sps.chisquare(observed, expected)
    statistic, p = pearson_chi2(observed, expected)
    assert statistic == pytest.approx(reference.statistic, rel=1e-9, abs=1e-12)
    assert p == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)


tables = st.integers(2, 4).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 5_000), min_size=k, max_size=k),
        st.lists(st.integers(0, 5_000), min_size=k, max_size=k),
    )
)


@given(tables)
@example(([3, 3], [7, 7]))  # a cell already at its expected count: Yates moves nothing
@example(([0, 1], [10, 9]))  # |o − e| < ½: Yates stops at the expected count
@example(([40, 60, 55], [960, 940, 945]))
def test_contingency_p_matches_scipy_chi2_contingency(table):
    hits, misses = table
    rows_ok = sum(hits) > 0 and sum(misses) > 0
    columns_ok = all(h + m > 0 for h, m in zip(hits, misses, strict=True))
    if not (rows_ok and columns_ok):  # scipy refuses a table with a zero expected count
        assert math.isnan(contingency_p(hits, misses))
        return
    reference = sps.chi2_contingency([hits, misses]).pvalue
    assert contingency_p(hits, misses) == pytest.approx(reference, rel=1e-9, abs=1e-300)


def test_non_inferiority_holds_and_fails_against_margin():
    z = sps.norm.ppf(0.95)
    holds = compute_non_inferiority(0.02, 0.03, +1, 0.10, ALPHA)
    assert holds.holds and holds.bound == pytest.approx(0.02 + z * 0.03)
    fails = compute_non_inferiority(0.08, 0.03, +1, 0.10, ALPHA)
    assert not fails.holds
    # a decrease is harmful for goal: increase — the same numbers mirrored
    assert compute_non_inferiority(-0.08, 0.03, -1, 0.10, ALPHA).holds is False
    assert holds.power == pytest.approx(sps.norm.cdf(0.10 / 0.03 - z))


def test_mde_matches_textbook_formula():
    se = 0.004
    assert compute_mde(se, 0.05, 0.8) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-5)


@pytest.mark.parametrize(
    ("control", "treatment", "reason"),
    [
        (Estimate(1, 0.5, 0.0), Estimate(100, 0.5, 0.01), "1 unit"),
        (Estimate(100, 0.0, 0.0), Estimate(100, 0.0, 0.0), "zero variance"),
        (Estimate(100, math.nan, math.nan), Estimate(100, 1.0, 0.1), "not finite"),
    ],
)
def test_non_finite_statistics_are_a_reason_not_a_result(control, treatment, reason):
    effect = compute_effect(control, treatment, ALPHA)
    assert effect.reason and reason in effect.reason and math.isnan(effect.p_value)


arrays = st.lists(st.floats(0, 100, allow_nan=False), min_size=3, max_size=40)


@settings(max_examples=60, deadline=None)
@given(arrays, arrays)
@example([0.0, 0.0, 1.0], [0.0, 0.0, 1.4e-188])  # a ratio whose square overflows a float
def test_swapping_arms_negates_effect_and_keeps_p(a, b):
    ea, eb = estimate_mean(moments(a)), estimate_mean(moments(b))
    forward, backward = compute_effect(ea, eb, ALPHA), compute_effect(eb, ea, ALPHA)
    if forward.reason:
        assert backward.reason
        return
    assert backward.absolute == pytest.approx(-forward.absolute, abs=1e-9)
    assert backward.p_value == pytest.approx(forward.p_value, abs=1e-12)
    assert forward.absolute_ci[0] <= forward.absolute <= forward.absolute_ci[1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12),
    st.sampled_from(list(Correction)),
)
def test_adjusted_p_values_are_monotone_and_never_below_raw(p, method):
    adjusted = adjust_p_values(p, method)
    for raw, adj in zip(p, adjusted, strict=True):
        assert raw - 1e-12 <= adj <= 1.0
    order = sorted(range(len(p)), key=lambda i: p[i])
    assert all(adjusted[i] <= adjusted[j] + 1e-12 for i, j in itertools.pairwise(order))


# --- Fieller's interval for the relative effect ------------------------------------------------


def _in_fieller_set(rho, control, treatment, z, slack=True):
    """The definition: |m_t − ρ·m_c| ≤ z·sqrt(v_t + ρ²·v_c).

    `slack` allows for the rounding of a computed root, relative to its size; a point stepped
    away from a root is judged without it (near a degenerate denominator the set's edge is so
    flat that the slack would swallow the step).
    """
    lhs = abs(treatment.value - rho * control.value)
    rhs = z * math.sqrt(treatment.variance + rho**2 * control.variance)
    return lhs <= rhs * (1 + 1e-9) + 1e-12 if slack else lhs <= rhs


@given(
    mc=st.floats(1.0, 100.0),
    mt=st.floats(0.1, 200.0),
    vc=st.floats(1e-4, 4.0),
    vt=st.floats(1e-4, 4.0),
)
@example(mc=4.0, mt=198.9944813566055, vc=4.0, vt=1.0)  # large roots: relative rounding
@example(mc=3.84375, mt=1.0, vc=3.84375, vt=1.0)  # nearly unbounded: a flat edge
@settings(max_examples=200)
def test_fieller_bounds_are_the_edges_of_the_defining_set(mc, mt, vc, vt):
    control, treatment = Estimate(1000, mc, vc), Estimate(1000, mt, vt)
    z = sps.norm.ppf(0.975)
    interval = fieller_interval(control, treatment, z)
    if z * z * vc >= mc * mc:
        assert interval is None  # the denominator is not clearly non-zero
        return
    lo, hi = interval
    assert lo <= mt / mc <= hi
    for bound in (lo, hi):
        assert _in_fieller_set(bound, control, treatment, z)
        outside = bound + 1e-6 * (1 if bound == hi else -1) * max(1, abs(bound))
        assert not _in_fieller_set(outside, control, treatment, z, slack=False)


def test_fieller_covers_the_true_ratio_at_its_level():
    """Monte Carlo: 95 % Fieller intervals for μ_t/μ_c cover the truth ~95 % of the time with a
    noisy control mean, where the symmetric delta-method interval undercovers."""
    rng = np.random.default_rng(11)
    fieller = delta = 0
    n = 4000
    for _ in range(n):
        c, t = rng.normal(2.0, 3.5, 60), rng.normal(3.0, 3.5, 60)
        control = Estimate(60, c.mean(), c.var(ddof=1) / 60)
        treatment = Estimate(60, t.mean(), t.var(ddof=1) / 60)
        interval = fieller_interval(control, treatment, sps.norm.ppf(0.975))
        fieller += interval is None or interval[0] <= 1.5 <= interval[1]
        lo, hi = compute_effect(control, treatment, 0.05).relative_ci
        delta += lo <= 0.5 <= hi
    assert 0.935 <= fieller / n <= 0.965
    assert delta / n < fieller / n


def test_compute_effect_with_fieller_flags_unbounded_intervals():
    noisy = compute_effect(Estimate(50, 0.1, 1.0), Estimate(50, 0.5, 1.0), 0.05, fieller=True)
    assert noisy.relative_unbounded and noisy.relative_ci == (-math.inf, math.inf)
    clear = compute_effect(
        Estimate(5000, 10.0, 0.01), Estimate(5000, 11.0, 0.01), 0.05, fieller=True
    )
    assert not clear.relative_unbounded
    delta = compute_effect(Estimate(5000, 10.0, 0.01), Estimate(5000, 11.0, 0.01), 0.05)
    assert clear.relative_ci == pytest.approx(delta.relative_ci, abs=2e-3)  # close when precise
