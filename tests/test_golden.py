"""Golden JSON reports of the shipped plans (floats compared with tolerance).

Regenerate after an intended change with:  CROCTL_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

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
