"""The readout as GitHub-flavoured Markdown, for CI job summaries and pull-request comments."""

from __future__ import annotations

from croctl.render.format import (
    ci,
    num,
    outcome_label,
    p_value,
    pct,
    power_lines,
    sensitivity_lines,
)
from croctl.report import FunnelResult, Report

_ICON = {"ship": "✅", "do_not_ship": "⛔", "inconclusive": "⏳", "invalid": "⚠️"}
_ESCAPES = str.maketrans({"|": "\\|", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " "})


def md(text: object) -> str:
    """Plan names and data values as Markdown text.

    A `|` would split a table's cell, and HTML (a segment value `<script>`) would be rendered
    by the page showing the summary.
    """
    return str(text).translate(_ESCAPES)


def _funnel(report: Report, funnel: FunnelResult) -> list[str]:
    arms = list(report.units)
    header = " | ".join(f"{md(v)} reached (conv., drop-off)" for v in arms)
    lines = [
        "",
        f"### Funnel: {md(funnel.name)}",
        "",
        f"| step | {header} | "
        + " | ".join(f"{md(v)} relative [95% CI], p adj" for v in arms[1:])
        + " |",
        "|---|" + "--:|" * (2 * len(arms) - 1),
    ]
    for step in funnel.steps:
        reached = " | ".join(
            f"{step.variants[v].reached:,} ({step.variants[v].conversion:.1%}, "
            f"{step.variants[v].drop_off:.1%})"
            for v in arms
        )
        effects = " | ".join(
            f"{pct(c.relative)} {ci(c.relative_ci)}, {p_value(c.p_value_adjusted)} "
            f"({c.outcome.value})"
            for c in step.comparisons
        )
        lines.append(f"| {md(step.name)} | {reached} | {effects} |")
    return lines


def render_markdown(report: Report) -> str:
    """Verdict, reasons, metrics, checks and segments as Markdown tables."""
    verdict = report.verdict.value
    name = md(report.experiment.name)
    lines = [f"## {_ICON[verdict]} {name}: **{verdict.replace('_', ' ')}**"]
    if report.ship_variant:
        lines.append(f"\nShip **{md(report.ship_variant)}**.")
    units = ", ".join(f"{md(v)}: {n:,}" for v, n in report.units.items())
    lines += [f"\nUnits — {units}. Exit code {report.exit_code}.\n", "### Why"]
    lines += [f"- {md(reason)}" for reason in report.reasons]
    lines += [
        "",
        "### Metrics",
        "",
        "| metric | role | arm | control | treatment | relative | 95% CI | p adj | outcome |",
        "|---|---|---|--:|--:|--:|--:|--:|---|",
    ]
    control = report.experiment.control
    for m in report.metrics:
        for c in m.comparisons:
            lines.append(
                f"| {md(m.name)} | {m.role} | {md(c.variant)} | {num(m.variants[control].value)} "
                f"| {num(m.variants[c.variant].value)} | {pct(c.relative)} "
                f"| {ci(c.relative_ci)} | {p_value(c.p_value_adjusted)} "
                f"| {outcome_label(c)} |"
            )
    notes_by_title = (("Power", power_lines(report)), ("Sensitivity", sensitivity_lines(report)))
    for title, notes in notes_by_title:
        if notes:
            lines += ["", f"### {title}", "", *[f"- {md(note)}" for note in notes]]
    for funnel in report.funnels:
        lines += _funnel(report, funnel)
    lines += ["", "### Trust checks", "", "| check | status | detail |", "|---|---|---|"]
    lines += [
        f"| {md(c.name)}{f' ({md(c.source)})' if c.source else ''} | {c.status.value} "
        f"| {md(c.message)} |"
        for c in report.checks
    ]
    if report.segments:
        lines += [
            "",
            "<details><summary>Segments</summary>",
            "",
            "| segment | metric | arm | relative | 95% CI | p adj | outcome |",
            "|---|---|---|--:|--:|--:|---|",
        ]
        lines += [
            f"| {md(s.dimension)}={md(s.value)} | {md(s.metric)} | {md(c.variant)} "
            f"| {pct(c.relative)} | {ci(c.relative_ci)} | {p_value(c.p_value_adjusted)} "
            f"| {outcome_label(c)} |"
            for s in report.segments
            for c in s.comparisons
        ]
        lines += ["", "</details>"]
    if report.heterogeneity:
        lines += [
            "",
            "**Does the effect differ between segments?** (Cochran's Q, adjusted p)",
            "",
            "| dimension | metric | arm | Q | df | p adj | |",
            "|---|---|---|--:|--:|--:|---|",
        ]
        lines += [
            f"| {md(h.dimension)} | {md(h.metric)} | {md(h.variant)} | {num(h.q)} | {h.df} "
            f"| {p_value(h.p_value_adjusted)} | {'**differs**' if h.differs else 'similar'} |"
            for h in report.heterogeneity
        ]
    lines += [
        "",
        f"<sub>croctl {report.croctl_version} · plan sha256 {report.plan_sha256[:12]}</sub>",
    ]
    return "\n".join(lines) + "\n"
