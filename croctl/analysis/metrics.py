"""Metric results: per-arm estimates, comparisons, correction families, guardrail tests."""

from __future__ import annotations

import math
from dataclasses import replace

from croctl.plan import (
    Correction,
    Goal,
    MarginType,
    MetricSpec,
    MetricType,
    Plan,
    RelativeCi,
    Role,
)
from croctl.report import (
    ArmResult,
    ComparisonResult,
    GuardrailState,
    MetricResult,
    Outcome,
    Sensitivity,
)
from croctl.stats import (
    CupedFit,
    Effect,
    Estimate,
    adjust_p_values,
    compute_effect,
    compute_mde,
    compute_non_inferiority,
    estimate_mean,
    estimate_ratio,
    fit_cuped,
    variance_reduction,
)
from croctl.sufficient import Moments

SECONDARY = (Role.DIAGNOSTIC, Role.QUALITY, Role.DOWNSTREAM)


ArmMoments = dict[str, Moments]  # one metric's moments per variant (overall or in a segment)


def estimate_arms(
    metric: MetricSpec, arms: ArmMoments, *, adjusted: bool = True, uncapped: bool = False
) -> tuple[dict[str, Estimate], CupedFit | None]:
    """Each arm's estimate; CUPED θ is fitted on the pooled arms when the metric has a covariate."""
    if metric.type is MetricType.RATIO:
        return {v: estimate_ratio(m) for v, m in arms.items()}, None
    fit = None
    if adjusted and metric.covariate is not None:
        fit = fit_cuped(Moments.total(arms.values()))
    return {v: estimate_mean(m, fit, uncapped=uncapped) for v, m in arms.items()}, fit


def compare_arms(
    plan: Plan, metric: MetricSpec, arms: ArmMoments
) -> tuple[dict[str, Estimate], dict[str, Effect], CupedFit | None]:
    """Estimates per arm and each treatment's raw effect against control."""
    estimates, fit = estimate_arms(metric, arms)
    effects = {v: effect_of(plan, estimates, v) for v in plan.experiment.treatments}
    return estimates, effects, fit


def effect_of(plan: Plan, estimates: dict[str, Estimate], variant: str) -> Effect:
    """One treatment arm against control, with the plan's alpha and relative-CI method."""
    return compute_effect(
        estimates[plan.experiment.control],
        estimates[variant],
        plan.decision.alpha,
        fieller=plan.decision.relative_ci is RelativeCi.FIELLER,
    )


def analyze_metrics(
    plan: Plan, arms_by_metric: dict[str, ArmMoments], caps: dict[str, float]
) -> list[MetricResult]:
    """Compare every treatment with control for every metric, with the SPEC §5 families.

    `caps` holds the value each capped metric's per-unit values were winsorized at (reported).

    The primary is corrected across treatment arms, secondary roles form one family, guardrails
    are not corrected (all must hold).
    """
    compared = {m.name: compare_arms(plan, m, arms_by_metric[m.name]) for m in plan.metrics}
    adjusted = _adjusted_p_values(plan, {n: c[1] for n, c in compared.items()})
    results = []
    for metric in plan.metrics:
        estimates, effects, fit = compared[metric.name]
        arms = arms_by_metric[metric.name]
        comparisons = [
            _comparison(plan, metric, v, estimates, effects[v], adjusted[(metric.name, v)], arms)
            for v in plan.experiment.treatments
        ]
        pooled = Moments.total(arms.values())
        results.append(
            MetricResult(
                name=metric.name,
                role=metric.role.value,
                type=metric.type.value,
                goal=metric.goal.value,
                variants={v: ArmResult(e.units, e.value) for v, e in estimates.items()},
                comparisons=comparisons,
                margin=metric.margin,
                margin_type=metric.margin_type.value if metric.margin is not None else None,
                cap=caps.get(metric.name),
                cuped_theta=fit.theta if fit else None,
                variance_reduction=variance_reduction(pooled, fit) if fit else None,
            )
        )
    return results


def _adjusted_p_values(
    plan: Plan, effects: dict[str, dict[str, Effect]]
) -> dict[tuple[str, str], float]:
    families: dict[str, list[tuple[str, str]]] = {"primary": [], "secondary": [], "none": []}
    for metric in plan.metrics:
        family = (
            "primary"
            if metric.role is Role.PRIMARY
            else "secondary"
            if metric.role in SECONDARY
            else "none"
        )
        families[family] += [(metric.name, v) for v in effects[metric.name]]
    adjusted: dict[tuple[str, str], float] = {}
    for family, keys in families.items():
        raw = [effects[name][v].p_value for name, v in keys]
        method = plan.decision.correction if family != "none" else Correction.NONE
        adjusted.update(zip(keys, adjust_p_values(raw, method), strict=True))
    return adjusted


def correct_family(plan: Plan, comparisons: list[ComparisonResult]) -> list[ComparisonResult]:
    """Adjust p-values across one family of comparisons built at their raw p, re-read significance.

    Used for segment cells and funnel steps. Comparisons with a `reason` stay outside the family.
    Adjusted ≥ raw, so only a significant raw result can turn flat.
    """
    estimable = [i for i, c in enumerate(comparisons) if c.reason is None]
    raw = [comparisons[i].p_value for i in estimable]
    adjusted = dict(zip(estimable, adjust_p_values(raw, plan.decision.correction), strict=True))
    result = []
    for i, c in enumerate(comparisons):
        if i not in adjusted:
            result.append(replace(c, p_value_adjusted=math.nan))
            continue
        significant = adjusted[i] < plan.decision.alpha
        outcome = c.outcome if significant else Outcome.FLAT
        result.append(
            replace(c, p_value_adjusted=adjusted[i], significant=significant, outcome=outcome)
        )
    return result


