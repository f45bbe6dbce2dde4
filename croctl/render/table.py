"""The Rich terminal readout: verdict banner, metric rows with CI bars, checks, segments."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from croctl.render.format import (
    MISSING,
    ci_points,
    num,
    p_value,
    pct,
    power_lines,
    sensitivity_lines,
)
from croctl.report import (
    CheckStatus,
    ComparisonResult,
    FunnelArm,
    FunnelResult,
    Outcome,
    Report,
    Verdict,
)

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
BAR_WIDTH = 15
NARROW_BAR = 11
WIDE = 110  # from this width on, the table also shows control and treatment values
_TABLE_FRAME = 9  # the narrow Metrics table's edges and gaps (one less cuts its last column)


def render_table(report: Report, width: int = 80) -> RenderableType:
    """The whole readout as one Rich renderable, laid out for a terminal `width` wide."""
    parts: list[RenderableType] = [_banner(report), _metrics(report, width)]
    parts += _notes("Power", power_lines(report)) + _notes("Sensitivity", sensitivity_lines(report))
    parts += [_funnel(report, f) for f in report.funnels]
    parts.append(_checks(report))
    if report.segments:
        parts.append(_segments(report))
    parts.append(
        Text(f"croctl {report.croctl_version} · plan sha256 {report.plan_sha256[:12]}", style="dim")
    )
    return Group(*parts)


def write_table(report: Report, console: Console) -> None:
    """Print the readout on `console`."""
    console.print(render_table(report, console.width))


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


def _compact_table(title: str | Text) -> Table:
    """A borderless table with a rule under the header and one space between columns.

    Text from the plan or the data goes in as `Text`: a `str` cell is read as Rich markup, and
    a segment value such as `[/b]` would fail the render.
    """
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )


def _notes(title: str, lines: list[str]) -> list[RenderableType]:
    if not lines:
        return []
    body = Text(f"{title}\n", style="italic")
    for line in lines:
        body.append(f"  • {line}\n", style="")
    return [body]


def ci_bar(c: ComparisonResult, scale: float, width: int = BAR_WIDTH) -> Text:
    """A text bar of the relative CI on [−scale, +scale].

    ─ marks the interval, ● the estimate, │ zero; ‹ or › an interval running off the scale.
    """
    cells = [" "] * width
    if not (math.isfinite(c.relative_ci[0]) and math.isfinite(c.relative_ci[1]) and scale > 0):
        return Text(" " * width)

    def pos(x: float) -> int:
        return max(0, min(width - 1, round((x / scale + 1) / 2 * (width - 1))))

    lo, hi = pos(c.relative_ci[0]), pos(c.relative_ci[1])
    for i in range(lo, hi + 1):
        cells[i] = "─"
    if c.relative_ci[0] < -scale:
        cells[0] = "‹"
    if c.relative_ci[1] > scale:
        cells[-1] = "›"
    cells[pos(0.0)] = "│"
    cells[pos(c.relative)] = "●"
    return Text("".join(cells), style=_OUTCOME_STYLE[c.outcome] or "cyan")


def _scale(report: Report) -> float:
    """Half-width of the bars: 1.5 × the primary's widest CI bound, so it reads at a glance.

    Wider intervals of other metrics run off the edge (‹ ›) rather than squash the primary's.
    """
    bounds = [
        abs(b)
        for m in report.metrics
        if m.role == "primary"
        for c in m.comparisons
        for b in c.relative_ci
        if math.isfinite(b)
    ]
    return min(max(1.5 * max(bounds, default=0.1), 0.02), 1.0)


def _metrics(report: Report, width: int) -> Table:
    """A title row per metric (name, role), then one row per treatment arm.

    Fits 80 columns; from `WIDE` columns on, the control and treatment values are shown too.
    """
    wide = width >= WIDE
    longest = max((len(m.name) for m in report.metrics), default=0)
    bar, name = (BAR_WIDTH, min(longest, 24)) if wide else _narrow_widths(report, width, longest)
    table = _compact_table("Metrics")
    table.add_column("metric / arm", overflow="fold", min_width=name)
    if wide:
        table.add_column("control", justify="right")
        table.add_column("treatment", justify="right")
    table.add_column("relative [95% CI]", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, overflow="crop", width=bar)
    table.add_column("p adj", justify="right", no_wrap=True)
    table.add_column("outcome")
    blank = [""] * (len(table.columns) - 2)
    scale = _scale(report)
    control = report.experiment.control
    for metric in report.metrics:
        table.add_row(Text(metric.name, style="bold"), *blank, Text(metric.role, style="dim"))
        for c in metric.comparisons:
            values = (
                [num(metric.variants[control].value), num(metric.variants[c.variant].value)]
                if wide
                else []
            )
            table.add_row(
                Text(f"  {c.variant}"),
                *values,
                _relative(c),
                ci_bar(c, scale, bar),
                p_value(c.p_value_adjusted),
                _outcome(c),
            )
    table.caption = f"bars: relative CI on ±{scale:.0%}; │ zero, ● estimate"
    return table


def _narrow_widths(report: Report, width: int, longest: int) -> tuple[int, int]:
    """The bars' width and the names' least width that let the narrow table fit `width`.

    The other columns do not wrap, so a long metric name took their room and Rich cut the last
    one (`primar`, `✗ fail`). The bars give up to four characters before a long name folds.
    """
    relative = [len(_relative(c)) for m in report.metrics for c in m.comparisons]
    outcome = [len(m.role) for m in report.metrics]
    outcome += [len(_outcome(c)) for m in report.metrics for c in m.comparisons]
    p_adj = len("<0.0001")
    room = width - max(relative, default=0) - p_adj - max(outcome, default=0) - _TABLE_FRAME
    bar = max(NARROW_BAR - 4, min(NARROW_BAR, room - longest))
    return bar, max(1, min(longest, room - bar))


def _relative(c: ComparisonResult) -> str:
    return f"{pct(c.relative, 1)} {ci_points(c.relative_ci)}"


def _outcome(c: ComparisonResult) -> Text:
    """The outcome; for a guardrail its state, which is what the verdict reads."""
    if c.guardrail is None:
        return Text(c.outcome.value, style=_OUTCOME_STYLE[c.outcome])
    failed = c.guardrail.value == "fails"
    return Text(f"{'✗' if failed else '✓'} {c.guardrail.value}", style="red" if failed else "green")


def _funnel(report: Report, funnel: FunnelResult) -> Table:
    """Per step: each arm's units reaching it and step conversion; effects on that conversion."""
    table = _compact_table(Text(f"Funnel {funnel.name} (step conversion from the previous step)"))
    table.add_column("step / arm")
    table.add_column("reached", justify="right")
    table.add_column("conv. ↓drop", justify="right")
    table.add_column("relative [95% CI]", justify="right", no_wrap=True)
    table.add_column("p adj", justify="right")
    table.add_column("outcome")
    control = report.experiment.control
    for step in funnel.steps:
        arm = step.variants[control]
        table.add_row(
            Text(step.name, style="bold"), f"{arm.reached:,}", _conversion(arm), "", "", ""
        )
        for c in step.comparisons:
            arm = step.variants[c.variant]
            table.add_row(
                Text(f"  {c.variant}"),
                f"{arm.reached:,}",
                _conversion(arm),
                f"{pct(c.relative, 1)} {ci_points(c.relative_ci)}",
                p_value(c.p_value_adjusted),
                _outcome(c),
            )
    return table


