"""The Rich terminal readout: verdict banner, metric rows with CI bars, checks, segments."""

from __future__ import annotations

import math

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from croctl.render.format import ci, num, outcome_label, p_value, pct
from croctl.report import CheckStatus, ComparisonResult, Outcome, Report, Verdict

_VERDICT_STYLE = {
    Verdict.SHIP: "bold green",
    Verdict.DO_NOT_SHIP: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.INVALID: "bold magenta",
}
_OUTCOME_STYLE = {
    Outcome.BETTER: "green",
    Outcome.WORSE: "red",
    Outcome.FLAT: "",
    Outcome.INCONCLUSIVE: "yellow",
}
_CHECK_STYLE = {
    CheckStatus.PASS: "green",
    CheckStatus.WARN: "yellow",
    CheckStatus.FAIL: "red",
    CheckStatus.SKIPPED: "dim",
}
BAR_WIDTH = 21


def render_table(report: Report) -> RenderableType:
    """The whole readout as one Rich renderable."""
    parts: list[RenderableType] = [_banner(report), _metrics(report), _checks(report)]
    if report.segments:
        parts.append(_segments(report))
    parts.append(
        Text(f"croctl {report.croctl_version} · plan sha256 {report.plan_sha256[:12]}", style="dim")
    )
    return Group(*parts)


def write_table(report: Report, console: Console) -> None:
    """Print the readout on `console`."""
    console.print(render_table(report))


def _banner(report: Report) -> Panel:
    verdict = report.verdict.value.replace("_", " ").upper()
    title = Text(verdict, style=_VERDICT_STYLE[report.verdict])
    if report.ship_variant:
        title.append(f"  ship: {report.ship_variant}", style="bold")
    units = ", ".join(f"{v} {n:,}" for v, n in report.units.items())
    body = Text()
    body.append(
        f"{report.experiment.name} · units: {units} · exit {report.exit_code}\n", style="dim"
    )
    for reason in report.reasons:
        body.append(f"• {reason}\n")
    return Panel(body, title=title, title_align="left", border_style=_VERDICT_STYLE[report.verdict])


def ci_bar(c: ComparisonResult, scale: float, width: int = BAR_WIDTH) -> Text:
    """A text bar of the relative CI on [−scale, +scale].

    ─ marks the interval, ● the estimate and │ zero.
    """
    cells = [" "] * width
    if not (math.isfinite(c.relative_ci[0]) and math.isfinite(c.relative_ci[1]) and scale > 0):
        return Text(" " * width)

    def pos(x: float) -> int:
        return max(0, min(width - 1, round((x / scale + 1) / 2 * (width - 1))))

    lo, hi = pos(c.relative_ci[0]), pos(c.relative_ci[1])
    for i in range(lo, hi + 1):
        cells[i] = "─"
    cells[pos(0.0)] = "│"
    cells[pos(c.relative)] = "●"
    return Text("".join(cells), style=_OUTCOME_STYLE[c.outcome] or "cyan")


def _scale(report: Report) -> float:
    bounds = [
        abs(b)
        for m in report.metrics
        for c in m.comparisons
        for b in c.relative_ci
        if math.isfinite(b)
    ]
    return min(max(bounds, default=0.1), 1.0) or 0.1


def _metrics(report: Report) -> Table:
    table = Table(title="Metrics", title_justify="left", expand=False)
    for header, justify in (
        ("metric", "left"),
        ("role", "left"),
        ("arm", "left"),
        ("control", "right"),
        ("treatment", "right"),
        ("relative [CI]", "right"),
        ("", "left"),
        ("p adj", "right"),
        ("outcome", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    scale = _scale(report)
    control = report.experiment.control
    for metric in report.metrics:
        for c in metric.comparisons:
            table.add_row(
                metric.name,
                metric.role,
                c.variant,
                num(metric.variants[control].value),
                num(metric.variants[c.variant].value),
                f"{pct(c.relative)} {ci(c.relative_ci)}",
                ci_bar(c, scale),
                p_value(c.p_value_adjusted),
                Text(outcome_label(c), style=_OUTCOME_STYLE[c.outcome]),
            )
    table.caption = f"CI bars span ±{scale:.0%} relative; │ marks zero"
    return table


def _checks(report: Report) -> Table:
    table = Table(title="Trust checks", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        name = f"{check.name} ({check.source})" if check.source else check.name
        table.add_row(
            name, Text(check.status.value, style=_CHECK_STYLE[check.status]), check.message
        )
    return table


def _segments(report: Report) -> Table:
    table = Table(
        title="Segments (primary and guardrails; corrected as one family)", title_justify="left"
    )
    for header in ("segment", "metric", "arm", "units c/t", "relative [CI]", "p adj", "outcome"):
        table.add_column(header)
    control = report.experiment.control
    for s in report.segments:
        for c in s.comparisons:
            flag = " ⚠ opposite to overall" if s.opposite_sign else ""
            table.add_row(
                f"{s.dimension}={s.value}",
                s.metric,
                c.variant,
                f"{s.variants[control].units:,}/{s.variants[c.variant].units:,}",
                f"{pct(c.relative)} {ci(c.relative_ci)}",
                p_value(c.p_value_adjusted),
                Text(outcome_label(c) + flag, style=_OUTCOME_STYLE[c.outcome]),
            )
    return table
