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
from croctl.report import Report

_ICON = {"ship": "✅", "do_not_ship": "⛔", "inconclusive": "⏳", "invalid": "⚠️"}


def render_markdown(report: Report) -> str:
    """Verdict, reasons, metrics, checks and segments as Markdown tables."""
    verdict = report.verdict.value
    lines = [f"## {_ICON[verdict]} {report.experiment.name}: **{verdict.replace('_', ' ')}**"]
    if report.ship_variant:
        lines.append(f"\nShip **{report.ship_variant}**.")
    units = ", ".join(f"{v}: {n:,}" for v, n in report.units.items())
    lines += [f"\nUnits — {units}. Exit code {report.exit_code}.\n", "### Why"]
    lines += [f"- {reason}" for reason in report.reasons]
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
                f"| {m.name} | {m.role} | {c.variant} | {num(m.variants[control].value)} "
                f"| {num(m.variants[c.variant].value)} | {pct(c.relative)} "
                f"| {ci(c.relative_ci)} | {p_value(c.p_value_adjusted)} "
                f"| {outcome_label(c)} |"
            )
    notes_by_title = (("Power", power_lines(report)), ("Sensitivity", sensitivity_lines(report)))
    for title, notes in notes_by_title:
        if notes:
            lines += ["", f"### {title}", "", *[f"- {note}" for note in notes]]
    lines += ["", "### Trust checks", "", "| check | status | detail |", "|---|---|---|"]
    lines += [
        f"| {c.name}{f' ({c.source})' if c.source else ''} | {c.status.value} | {c.message} |"
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
            f"| {s.dimension}={s.value} | {s.metric} | {c.variant} | {pct(c.relative)} "
            f"| {ci(c.relative_ci)} | {p_value(c.p_value_adjusted)} | {outcome_label(c)} |"
            for s in report.segments
            for c in s.comparisons
        ]
        lines += ["", "</details>"]
    lines += [
        "",
        f"<sub>croctl {report.croctl_version} · plan sha256 {report.plan_sha256[:12]}</sub>",
    ]
    return "\n".join(lines) + "\n"
