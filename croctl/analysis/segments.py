"""Segment breakdowns: primary and guardrail metrics per segment value, corrected as one family."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from croctl.analysis.metrics import ArmMoments, build_comparison, compare_arms, correct_family
from croctl.plan import MetricSpec, Plan, Role
from croctl.report import (
    ArmResult,
    ComparisonResult,
    HeterogeneityResult,
    MetricResult,
    Outcome,
    SegmentResult,
)
from croctl.stats import adjust_p_values, compute_heterogeneity, normal_quantile
from croctl.sufficient import Rows, SufficientStats

OTHER = "(other)"
SUPPRESSED = "suppressed"
MAX_VALUES = 10  # high-cardinality dimensions keep the largest values, the rest pool as OTHER


def arms_of(plan: Plan, data: SufficientStats, rows: Rows | None = None) -> dict[str, ArmMoments]:
    """Per metric, its moments per planned variant, summed over some (default: all) cells."""
    by_variant = data.by_variant(rows)
    return {
        metric.name: {v: by_variant[v][1][i] for v in plan.experiment.variants if v in by_variant}
        for i, metric in enumerate(plan.metrics)
    }


def analyze_segments(
    plan: Plan, data: SufficientStats, overall: list[MetricResult]
) -> list[SegmentResult]:
    """Every (dimension, value, metric) cell; small cells are inconclusive and left uncorrected."""
    metrics = [m for m in plan.metrics if m.role in (Role.PRIMARY, Role.GUARDRAIL)]
    raw: list[SegmentResult] = []
    for dim, label in enumerate(plan.segments):
        for value, rows in _grouped_values(data, dim):
            arms = arms_of(plan, data, rows)
            if any(v not in arms[metrics[0].name] for v in plan.experiment.variants):
                continue
            raw += [_segment(plan, label, value, m, arms[m.name]) for m in metrics]
    return _correct(plan, raw, {m.name: m for m in overall})


def analyze_heterogeneity(plan: Plan, segments: list[SegmentResult]) -> list[HeterogeneityResult]:
    """Cochran's Q per (dimension, metric, arm) over the segment values' absolute effects.

    Each cell's standard error is recovered from its CI (est ± z·se). The tests form their own
    family, corrected with the plan's `correction`; `differs` reads the adjusted p-value.
    """
    z = normal_quantile(1 - plan.decision.alpha / 2)
    groups: dict[tuple[str, str, str], list[ComparisonResult]] = {}
    for s in segments:
        for c in s.comparisons:
            if not c.reason or c.reason.startswith(SUPPRESSED):
                groups.setdefault((s.dimension, s.metric, c.variant), []).append(c)
    tests = {
        key: compute_heterogeneity(
            [c.absolute for c in cells],
            [(c.absolute_ci[1] - c.absolute_ci[0]) / (2 * z) for c in cells],
        )
        for key, cells in groups.items()
    }
    adjusted = adjust_p_values([t.p_value for t in tests.values()], plan.decision.correction)
    return [
        HeterogeneityResult(
            dimension=dimension,
            metric=metric,
            variant=variant,
            cells=t.df + 1,
            q=t.q,
            df=t.df,
            p_value=t.p_value,
            p_value_adjusted=p,
            i_squared=t.i_squared,
            differs=bool(p < plan.decision.alpha),
        )
        for ((dimension, metric, variant), t), p in zip(tests.items(), adjusted, strict=True)
    ]


def _grouped_values(data: SufficientStats, dim: int) -> list[tuple[str, Rows]]:
    groups = data.segment_groups(dim)
    rest = [rows for _, rows in groups[MAX_VALUES:]]
    return groups[:MAX_VALUES] + ([(OTHER, np.concatenate(rest))] if rest else [])


def _segment(
    plan: Plan, label: str, value: str, metric: MetricSpec, arms: ArmMoments
) -> SegmentResult:
    estimates, effects, _ = compare_arms(plan, metric, arms)
    comparisons = []
    for variant, effect in effects.items():
        comparison = build_comparison(plan, metric, variant, estimates, effect, effect.p_value)
        small = min(estimates[variant].units, estimates[plan.experiment.control].units)
        if small < plan.checks.min_segment_units and comparison.reason is None:
            comparison = replace(
                comparison,
                outcome=Outcome.INCONCLUSIVE,
                significant=False,
                guardrail=None,
                reason=f"{SUPPRESSED}: {small} units in an arm (< {plan.checks.min_segment_units})",
            )
        comparisons.append(comparison)
    variants = {v: ArmResult(e.units, e.value) for v, e in estimates.items()}
    return SegmentResult(label, value, metric.name, variants, comparisons)


def _correct(
    plan: Plan, segments: list[SegmentResult], overall: dict[str, MetricResult]
) -> list[SegmentResult]:
    """Adjust p-values across every estimable segment cell; flag effects opposite to overall."""
    flat = correct_family(plan, [c for s in segments for c in s.comparisons])
    result, start = [], 0
    for segment in segments:
        comparisons = flat[start : start + len(segment.comparisons)]
        start += len(segment.comparisons)
        result.append(
            replace(
                segment,
                comparisons=comparisons,
                opposite_sign=_opposite(comparisons, overall[segment.metric]),
            )
        )
    return result


def _opposite(comparisons: list[ComparisonResult], overall: MetricResult) -> bool:
    """True when a significant segment effect points against a significant overall effect."""
    for c in comparisons:
        whole = next(o for o in overall.comparisons if o.variant == c.variant)
        if c.significant and whole.significant and (c.absolute > 0) != (whole.absolute > 0):
            return True
    return False
