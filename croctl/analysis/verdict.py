"""The verdict of SPEC §6 and the reasons that justify it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from croctl.plan import Plan, Role, Rule
from croctl.report import (
    CheckResult,
    CheckStatus,
    ComparisonResult,
    GuardrailState,
    MetricResult,
    Outcome,
    PowerSummary,
    Verdict,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict, the arm to ship (if any) and why."""

    verdict: Verdict
    reasons: list[str]
    ship_variant: str | None = None


def decide(
    plan: Plan,
    metrics: list[MetricResult],
    checks: list[CheckResult],
    power: PowerSummary | None = None,
) -> Decision:
    """Apply the plan's rule: invalid on a failed check, else ship / do not ship / inconclusive.

    An arm ships when it qualifies under the rule and all its guardrails hold; with several
    qualifying arms the one with the largest primary relative effect in the goal direction ships.
    """
    failed = [c for c in checks if c.status is CheckStatus.FAIL]
    if failed:
        return Decision(
            Verdict.INVALID, [f"trust check {c.name} failed: {c.message}" for c in failed]
        )
    primary = next(m for m in metrics if m.role == Role.PRIMARY.value)
    guardrails = [m for m in metrics if m.role == Role.GUARDRAIL.value]
    detectable = _detectable(power)
    arms = {c.variant: _arm(plan, primary, c, guardrails, detectable) for c in primary.comparisons}
    shippable = [v for v, (ok, _) in arms.items() if ok]
    if shippable:
        sign = 1 if primary.goal == "increase" else -1
        best = max(shippable, key=lambda v: sign * _primary(primary, v).relative)
        others = [r for v, (_, rs) in arms.items() if v != best for r in rs]
        return Decision(Verdict.SHIP, arms[best][1] + others, ship_variant=best)
    reasons = [r for _, rs in arms.values() for r in rs]
    if any(_harmed(plan, primary, v, guardrails) for v in arms):
        return Decision(Verdict.DO_NOT_SHIP, reasons)
    return Decision(Verdict.INCONCLUSIVE, reasons + _how_much_longer(power))


def _primary(primary: MetricResult, variant: str) -> ComparisonResult:
    return next(c for c in primary.comparisons if c.variant == variant)


def _guardrail_comparisons(
    guardrails: list[MetricResult], variant: str
) -> list[tuple[MetricResult, ComparisonResult]]:
    return [(g, c) for g in guardrails for c in g.comparisons if c.variant == variant]


def _harmed(
    plan: Plan, primary: MetricResult, variant: str, guardrails: list[MetricResult]
) -> bool:
    broken = any(
        c.guardrail is GuardrailState.FAILS for _, c in _guardrail_comparisons(guardrails, variant)
    )
    return broken or _primary(primary, variant).outcome is Outcome.WORSE


def _detectable(power: PowerSummary | None) -> float | None:
    """The primary's MDE at the sample reached, as the report's power block gives it (or None).

    The reasons quote that one number, not each comparison's own (its observed standard error):
    the two differ a little (the power block plans with the treated arm's variance at the
    effect, and the planned split), and a readout should not give two.
    """
    if power is None or not math.isfinite(power.mde_relative):
        return None
    return power.mde_relative


def _arm(
    plan: Plan,
    primary: MetricResult,
    comparison: ComparisonResult,
    guardrails: list[MetricResult],
    detectable: float | None,
) -> tuple[bool, list[str]]:
    """Whether this arm may ship, and the reasons (primary first, then guardrails)."""
    reasons = [_describe_primary(primary, comparison, detectable)]
    guard_ok = True
    for metric, c in _guardrail_comparisons(guardrails, comparison.variant):
        guard_ok &= c.guardrail is GuardrailState.HOLDS
        reasons.append(_describe_guardrail(metric, c))
    if plan.decision.rule is Rule.SUPERIORITY:
        primary_ok = comparison.outcome is Outcome.BETTER
    else:
        primary_ok = comparison.outcome in (Outcome.BETTER, Outcome.FLAT)
    return primary_ok and guard_ok, reasons


def _how_much_longer(power: PowerSummary | None) -> list[str]:
    """For an inconclusive primary: the sample and days the planned MDE still needs."""
    if power is None or power.planned_mde is None or power.units_more is None:
        return []
    goal = f"{power.power:.0%} power for the planned ±{power.planned_mde:.1%}"
    if power.units_more == 0:
        return [f"{power.metric}: the sample already gives {goal}; the effect is smaller"]
    days = (
        f", ≈ {power.days_more:.1f} more days at {power.units_per_day:,.0f} units/day"
        if power.days_more is not None and power.units_per_day
        else ""
    )
    return [f"{power.metric}: {goal} needs ≈ {power.units_more:,.0f} more units{days}"]


def _pct(value: float) -> str:
    return f"{value:+.2%}"


def _describe_primary(metric: MetricResult, c: ComparisonResult, detectable: float | None) -> str:
    name = f"{metric.name} (primary), {c.variant} vs control"
    if c.outcome is Outcome.INCONCLUSIVE:
        return f"{name}: inconclusive ({c.reason})"
    if not math.isfinite(c.relative):  # from a control value of 0: the absolute change
        low, high = c.absolute_ci
        interval = f"CI {low:+.4g} to {high:+.4g}"
    elif c.relative_ci_unbounded:
        interval = "CI unbounded: the control mean is too uncertain"
    else:
        interval = f"CI {_pct(c.relative_ci[0])} to {_pct(c.relative_ci[1])}"
    effect = f"{_change(c)} ({interval}), adjusted p = {c.p_value_adjusted:.3g}"
    if c.outcome is Outcome.FLAT:
        said = f"; detectable effect at this sample ≈ ±{detectable:.1%}" if detectable else ""
        return f"{name}: not significant, {effect}{said}"
    return f"{name}: significantly {c.outcome.value}, {effect}"


def _describe_guardrail(metric: MetricResult, c: ComparisonResult) -> str:
    name = f"{metric.name} (guardrail), {c.variant}"
    if c.guardrail is None:
        return f"{name}: cannot be evaluated ({c.reason}), so the arm cannot ship"
    if metric.margin is not None and c.guardrail_bound is not None:
        scale = "%" if metric.margin_type == "relative" else ""
        margin = f"{metric.margin:.1%}" if scale else f"{metric.margin:g}"
        bound = f"{c.guardrail_bound:.1%}" if scale else f"{c.guardrail_bound:.4g}"
        verb = "holds" if c.guardrail is GuardrailState.HOLDS else "fails"
        return (
            f"{name} {verb}: worst plausible harm {bound} vs margin {margin} "
            f"(observed {_change(c)})"
        )
    if c.guardrail is GuardrailState.FAILS:
        return f"{name} fails: significantly worse, {_change(c)} (p = {c.p_value:.3g})"
    return f"{name} holds: no significant harm ({_change(c)}, p = {c.p_value:.3g})"


def _change(c: ComparisonResult) -> str:
    """The relative change, or the absolute one from a control value of 0 (no relative one)."""
    if math.isfinite(c.relative):
        return _pct(c.relative)
    return f"{c.absolute:+.4g} from a control value of 0"
