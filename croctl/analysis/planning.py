"""Power from the plan's own data: what the test could detect, and how long it must run.

Used twice: to explain an inconclusive readout (the report's `power` block) and by
`croctl power PLAN` before or during a test. Baselines are the control arm's estimates, so a
CUPED metric is planned with its reduced variance and a ratio metric with its delta-method one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from croctl.analysis.metrics import ArmMoments, estimate_arms
from croctl.plan import MarginType, MetricSpec, MetricType, Plan, Role
from croctl.report import PowerSummary
from croctl.stats import (
    Allocation,
    Baseline,
    guardrail_aware_power,
    mde_at,
    power_at,
    units_needed,
    units_to_clear_margin,
)
from croctl.sufficient import ExposureCounts


def control_baseline(plan: Plan, metric: MetricSpec, arms: ArmMoments) -> Baseline:
    """The control arm's mean and per-unit standard deviation of `metric`."""
    estimates, _ = estimate_arms(metric, arms)
    control = estimates[plan.experiment.control]
    sd = math.sqrt(control.variance * control.units) if control.units else math.nan
    proportion = metric.type is MetricType.PROPORTION and metric.covariate is None
    return Baseline(control.value, sd, proportion=proportion)


def planned_shares(plan: Plan) -> dict[str, float]:
    """Planned allocation per arm, control first."""
    experiment = plan.experiment
    arms = [experiment.control, *experiment.treatments]
    return {arm: experiment.variants[arm] for arm in arms}


def allocation_of(plan: Plan) -> Allocation:
    """Planned shares, control first."""
    return Allocation.of(list(planned_shares(plan).values()))


def summarize_power(
    plan: Plan, arms_by_metric: dict[str, ArmMoments], exposures: ExposureCounts
) -> PowerSummary:
    """MDE of the primary at the sample reached, and the sample and days the planned MDE needs."""
    primary = plan.primary
    baseline = control_baseline(plan, primary, arms_by_metric[primary.name])
    units = sum(m.n for m in arms_by_metric[primary.name].values())
    rules, allocation = plan.decision, allocation_of(plan)
    mde = mde_at(units, baseline, rules.alpha, rules.power, allocation) if units else math.inf
    needed = more = days = None
    if rules.mde is not None:
        needed = units_needed(baseline, rules.mde, rules.alpha, rules.power, allocation)
        if math.isfinite(needed):
            more = max(needed - units, 0.0)
            rate = exposures.units_per_day
            days = more / rate if rate else None
    return PowerSummary(
        metric=primary.name,
        power=rules.power,
        units=units,
        mde_relative=mde,
        planned_mde=rules.mde,
        units_needed=needed,
        units_more=more,
        units_per_day=exposures.units_per_day,
        days_more=days,
    )


@dataclass(frozen=True, slots=True)
class Requirement:
    """Units one test needs: the primary at the MDE, or a guardrail to clear its margin."""

    metric: str
    role: str
    baseline: float
    sd: float
    target: float  # the relative MDE, or the margin
    kind: str  # "mde" | "relative margin" | "absolute margin"
    power: float
    units: float


def requirements(
    plan: Plan, arms_by_metric: dict[str, ArmMoments], mde: float, *, guardrails: bool = True
) -> list[Requirement]:
    """Units needed by the primary at `mde` and, guardrail-aware, by each guardrail's margin.

    Guardrail-aware, every one of the G+1 tests gets power 1 − β/(G+1), so that the primary
    wins and all guardrails clear their margins together with the planned power.
    """
    rules, allocation = plan.decision, allocation_of(plan)
    guarded = [
        m for m in plan.metrics if guardrails and m.role is Role.GUARDRAIL and m.margin is not None
    ]
    power = guardrail_aware_power(rules.power, len(guarded))
    primary = plan.primary
    base = control_baseline(plan, primary, arms_by_metric[primary.name])
    result = [
        Requirement(
            primary.name,
            primary.role.value,
            base.mean,
            base.sd,
            mde,
            "mde",
            power,
            units_needed(base, mde, rules.alpha, power, allocation),
        )
    ]
    for metric in guarded:
        base = control_baseline(plan, metric, arms_by_metric[metric.name])
        margin = metric.margin or 0.0
        relative = metric.margin_type is MarginType.RELATIVE
        absolute = margin * abs(base.mean) if relative else margin
        units = units_to_clear_margin(base, absolute, rules.alpha, power, allocation)
        kind = f"{metric.margin_type.value} margin"
        result.append(
            Requirement(
                metric.name, metric.role.value, base.mean, base.sd, margin, kind, power, units
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class PowerAnswer:
    """The answer of `croctl power`: one of sample size, MDE or power, and how long it takes."""

    solved: str  # "units" | "mde" | "power"
    alpha: float
    power: float
    mde: float
    units: float  # all arms
    allocation: dict[str, float]
    baseline: Baseline
    units_per_day: float | None = None
    tests: tuple[Requirement, ...] = ()

    @property
    def per_arm(self) -> dict[str, float]:
        """Units in each arm."""
        return {arm: self.units * share for arm, share in self.allocation.items()}

    @property
    def days(self) -> float | None:
        """Days of traffic to reach `units`, when a daily figure is known."""
        if not self.units_per_day or not math.isfinite(self.units):
            return None
        return self.units / self.units_per_day


def solve_power(
    baseline: Baseline,
    allocation: dict[str, float],
    *,
    alpha: float,
    power: float,
    mde: float | None = None,
    units: float | None = None,
    units_per_day: float | None = None,
) -> PowerAnswer:
    """Solve for whichever of units (given mde), mde (given units) or power (given both).

    `allocation` maps arm labels to planned shares, control first.
    """
    total = sum(allocation.values())
    shares = {arm: share / total for arm, share in allocation.items()}
    split = Allocation.of(list(shares.values()))
    if mde is not None and units is None:
        units = units_needed(baseline, mde, alpha, power, split)
        solved = "units"
    elif units is not None and mde is None:
        mde = mde_at(units, baseline, alpha, power, split)
        solved = "mde"
    elif units is not None and mde is not None:
        power = power_at(units, baseline, mde, alpha, split)
        solved = "power"
    else:
        raise ValueError("give mde, units, or both")
    return PowerAnswer(solved, alpha, power, mde, units, shares, baseline, units_per_day)


def power_to_dict(answer: PowerAnswer) -> dict[str, object]:
    """JSON-ready answer of `croctl power` (inf/nan → None)."""

    def clean(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return {
        "solved": answer.solved,
        "alpha": answer.alpha,
        "power": clean(answer.power),
        "mde_relative": clean(answer.mde),
        "units": clean(answer.units),
        "units_per_arm": {arm: clean(n) for arm, n in answer.per_arm.items()},
        "allocation": answer.allocation,
        "baseline": {
            "mean": clean(answer.baseline.mean),
            "sd": clean(answer.baseline.sd),
            "proportion": answer.baseline.proportion,
        },
        "units_per_day": clean(answer.units_per_day),
        "days": clean(answer.days),
        "tests": [
            {
                "metric": t.metric,
                "role": t.role,
                "baseline": clean(t.baseline),
                "sd": clean(t.sd),
                "target": t.target,
                "kind": t.kind,
                "power": t.power,
                "units": clean(t.units),
            }
            for t in answer.tests
        ],
    }
