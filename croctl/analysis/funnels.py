"""Funnels: per-arm reach and step-to-step conversion, with each treatment's effect per step.

The pipeline gives, per funnel step, the sum of a reach indicator (did steps 1..k). Step k's
conversion is reach_k / reach_{k-1} over units, a ratio metric whose unit-level terms are all
indicators with reach_k ⊆ reach_{k-1}: Σy² = Σy, Σd² = Σd, Σyd = Σy. The delta method then gives
its variance, as for any ratio metric. Step 1 is the share of all units. The step comparisons
form their own family, corrected with the plan's `correction`.
"""

from __future__ import annotations

from dataclasses import replace

from croctl.analysis.metrics import build_comparison, correct_family, effect_of
from croctl.plan import FunnelSpec, MetricSpec, Plan
from croctl.report import ComparisonResult, FunnelArm, FunnelResult, FunnelStepResult
from croctl.stats import Estimate, estimate_mean, estimate_ratio
from croctl.sufficient import Moments, SufficientStats


def analyze_funnels(plan: Plan, data: SufficientStats) -> list[FunnelResult]:
    """Every funnel of the plan, step comparisons corrected as one family."""
    by_variant = data.by_variant()
    offset = len(plan.metrics)
    funnels = []
    for funnel in plan.funnels:
        reach = {
            v: [by_variant[v][1][offset + k].y for k in range(len(funnel.steps))]
            for v in plan.experiment.variants
        }
        units = {v: by_variant[v][0] for v in plan.experiment.variants}
        funnels.append(_funnel(plan, funnel, units, reach))
        offset += len(funnel.steps)
    return _correct(plan, funnels)


def _step_estimate(units: int, reach: list[float], k: int) -> Estimate:
    if k == 0:
        return estimate_mean(Moments(n=units, y=reach[0], yy=reach[0]))
    y, d = reach[k], reach[k - 1]
    return estimate_ratio(Moments(n=units, y=y, yy=y, d=d, dd=d, yd=y))


def _funnel(
    plan: Plan, funnel: FunnelSpec, units: dict[str, int], reach: dict[str, list[float]]
) -> FunnelResult:
    steps = []
    for k, metric in enumerate(funnel.step_metrics):
        estimates = {v: _step_estimate(units[v], reach[v], k) for v in units}
        comparisons = [_compare(plan, metric, v, estimates) for v in plan.experiment.treatments]
        arms = {
            v: FunnelArm(units[v], int(reach[v][k]), estimates[v].value, 1 - estimates[v].value)
            for v in units
        }
        steps.append(FunnelStepResult(funnel.steps[k][0], arms, comparisons))
    return FunnelResult(funnel.name, steps)


def _compare(
    plan: Plan, metric: MetricSpec, variant: str, estimates: dict[str, Estimate]
) -> ComparisonResult:
    effect = effect_of(plan, estimates, variant)
    return build_comparison(plan, metric, variant, estimates, effect, effect.p_value)


def _correct(plan: Plan, funnels: list[FunnelResult]) -> list[FunnelResult]:
    flat = iter(correct_family(plan, [c for f in funnels for s in f.steps for c in s.comparisons]))
    return [
        replace(
            f,
            steps=[replace(s, comparisons=[next(flat) for _ in s.comparisons]) for s in f.steps],
        )
        for f in funnels
    ]
