"""Number formatting shared by every renderer, so table, Markdown and HTML read the same."""

from __future__ import annotations

import math

from croctl.report import ComparisonResult

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


def ci(pair: tuple[float, float]) -> str:
    """A confidence interval as [lo, hi] in percentages."""
    return f"[{pct(pair[0])}, {pct(pair[1])}]"


def outcome_label(c: ComparisonResult) -> str:
    """Outcome with the guardrail state when there is one."""
    if c.guardrail is not None:
        return f"{c.outcome.value}, guardrail {c.guardrail.value}"
    return c.outcome.value