def _comparison(
    plan: Plan,
    metric: MetricSpec,
    variant: str,
    estimates: dict[str, Estimate],
    effect: Effect,
    p_adjusted: float,
    arms: ArmMoments,
) -> ComparisonResult:
    result = build_comparison(plan, metric, variant, estimates, effect, p_adjusted)
    unadjusted, uncapped = _sensitivity(plan, metric, variant, arms)
    return replace(result, unadjusted=unadjusted, uncapped=uncapped)


def build_comparison(
    plan: Plan,
    metric: MetricSpec,
    variant: str,
    estimates: dict[str, Estimate],
    effect: Effect,
    p_adjusted: float,
) -> ComparisonResult:
    """Comparison result with outcome, guardrail state and MDE (shared with segments)."""
    alpha = plan.decision.alpha
    control = estimates[plan.experiment.control]
    reason = effect.reason or _too_few_units(plan, control, estimates[variant])
    significant = reason is None and p_adjusted < alpha
    outcome = _outcome(metric.goal, effect.absolute, significant, reason)
    result = ComparisonResult(
        variant=variant,
        absolute=effect.absolute,
        absolute_ci=effect.absolute_ci,
        relative=effect.relative,
        relative_ci=effect.relative_ci,
        p_value=effect.p_value,
        p_value_adjusted=p_adjusted,
        significant=significant,
        outcome=outcome,
        reason=reason,
        mde_relative=_mde_relative(plan, effect, control.value),
        relative_ci_unbounded=effect.relative_unbounded,
    )
    if metric.role is Role.GUARDRAIL and reason is None:
        result = _guardrail(plan, metric, effect, result)
    return result


def _too_few_units(plan: Plan, control: Estimate, treatment: Estimate) -> str | None:
    smallest = min(control.units, treatment.units)
    if smallest < plan.checks.min_units:
        return f"{smallest} units in an arm, fewer than the {plan.checks.min_units} needed"
    return None


def _outcome(goal: Goal, absolute: float, significant: bool, reason: str | None) -> Outcome:
    if reason is not None:
        return Outcome.INCONCLUSIVE
    if not significant:
        return Outcome.FLAT
    improved = absolute > 0 if goal is Goal.INCREASE else absolute < 0
    return Outcome.BETTER if improved else Outcome.WORSE


def _mde_relative(plan: Plan, effect: Effect, control_value: float) -> float | None:
    if effect.reason or not control_value:
        return None
    return compute_mde(effect.absolute_se, plan.decision.alpha, plan.decision.power) / abs(
        control_value
    )


def _guardrail(
    plan: Plan, metric: MetricSpec, effect: Effect, result: ComparisonResult
) -> ComparisonResult:
    harm = 1 if metric.goal is Goal.DECREASE else -1
    if metric.margin is None:
        harmful = result.significant and harm * effect.absolute > 0
        state = GuardrailState.FAILS if harmful else GuardrailState.HOLDS
        return replace(result, guardrail=state)
    relative = metric.margin_type is MarginType.RELATIVE
    estimate, se = (
        (effect.relative, effect.relative_se) if relative else (effect.absolute, effect.absolute_se)
    )
    if not (math.isfinite(estimate) and math.isfinite(se)):
        # from a control value of 0 any rise is an unbounded relative harm: a significant one
        # fails, as without a margin (a treatment bringing errors where the control had none)
        if result.significant and harm * effect.absolute > 0:
            return replace(result, guardrail=GuardrailState.FAILS)
        return replace(
            result,
            outcome=Outcome.INCONCLUSIVE,
            reason="relative effect undefined (control value is 0)",
        )
    test = compute_non_inferiority(estimate, se, harm, metric.margin, plan.decision.alpha)
    return replace(
        result,
        guardrail=GuardrailState.HOLDS if test.holds else GuardrailState.FAILS,
        guardrail_bound=test.bound,
        guardrail_power=test.power,
    )


def _sensitivity(
    plan: Plan, metric: MetricSpec, variant: str, arms: ArmMoments
) -> tuple[Sensitivity | None, Sensitivity | None]:
    """The comparison without CUPED and without the cap, for metrics that use them."""
    unadjusted = _plain_effect(plan, metric, variant, arms) if metric.covariate else None
    uncapped = (
        _plain_effect(plan, metric, variant, arms, uncapped=True)
        if metric.cap is not None
        else None
    )
    return unadjusted, uncapped


def _plain_effect(
    plan: Plan, metric: MetricSpec, variant: str, arms: ArmMoments, uncapped: bool = False
) -> Sensitivity:
    """The comparison without CUPED (and, with `uncapped`, on the uncapped values)."""
    estimates, _ = estimate_arms(metric, arms, adjusted=False, uncapped=uncapped)
    effect = effect_of(plan, estimates, variant)
    return Sensitivity(effect.absolute, effect.relative, effect.relative_ci, effect.p_value)