def _conversion(arm: FunnelArm) -> str:
    return f"{arm.conversion:.1%} ↓{arm.drop_off:.1%}"


def _checks(report: Report) -> Table:
    table = Table(title="Trust checks", title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        name = f"{check.name} ({check.source})" if check.source else check.name
        status = Text(check.status.value, style=_CHECK_STYLE[check.status])
        table.add_row(Text(name), status, Text(check.message))
    return table


def _segments(report: Report) -> Table:
    """Per dimension: its heterogeneity tests, then per value one row per metric × arm."""
    table = _compact_table("Segments (primary and guardrails; corrected as one family)")
    labels = [f"  {s.metric} · {c.variant}" for s in report.segments for c in s.comparisons]
    table.add_column("segment", overflow="fold", min_width=min(max(map(len, labels)), 40))
    table.add_column("relative [95% CI]", justify="right", no_wrap=True)
    table.add_column("p adj", justify="right", no_wrap=True)
    table.add_column("outcome", overflow="fold")
    for dimension in dict.fromkeys(s.dimension for s in report.segments):
        table.add_row(Text(f"{dimension}: does the effect differ? (Cochran's Q)", style="bold"))
        for h in (h for h in report.heterogeneity if h.dimension == dimension):
            table.add_row(
                Text(f"  {h.metric} · {h.variant}"),
                f"Q = {h.q:.1f}, df {h.df}" if math.isfinite(h.q) else MISSING,
                p_value(h.p_value_adjusted),
                Text("differs", style="bold yellow") if h.differs else Text("similar", "dim"),
            )
        for value in dict.fromkeys(s.value for s in report.segments if s.dimension == dimension):
            cells = [s for s in report.segments if (s.dimension, s.value) == (dimension, value)]
            units = " · ".join(f"{v} {a.units:,}" for v, a in cells[0].variants.items())
            table.add_row(Text.assemble((f"{dimension} = {value}", "bold"), (f"  {units}", "dim")))
            for s in cells:
                for c in s.comparisons:
                    outcome = _outcome(c)
                    if s.opposite_sign and c.significant:
                        outcome.append(" ⚠ opposite to overall", style="bold yellow")
                    table.add_row(
                        Text(f"  {s.metric} · {c.variant}"),
                        f"{pct(c.relative, 1)} {ci_points(c.relative_ci)}",
                        p_value(c.p_value_adjusted),
                        outcome,
                    )
        table.add_section()
    return table
