"""From sufficient statistics to a Report: metric results, segments, trust checks, verdict."""

from __future__ import annotations

from croctl import __version__
from croctl.analysis.checks import run_checks
from croctl.analysis.funnels import analyze_funnels
from croctl.analysis.metrics import analyze_metrics
from croctl.analysis.planning import summarize_power
from croctl.analysis.segments import analyze_heterogeneity, analyze_segments, arms_of
from croctl.analysis.verdict import decide
from croctl.plan import Plan
from croctl.report import DecisionInfo, ExperimentInfo, Report
from croctl.sufficient import SufficientStats

__all__ = ["analyze"]


def analyze(plan: Plan, data: SufficientStats, *, segments: bool = True) -> Report:
    """Turn sufficient statistics into the full readout (pure: no I/O)."""
    units = data.units_by_variant()
    arms = arms_of(plan, data)
    metrics = analyze_metrics(plan, arms, data.caps)
    checks = run_checks(plan, data, units, metrics)
    power = summarize_power(plan, arms, data.exposures)
    decision = decide(plan, metrics, checks, power)
    experiment, rules = plan.experiment, plan.decision
    cells = analyze_segments(plan, data, metrics) if segments else []
    return Report(
        croctl_version=__version__,
        plan_sha256=plan.sha256,
        experiment=ExperimentInfo(
            experiment.name, experiment.control, dict(experiment.variants), experiment.hypothesis
        ),
        decision=DecisionInfo(
            rules.alpha,
            rules.power,
            rules.correction.value,
            rules.rule.value,
            rules.srm_alpha,
            rules.relative_ci.value,
        ),
        verdict=decision.verdict,
        reasons=decision.reasons,
        ship_variant=decision.ship_variant,
        units={v: units.get(v, 0) for v in experiment.variants},
        checks=checks,
        metrics=metrics,
        segments=cells,
        heterogeneity=analyze_heterogeneity(plan, cells),
        funnels=analyze_funnels(plan, data),
        power=power,
    )
