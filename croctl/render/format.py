"""Number formatting shared by every renderer, so table, Markdown and HTML read the same."""

from __future__ import annotations

import math

from croctl.report import ComparisonResult, Report

MISSING = "—"


def _shown(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pct(value: float | None, digits: int = 2) -> str:
    """Signed percentage, or an em dash for missing values."""
    return f"{value:+.{digits}%}" if _shown(value) else MISSING


def num(value: float | None) -> str:
    """A metric value with 4 significant digits."""
    return f"{value:.4g}" if _shown(value) else MISSING


def p_value(value: float | None) -> str:
    """A p-value, with tiny ones shown as <0.0001."""
    if not _shown(value):
        return MISSING
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"  # type: ignore[operator]


def ci(pair: tuple[float, float], digits: int = 2) -> str:
    """A confidence interval as [lo, hi] in percentages; Fieller's unbounded one says so."""
    if pair == (-math.inf, math.inf):
        return "(unbounded)"
    return f"[{pct(pair[0], digits)}, {pct(pair[1], digits)}]"


def ci_points(pair: tuple[float, float]) -> str:
    """A relative CI in percentage points without % signs, for narrow tables: [+2.8, +17.2]."""
    if pair == (-math.inf, math.inf):
        return "(unbounded)"
    shown = [f"{100 * v:+.1f}" if _shown(v) else MISSING for v in pair]
    return f"[{shown[0]}, {shown[1]}]"


def outcome_label(c: ComparisonResult) -> str:
    """Outcome with the guardrail state when there is one."""
    if c.guardrail is not None:
        return f"{c.outcome.value}, {c.guardrail.value}"
    return c.outcome.value


def power_lines(report: Report) -> list[str]:
    """What the primary could detect, what the planned MDE still needs, guardrails' power."""
    lines = []
    power = report.power
    if power is not None and _shown(power.mde_relative):
        lines.append(
            f"{power.metric} could detect ±{power.mde_relative:.1%} with {power.power:.0%} "
            f"power at the {power.units:,} units reached"
        )
    if power is not None and power.planned_mde is not None and _shown(power.units_needed):
        days = (
            f", ≈ {power.days_more:.1f} days at {power.units_per_day:,.0f} units/day"
            if _shown(power.days_more) and power.units_per_day
            else ""
        )
        lines.append(
            f"the planned ±{power.planned_mde:.1%} needs {power.units_needed:,.0f} units "
            f"({power.units_more or 0:,.0f} more{days})"
        )
    lines += [
        f"{m.name} ({c.variant}) had {c.guardrail_power:.0%} power to clear its "
        f"{_margin(m.margin, m.margin_type)} margin"
        for m in report.metrics
        for c in m.comparisons
        if c.guardrail_power is not None and m.margin is not None
    ]
    return lines


def sensitivity_lines(report: Report) -> list[str]:
    """CUPED and capping: the variance reduction and the estimates without the adjustment."""
    lines = []
    for m in report.metrics:
        if m.variance_reduction is not None:
            lines.append(f"{m.name}: CUPED removed {m.variance_reduction:.1%} of the variance")
        if m.cap is not None:
            lines.append(f"{m.name}: per-unit values capped at {m.cap:,.6g}")
        for c in m.comparisons:
            for label, plain in (("without CUPED", c.unadjusted), ("uncapped", c.uncapped)):
                if plain is not None:
                    lines.append(
                        f"{m.name} ({c.variant}) {label}: {pct(plain.relative)} "
                        f"{ci(plain.relative_ci)}, p = {p_value(plain.p_value)} "
                        f"(reported: {pct(c.relative)})"
                    )
    return lines


def _margin(margin: float, margin_type: str | None) -> str:
    return f"{margin:.0%}" if margin_type == "relative" else f"{margin:g}"
