"""Golden JSON reports of the shipped plans (floats compared with tolerance).

Regenerate after an intended change with:  CROCTL_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import io
import json
import os

import pytest

from croctl.evaluate import evaluate
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"


def _close(actual, expected, path="report"):
    if isinstance(expected, float) and isinstance(actual, float):
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-12), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key in expected:
            _close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _close(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, path


@pytest.mark.parametrize("plan", ["checkout", "leadgen", "saas"])
def test_report_matches_golden(plan):
    report = evaluate(ROOT / "plans" / f"{plan}.yaml").to_dict()
    report.pop("plan_sha256")  # line endings of a checkout must not fail the golden
    report.pop("croctl_version")
    path = GOLDEN / f"{plan}.json"
    if os.environ.get("CROCTL_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
    _close(json.loads(json.dumps(report)), json.loads(path.read_text()))


@pytest.mark.parametrize("plan", ["checkout", "leadgen", "saas"])
@pytest.mark.parametrize("width", [80, 110])
def test_the_table_fits_the_terminal_and_cuts_no_word(plan, width):
    """README: the table fits 80 columns. A metric name of 26 characters pushed it to 81, and
    Rich cut the last column: `primar`, `downst`, `✗ fail`."""
    from rich.console import Console

    from croctl.render.table import write_table

    report = evaluate(ROOT / "plans" / f"{plan}.yaml")
    console = Console(width=width, record=True, file=io.StringIO())
    write_table(report, console)
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= width
    metrics = lines[: next(i for i, line in enumerate(lines) if line.startswith("Power"))]
    cells = " ".join(metrics).split()
    for metric in report.metrics:
        assert metric.role in cells  # each title row's role, whole
        for c in metric.comparisons:
            assert c.outcome.value in cells or (c.guardrail and c.guardrail.value in cells)
