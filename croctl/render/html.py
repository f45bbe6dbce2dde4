"""The readout as one self-contained HTML file: inline CSS and an inline SVG forest plot.

No scripts, fonts or images are fetched: the file reads the same offline, attached to a ticket
or opened from a CI artifact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

from croctl.render.format import (
    ci,
    num,
    outcome_label,
    p_value,
    pct,
    power_lines,
    sensitivity_lines,
)
from croctl.report import ComparisonResult, Report

VERDICT_COLOUR = {
    "ship": "#1a7f37",
    "do_not_ship": "#cf222e",
    "inconclusive": "#9a6700",
    "invalid": "#8250df",
}
OUTCOME_COLOUR = {
    "better": "#1a7f37",
    "worse": "#cf222e",
    "flat": "#0b5cad",
    "inconclusive": "#9a6700",
}
ROW, LABEL, PLOT, VALUE = 22, 300, 420, 190  # forest plot geometry, px

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1000px;
color:#1f2328;padding:0 1rem}
h1{font-size:1.5rem;margin:.2rem 0} h2{font-size:1.15rem;margin:1.8rem 0 .6rem}
.banner{border-left:8px solid var(--c);background:#f6f8fa;padding:.8rem 1.2rem;border-radius:6px}
.verdict{color:var(--c);font-weight:700;font-size:1.4rem;text-transform:uppercase}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:.3rem .5rem;border-bottom:1px solid #d0d7de;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37}.warn{color:#9a6700}.fail{color:#cf222e;font-weight:700}.skipped{color:#6e7781}
.better{color:#1a7f37}.worse{color:#cf222e}.inconclusive{color:#9a6700}
.muted{color:#6e7781;font-size:12px} svg{max-width:100%;height:auto}
"""


def render_html(report: Report) -> str:
    """The whole readout as an HTML document."""
    body = [
        _banner(report),
        "<h2>Effects (relative, with 95% CI)</h2>",
        forest_plot(report),
        _metrics(report),
        _notes("Power", power_lines(report)),
        _notes("Sensitivity", sensitivity_lines(report)),
        *(_funnel(report, i) for i in range(len(report.funnels))),
        _checks(report),
        _segments(report),
        f'<p class="muted">croctl {escape(report.croctl_version)} · plan sha256 '
        f"{escape(report.plan_sha256)}</p>",
    ]
    title = escape(f"{report.experiment.name}: {report.verdict.value}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


def _banner(report: Report) -> str:
    verdict = report.verdict.value
    ship = (
        f'<span class="muted"> · arm to ship: </span><b>{escape(report.ship_variant)}</b>'
        if report.ship_variant
        else ""
    )
    units = ", ".join(f"{escape(v)} {n:,}" for v, n in report.units.items())
    reasons = "".join(f"<li>{escape(r)}</li>" for r in report.reasons)
    return (
        f'<div class="banner" style="--c:{VERDICT_COLOUR[verdict]}">'
        f"<h1>{escape(report.experiment.name)}</h1>"
        f'<div><span class="verdict">{escape(verdict.replace("_", " "))}</span>{ship}</div>'
        f'<p class="muted">units: {units} · exit code {report.exit_code}</p>'
        f"<ul>{reasons}</ul></div>"
    )


def _rows(report: Report) -> list[tuple[str, ComparisonResult | None]]:
    """Forest rows: a heading per metric, one row per arm, then the segment cells."""
    rows: list[tuple[str, ComparisonResult | None]] = []
    for m in report.metrics:
        rows.append((f"{m.name} ({m.role})", None))
        rows += [(f"  {c.variant}", c) for c in m.comparisons]
    if report.segments:
        rows.append(("segments", None))
        rows += [
            (f"  {s.dimension}={s.value} · {s.metric} · {c.variant}", c)
            for s in report.segments
            for c in s.comparisons
        ]
    return rows


def forest_plot(report: Report) -> str:
    """An SVG forest plot of every metric × arm and segment cell's relative effect and CI."""
    rows = _rows(report)
    # the axis fits the metrics' CIs (at most ±100 %); wider segment CIs get arrows
    bounds = [
        abs(b)
        for m in report.metrics
        for c in m.comparisons
        for b in c.relative_ci
        if math.isfinite(b)
    ]
    scale = min(max(bounds, default=0.1) * 1.1, 1.0) or 0.1
    height = ROW * (len(rows) + 2)
    width = LABEL + PLOT + VALUE

    def x(value: float) -> float:
        clipped = max(-scale, min(scale, value))
        return LABEL + (clipped / scale + 1) / 2 * PLOT

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="forest plot" '
        f'font-family="system-ui,sans-serif" font-size="12">',
        f'<line x1="{x(0):.1f}" y1="{ROW / 2}" x2="{x(0):.1f}" y2="{height - ROW}" '
        f'stroke="#57606a" stroke-dasharray="3,3"/>',
    ]
    for tick in (-scale, -scale / 2, 0.0, scale / 2, scale):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 6}" text-anchor="middle" fill="#57606a">'
            f"{tick:+.0%}</text>"
        )
    for i, (label, c) in enumerate(rows):
        y = ROW * (i + 1)
        if c is None:
            parts.append(
                f'<text x="4" y="{y + 4}" font-weight="600">{escape(label)}</text>'
                f'<line x1="4" y1="{y + 8}" x2="{width - 4}" y2="{y + 8}" stroke="#eaeef2"/>'
            )
            continue
        parts.append(f'<text x="16" y="{y + 4}">{escape(label.strip())}</text>')
        parts.append(_interval(c, x, y, scale))
    parts.append("</svg>")
    return "\n".join(parts)


