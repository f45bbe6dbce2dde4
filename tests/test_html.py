"""HTML and Markdown readouts: self-contained, same numbers as the JSON, and a browser shows
the forest plot."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from croctl.evaluate import evaluate
from croctl.render import render_html, render_markdown
from croctl.render.format import pct
from croctl.render.html import OUTCOME_COLOUR
from tests.conftest import ROOT

PLANS = ["checkout", "leadgen", "saas"]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def reports():
    return {name: evaluate(ROOT / "plans" / f"{name}.yaml") for name in PLANS}


@pytest.mark.parametrize("name", PLANS)
def test_html_is_self_contained_with_a_forest_plot(reports, name):
    report = reports[name]
    page = render_html(report)
    parser = _Collector()
    parser.feed(page)
    tags = [tag for tag, _ in parser.tags]
    assert "svg" in tags and not {"script", "link", "img", "iframe"} & set(tags)
    for _, attrs in parser.tags:  # nothing to fetch: no src/href pointing anywhere
        assert "src" not in attrs and "href" not in attrs
    drawn = sum(
        1
        for c in [c for m in report.metrics for c in m.comparisons]
        + [c for s in report.segments for c in s.comparisons]
        if all(map(_finite, (c.relative, *c.relative_ci)))
    )
    assert tags.count("circle") == drawn > 0  # one estimate dot per finite CI


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


@pytest.mark.parametrize("name", PLANS)
def test_markdown_and_html_show_the_json_numbers(reports, name):
    report = reports[name]
    as_json = report.to_dict()
    markdown, page = render_markdown(report), render_html(report)
    assert as_json["verdict"].replace("_", " ") in markdown and as_json["verdict"] in page
    for metric in as_json["metrics"]:
        for c in metric["comparisons"]:
            shown = pct(c["relative"])
            assert f"| {metric['name']} | {metric['role']} | {c['variant']} |" in markdown
            assert shown in markdown and shown in page, (metric["name"], c["variant"])


def test_names_and_values_from_the_plan_and_data_cannot_break_the_markdown(reports):
    """A `|` in a segment value would split its table cell; `<script>` would be rendered."""
    import dataclasses

    report = reports["checkout"]
    segment = dataclasses.replace(report.segments[0], value="<script>x</script>|a")
    metric = dataclasses.replace(report.metrics[0], name="conv|<b>rate</b>")
    check = dataclasses.replace(report.checks[0], name="srm_segment:<b>page</b>")  # a dimension
    odd = dataclasses.replace(report, segments=[segment], metrics=[metric], checks=[check])
    markdown = render_markdown(odd)
    assert "<script>" not in markdown and "<b>" not in markdown
    assert "=&lt;script&gt;x&lt;/script&gt;\\|a |" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| conv"))
    assert row.replace("\\|", "").count("|") == 10  # nine cells, none split


def test_names_and_values_that_look_like_rich_markup_are_shown_as_they_are(reports):
    """A segment value `[/b]` failed the terminal table's render (exit 70); `[red]` coloured it."""
    import dataclasses

    from croctl.render import OutputFormat, render_text

    report = reports["checkout"]  # segments, heterogeneity tests and a funnel
    segments = [dataclasses.replace(s, value="[/b]", metric="[red]m") for s in report.segments]
    check = dataclasses.replace(report.checks[0], message="[/] in a message")
    metric = dataclasses.replace(report.metrics[0], name="[/i]conv")
    funnels = [dataclasses.replace(f, name="[/u]") for f in report.funnels]
    odd = dataclasses.replace(
        report, segments=segments, metrics=[metric], checks=[check], funnels=funnels
    )
    table = render_text(odd, OutputFormat.TABLE)
    assert "[/i]conv" in table and "= [/b]" in table and "[red]m ·" in table
    assert "[/] in a message" in table and "Funnel [/u]" in table


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(html: str, folder) -> np.ndarray:
    from PIL import Image

    page = folder / "report.html"
    page.write_text(html, encoding="utf-8")
    shot = folder / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return np.asarray(Image.open(shot).convert("RGB"), dtype=int)


def _count(pixels: np.ndarray, colour: str) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels - rgb).max(axis=2) <= 12).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)")
def test_a_headless_browser_renders_the_forest_plot(reports, tmp_path):
    html = render_html(reports["checkout"])
    pixels = _screenshot(html, tmp_path)
    assert (pixels.sum(axis=2) < 720).mean() > 0.05  # not blank
    # the plot's "flat" blue is used nowhere else on the page: its CI lines and dots are there
    flat = OUTCOME_COLOUR["flat"]
    assert _count(pixels, flat) > 500
    without_plot = html[: html.index("<svg")] + html[html.index("</svg>") + 6 :]
    assert _count(_screenshot(without_plot, tmp_path), flat) < 50
