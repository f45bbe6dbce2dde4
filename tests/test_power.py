"""Power and sample size, pinned to statsmodels' solvers and a published formula."""

from __future__ import annotations

import math

import pytest
from scipy import optimize
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
from croctl.stats import power as power_module
from tests.conftest import ROOT

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


@pytest.mark.parametrize(
    "baseline",
    [Baseline(5.0, 0.0), Baseline(5.0, math.nan), Baseline.rate(1.0)],
    ids=["one unit", "no sd", "every unit converted"],
)
def test_a_control_arm_without_spread_has_no_mde_or_sample_size(baseline):
    """Any change would look detectable: not estimable (nan, shown as none), not a crash."""
    assert math.isnan(mde_at(2, baseline, 0.05, 0.8, Allocation()))
    assert math.isnan(units_needed(baseline, 0.05, 0.05, 0.8, Allocation()))


def test_a_readout_of_one_unit_an_arm_reports_no_mde(tmp_path, make_plan):
    import json

    from typer.testing import CliRunner

    from croctl.cli import app
    from tests.conftest import write_csv

    write_csv(
        tmp_path / "exposures.csv",
        "user_id,variant,exposed_at",
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
    )
    write_csv(
        tmp_path / "events.csv", "user_id,ts,event_name,revenue", ["a,2026-10-03T00:00:00Z,buy,1"]
    )
    metric = {"role": "primary", "type": "mean", "source": "events"}
    plan = make_plan(metrics={"n": metric}, decision={"mde": 0.05})
    result = CliRunner().invoke(app, ["evaluate", str(plan), "--format", "json"])
    assert result.exit_code == 4, result.output  # inconclusive, not an internal error
    power = json.loads(result.stdout)["power"]
    assert power["mde_relative"] is None and power["units_needed"] is None
    # `croctl power` from the same exports: the control arm's sd is none, not a bare NaN
    result = CliRunner().invoke(app, ["power", str(plan), "--units", "1000", "--format", "json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"JSON has {name}"))
    assert answer["baseline"]["sd"] is None and answer["mde_relative"] is None


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
    # the reasons quote the power block's detectable effect, not a second, nearby number
    (primary,) = [r for r in report.reasons if "(primary)" in r]
    assert primary.endswith(f"detectable effect at this sample ≈ ±{power.mde_relative:.1%}")


# --- the command --------------------------------------------------------------------------------


def _power(*args):
    import json

    from typer.testing import CliRunner

    from croctl.cli import app

    result = CliRunner().invoke(app, ["power", *args, "--format", "json"])
    return result.exit_code, (json.loads(result.stdout) if result.exit_code == 0 else result.stderr)


def test_power_command_sample_size_and_days_for_a_rate():
    code, answer = _power("--baseline-rate", "0.1", "--mde", "0.2", "--daily-units", "1000")
    assert code == 0 and answer["solved"] == "units"
    assert answer["units_per_arm"]["control"] == pytest.approx(3838.1, abs=1)
    assert answer["days"] == pytest.approx(answer["units"] / 1000)


def test_power_command_mde_and_power_for_a_mean_match_statsmodels():
    code, answer = _power("--baseline-mean", "52", "--sd", "140", "--units", "40000")
    assert code == 0 and answer["solved"] == "mde"
    # statsmodels' effect-size solver stops at ~3e-5 relative; its power function is exact
    effect = answer["mde_relative"] * 52 / 140
    assert NormalIndPower().power(effect, nobs1=20000, alpha=0.05, ratio=1) == pytest.approx(0.8)
    solved = NormalIndPower().solve_power(nobs1=20000, alpha=0.05, power=0.8, ratio=1)
    assert effect == pytest.approx(solved, rel=1e-4)
    code, answer = _power(
        "--baseline-mean", "52", "--sd", "140", "--units", "40000", "--mde", "0.05"
    )
    reference = NormalIndPower().power(0.05 * 52 / 140, nobs1=20000, alpha=0.05, ratio=1)
    assert answer["solved"] == "power" and answer["power"] == pytest.approx(reference, abs=1e-9)


def test_power_command_with_unequal_multi_arm_allocation():
    code, answer = _power("--baseline-rate", "0.04", "--mde", "0.1", "--allocation", "50,25,25")
    assert code == 0 and list(answer["units_per_arm"]) == ["control", "treatment_1", "treatment_2"]
    per_arm = answer["units_per_arm"]
    assert per_arm["control"] == pytest.approx(2 * per_arm["treatment_1"])
    two_arm = units_needed(Baseline.rate(0.04), 0.1, 0.025, 0.8, Allocation(0.5, 0.25))
    assert answer["units"] == pytest.approx(two_arm, rel=1e-9)


def test_power_command_from_a_plan_powers_the_guardrails():
    from tests.conftest import ROOT

    code, answer = _power(str(ROOT / "plans" / "checkout.yaml"), "--mde", "0.05")
    assert code == 0
    roles = [t["role"] for t in answer["tests"]]
    assert roles == ["primary", "guardrail"]
    assert all(t["power"] == pytest.approx(0.9) for t in answer["tests"])  # 1 − 0.2/2
    assert answer["units"] == pytest.approx(max(t["units"] for t in answer["tests"]))
    assert answer["units_per_day"] > 0 and answer["days"] > 0


@pytest.mark.parametrize(
    "args",
    [
        ["--mde", "0.1"],
        ["--baseline-rate", "0.1"],
        ["--baseline-rate", "1.5", "--mde", "0.1"],
        ["--baseline-rate", "0.1", "--mde", "-0.1"],
        ["--baseline-rate", "0.1", "--mde", "0.1", "--allocation", "50,x"],
        ["--baseline-mean", "3", "--mde", "0.1"],
        ["--baseline-rate", "0.1", "--baseline-mean", "3", "--sd", "1", "--mde", "0.1"],
        # an explicit --arms 2 against three shares was taken for the default and ignored
        ["--baseline-rate", "0.1", "--mde", "0.1", "--allocation", "50,25,25", "--arms", "2"],
        [str(ROOT / "plans/checkout.yaml"), "--mde", "0.1", "--arms", "2"],  # the plan has three
    ],
)
def test_power_command_bad_options_are_usage_errors(args):
    code, stderr = _power(*args)
    assert code == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr


@pytest.mark.parametrize("args", [["--baseline-rate", "0.04"], [str(ROOT / "plans/checkout.yaml")]])
def test_an_mde_that_takes_a_rate_to_one_is_refused(args):
    """A 3000 % lift on a 4 % rate was answered: 1 unit (its sd clamped to 0 at a rate of 1)."""
    code, stderr = _power(*args, "--mde", "30")
    assert code == 2 and "and a rate cannot reach 1" in stderr


@pytest.mark.parametrize(
    ("f", "low", "high"),
    [
        (lambda x: x**3 - 2 * x - 5, 2.0, 3.0),  # Newton's cubic
        (lambda x: math.exp(-x) - 1e-9, 0.0, 50.0),  # flat near its root
        (lambda x: 1e7 - x * x, 1.0, 1e6),  # a sample size's scale
        (lambda x: math.tanh(x - 1e-10), 1e-12, 1.0),  # a root near the bracket's end
    ],
)
def test_root_matches_scipy_brentq(f, low, high):
    assert power_module._root(f, low, high) == pytest.approx(
        optimize.brentq(f, low, high), rel=1e-12, abs=4e-12
    )


def test_root_refuses_a_bracket_without_a_sign_change():
    with pytest.raises(ValueError, match="no sign change"):
        power_module._root(lambda x: x * x + 1, -1.0, 1.0)