def _interval(c: ComparisonResult, to_x: Callable[[float], float], y: float, scale: float) -> str:
    """CI line, estimate dot and, for a CI running off the axis, an arrow at that edge."""
    colour = OUTCOME_COLOUR[c.outcome.value]
    lo, hi = c.relative_ci
    value = f"{pct(c.relative, 1)} [{pct(lo, 1)}, {pct(hi, 1)}]"
    text = f'<text x="{LABEL + PLOT + 10}" y="{y + 4}" fill="{colour}">{escape(value)}</text>'
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(c.relative)):
        return text
    parts = [
        f'<line x1="{to_x(lo):.1f}" y1="{y}" x2="{to_x(hi):.1f}" y2="{y}" stroke="{colour}" '
        f'stroke-width="3"/>',
        f'<circle cx="{to_x(c.relative):.1f}" cy="{y}" r="5" fill="{colour}"/>',
    ]
    for bound, edge, direction in ((lo, -scale, -1), (hi, scale, 1)):
        if abs(bound) > scale and (bound > 0) == (direction > 0):
            tip = to_x(edge)
            parts.append(f'<path d="M{tip:.1f},{y} l{-6 * direction},-5 v10 z" fill="{colour}"/>')
    return "".join(parts) + text


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _outcome(c: ComparisonResult) -> str:
    return f'<span class="{c.outcome.value}">{escape(outcome_label(c))}</span>'


def _metrics(report: Report) -> str:
    control = report.experiment.control
    rows = [
        [
            escape(m.name),
            escape(m.role),
            escape(c.variant),
            num(m.variants[control].value),
            num(m.variants[c.variant].value),
            pct(c.relative),
            ci(c.relative_ci),
            p_value(c.p_value_adjusted),
            _outcome(c),
        ]
        for m in report.metrics
        for c in m.comparisons
    ]
    headers = [
        "metric",
        "role",
        "arm",
        "control",
        "treatment",
        "relative",
        "95% CI",
        "p adj",
        "outcome",
    ]
    return "<h2>Metrics</h2>" + _table(headers, rows, {3, 4, 5, 6, 7})


def _notes(title: str, lines: list[str]) -> str:
    if not lines:
        return ""
    return f"<h2>{title}</h2><ul>" + "".join(f"<li>{escape(x)}</li>" for x in lines) + "</ul>"


def _funnel(report: Report, index: int) -> str:
    funnel = report.funnels[index]
    arms = list(report.units)
    rows = []
    for step in funnel.steps:
        effects = {c.variant: c for c in step.comparisons}
        for v in arms:
            a = step.variants[v]
            c = effects.get(v)
            rows.append(
                [
                    escape(step.name) if v == arms[0] else "",
                    escape(v),
                    f"{a.reached:,}",
                    f"{a.conversion:.1%}",
                    f"{a.drop_off:.1%}",
                    f"{pct(c.relative)} {ci(c.relative_ci)}" if c else "",
                    p_value(c.p_value_adjusted) if c else "",
                    _outcome(c) if c else "",
                ]
            )
    headers = ["step", "arm", "reached", "conversion", "drop-off", "relative [95% CI]", "p adj", ""]
    return f"<h2>Funnel: {escape(funnel.name)}</h2>" + _table(headers, rows, {2, 3, 4, 5, 6})


def _checks(report: Report) -> str:
    rows = [
        [
            escape(f"{c.name} ({c.source})" if c.source else c.name),
            f'<span class="{c.status.value}">{c.status.value}</span>',
            escape(c.message),
        ]
        for c in report.checks
    ]
    return "<h2>Trust checks</h2>" + _table(["check", "status", "detail"], rows, set())


def _segments(report: Report) -> str:
    if not report.segments:
        return ""
    rows = [
        [
            escape(f"{s.dimension} = {s.value}"),
            escape(s.metric),
            escape(c.variant),
            f"{s.variants[report.experiment.control].units:,} / {s.variants[c.variant].units:,}",
            f"{pct(c.relative)} {ci(c.relative_ci)}",
            p_value(c.p_value_adjusted),
            _outcome(c) + (" ⚠ opposite to overall" if s.opposite_sign and c.significant else ""),
        ]
        for s in report.segments
        for c in s.comparisons
    ]
    headers = ["segment", "metric", "arm", "units c / t", "relative [95% CI]", "p adj", "outcome"]
    tests = [
        [
            escape(h.dimension),
            escape(h.metric),
            escape(h.variant),
            num(h.q),
            str(h.df),
            p_value(h.p_value_adjusted),
            "<b>differs</b>" if h.differs else "similar",
        ]
        for h in report.heterogeneity
    ]
    return (
        "<h2>Segments</h2><p class='muted'>Primary and guardrails per segment value; cells are "
        "corrected as one family. Heterogeneity: Cochran's Q per dimension.</p>"
        + _table(["dimension", "metric", "arm", "Q", "df", "p adj", ""], tests, {3, 4, 5})
        + _table(headers, rows, {3, 4, 5})
    )
