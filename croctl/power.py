"""`croctl power` from a plan: baselines, allocation and traffic taken from the plan's exports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from croctl.analysis.planning import (
    PowerAnswer,
    control_baseline,
    planned_shares,
    requirements,
    solve_power,
)
from croctl.analysis.segments import arms_of
from croctl.errors import PlanError
from croctl.pipeline import collect_stats
from croctl.plan import Plan, load_plan
from croctl.stats import Baseline


def power_from_plan(
    plan: Plan | Path,
    *,
    mde: float | None = None,
    units: float | None = None,
    units_per_day: float | None = None,
    guardrails: bool = True,
) -> PowerAnswer:
    """Plan a test from an existing export: the control arm is the baseline.

    Solving for units with guardrails, every guardrail with a margin is powered to clear it too
    (each of the G+1 tests at power 1 − β/(G+1)); the answer is the largest requirement.

    Raises:
        PlanError: neither `mde` nor `units` given.
        DataError: the exports cannot be read (see `collect_stats`).
    """
    if mde is None and units is None:
        raise PlanError("power: give --mde, --units, or both", hint="e.g. --mde 0.03")
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    data = collect_stats(plan)
    arms = arms_of(plan, data)
    baseline = control_baseline(plan, plan.primary, arms[plan.primary.name])
    _refuse_rate_past_one(baseline, mde)
    answer = solve_power(
        baseline,
        planned_shares(plan),
        alpha=plan.decision.alpha,
        power=plan.decision.power,
        mde=mde,
        units=units,
        units_per_day=units_per_day or data.exposures.units_per_day,
    )
    if answer.solved != "units":
        return answer
    tests = tuple(requirements(plan, arms, answer.mde, guardrails=guardrails))
    return replace(answer, units=max(t.units for t in tests), tests=tests)


def answer_power(
    plan_path: Path | None,
    *,
    baseline_rate: float | None = None,
    baseline_mean: float | None = None,
    sd: float | None = None,
    mde: float | None = None,
    units: float | None = None,
    alpha: float | None = None,
    power: float | None = None,
    allocation: str | None = None,
    arms: int | None = None,
    daily_units: float | None = None,
    guardrails: bool = True,
) -> PowerAnswer:
    """Check the `croctl power` options and answer from a plan or from a baseline.

    Raises:
        PlanError: inconsistent or out-of-range options (exit 2).
    """
    _check_range("--mde", mde, 0, None)
    _check_range("--units", units, 0, None)
    _check_range("--alpha", alpha, 0, 0.5)
    _check_range("--power", power, 0, 1)
    _check_range("--daily-units", daily_units, 0, None)
    if mde is None and units is None:
        raise PlanError("power: give --mde, --units, or both", hint="e.g. --mde 0.03")
    if plan_path is not None:
        given = (baseline_rate, baseline_mean, allocation, arms)
        if any(option is not None for option in given):
            raise PlanError(
                "power: a plan gives the baseline, arms and allocation itself",
                hint="drop --baseline-rate/--baseline-mean/--allocation/--arms, or drop the plan",
            )
        plan = load_plan(plan_path)
        decision = replace(
            plan.decision,
            alpha=alpha if alpha is not None else plan.decision.alpha,
            power=power if power is not None else plan.decision.power,
        )
        return power_from_plan(
            replace(plan, decision=decision),
            mde=mde,
            units=units,
            units_per_day=daily_units,
            guardrails=guardrails,
        )
    baseline = _baseline(baseline_rate, baseline_mean, sd)
    _refuse_rate_past_one(baseline, mde)
    return solve_power(
        baseline,
        _allocation(allocation, arms),
        alpha=alpha if alpha is not None else 0.05,
        power=power if power is not None else 0.8,
        mde=mde,
        units=units,
        units_per_day=daily_units,
    )


def _check_range(option: str, value: float | None, low: float, high: float | None) -> None:
    if value is None:
        return
    if not (value > low and (high is None or value < high)):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"above {low:g}"
        raise PlanError(f"power: {option} {value:g} must be {bounds}")


def _refuse_rate_past_one(baseline: Baseline, mde: float | None) -> None:
    """A relative change that takes a rate to 1 or past it cannot be planned for."""
    if mde is None or not baseline.proportion or baseline.mean * (1 + mde) < 1:
        return
    rate = baseline.mean
    raise PlanError(
        f"power: --mde {mde:g} takes the baseline rate {rate:g} to {rate * (1 + mde):g}, "
        "and a rate cannot reach 1",
        hint=f"give an --mde below {(1 - rate) / rate:g}",
    )


def _baseline(rate: float | None, mean: float | None, sd: float | None) -> Baseline:
    if rate is not None:
        if mean is not None or sd is not None:
            raise PlanError("power: give --baseline-rate or --baseline-mean/--sd, not both")
        _check_range("--baseline-rate", rate, 0, 1)
        return Baseline.rate(rate)
    if mean is None or sd is None:
        raise PlanError(
            "power: no baseline",
            hint="give a plan, --baseline-rate 0.04, or --baseline-mean 52 --sd 140",
        )
    _check_range("--sd", sd, 0, None)
    if mean == 0:
        raise PlanError(
            "power: --baseline-mean 0 has no relative effect", hint="use a non-zero mean"
        )
    return Baseline(mean, sd)


def _allocation(text: str | None, arms: int | None) -> dict[str, float]:
    """Shares per arm, control first; an equal split of `arms` (two if not given) by default."""
    if text is None:
        shares = [1.0] * (arms or 2)
    else:
        try:
            shares = [float(part) for part in text.split(",")]
        except ValueError:
            shares = []
        if len(shares) < 2 or min(shares) <= 0:
            raise PlanError(
                f"power: --allocation {text!r} must list two or more positive shares",
                hint="e.g. --allocation 50,25,25 (control first)",
            )
        if arms is not None and arms != len(shares):
            raise PlanError(f"power: --arms {arms} but --allocation lists {len(shares)} shares")
    names = ["control"] + [f"treatment_{i}" for i in range(1, len(shares))]
    if len(shares) == 2:
        names = ["control", "treatment"]
    return dict(zip(names, shares, strict=True))
