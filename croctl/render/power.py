"""The answer of `croctl power` as a Rich table."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # only a type here; importing analysis would pull SciPy into every command
    from croctl.analysis.planning import PowerAnswer

_QUESTION = {
    "units": "units needed",
    "mde": "minimum detectable effect",
    "power": "power",
}


def _count(value: float | None) -> str:
    return f"{math.ceil(value):,}" if value is not None and math.isfinite(value) else "—"


def _number(value: float, form: str = ".4g") -> str:
    """`value` in `form`, or an em dash where the exports gave none (one control unit: no sd)."""
    return format(value, form) if math.isfinite(value) else "—"


def render_power(answer: PowerAnswer) -> RenderableType:
    """Headline answer, per-arm sample, duration and (guardrail-aware) per-test needs."""
    b = answer.baseline
    kind = "rate" if b.proportion else "mean"
    each = f" overall, {answer.tests[0].power:.1%} per test" if len(answer.tests) > 1 else ""
    head = Text()
    head.append(f"{_QUESTION[answer.solved]}\n", style="bold")
    head.append(
        f"baseline {kind} {_number(b.mean)} (sd {_number(b.sd)}) · α = {answer.alpha:g} two-sided"
        f"{' (Bonferroni over arms)' if len(answer.allocation) > 2 else ''} · "
        f"power {_number(answer.power, '.1%')}{each} · "
        f"MDE ±{_number(answer.mde, '.2%')} relative\n",
        style="dim",
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("arm")
    table.add_column("share", justify="right")
    table.add_column("units", justify="right")
    for arm, n in answer.per_arm.items():
        table.add_row(Text(arm), f"{answer.allocation[arm]:.0%}", _count(n))  # not as markup
    table.add_row(Text("total", style="bold"), "", Text(_count(answer.units), style="bold"))
    parts: list[RenderableType] = [head, table]
    if answer.days is not None:
        parts.append(
            Text(
                f"≈ {math.ceil(answer.days):,} days at {answer.units_per_day:,.0f} units/day",
                style="bold",
            )
        )
    if answer.tests:
        tests = Table(
            title="each test at power 1 − β/(G+1), the largest sets the total",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for header in ("metric", "role", "baseline", "target", "power", "units"):
            tests.add_column(header, justify="left" if header in ("metric", "role") else "right")
        for t in answer.tests:
            target = {
                "mde": f"MDE {t.target:.1%}",
                "relative margin": f"margin {t.target:.0%}",
            }.get(t.kind, f"margin {t.target:g} abs")
            tests.add_row(
                Text(t.metric),
                t.role,
                f"{t.baseline:.4g}",
                target,
                f"{t.power:.1%}",
                _count(t.units),
            )
        parts.append(tests)
    return Group(*parts)
