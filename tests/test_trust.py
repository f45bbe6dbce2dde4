"""Trust checks (SPEC §7): exports built to trip each check exactly once, an A/A calibration
through the real pipeline, and exit codes that do not depend on the output format."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from croctl.cli import app
from croctl.evaluate import evaluate
from tests.conftest import BASE_PLAN

EXPOSED = "2026-10-02T00:00:00Z"
AFTER = "2026-10-03T00:00:00Z"
BEFORE = "2026-10-01T12:00:00Z"


@dataclass
class Export:
    """A clean two-arm export; each knob breaks exactly one thing."""

    units: int = 4000
    rate: dict[str, float] = field(default_factory=lambda: {"control": 0.2, "treatment": 0.2})
    seed: int = 0
    treatment_share: float = 0.5
    switchers: int = 0  # units also exposed to the other arm
    outside_window: int = 0  # exposure rows dated after `end`
    pre_exposure: dict[str, float] = field(default_factory=dict)  # arm → share of units
    duplicates: dict[str, int] = field(default_factory=dict)  # arm → duplicated rows
    logged: dict[str, float] = field(default_factory=dict)  # arm → share with page views logged
    min_units: int = 100

    def write(self, folder: Path, **plan_overrides: object) -> Path:
        rng = np.random.default_rng(self.seed)
        arms = np.where(rng.random(self.units) < self.treatment_share, "treatment", "control")
        exposures = [f"u{i},{arm},{EXPOSED}" for i, arm in enumerate(arms)]
        exposures += [f"u{i},{_other(arms[i])},{EXPOSED}" for i in range(self.switchers)]
        exposures += [f"late{i},control,2026-11-01T00:00:00Z" for i in range(self.outside_window)]
        events = []
        purchases = []
        for i, arm in enumerate(arms):
            if rng.random() < self.logged.get(arm, 1.0):  # client-side page views
                events.append(f"e{i},u{i},{AFTER},page_view")
            if rng.random() < self.rate[arm]:
                purchases.append((arm, f"p{i},u{i},{AFTER},purchase"))
            if rng.random() < self.pre_exposure.get(arm, 0.05):
                events.append(f"b{i},u{i},{BEFORE},purchase")
        events += [row for _, row in purchases]
        for arm, count in self.duplicates.items():  # the same purchase logged twice
            events += [row for a, row in purchases if a == arm][:count]
        (folder / "exposures.csv").write_text(
            "\n".join(["user_id,variant,exposed_at", *exposures]) + "\n"
        )
        (folder / "events.csv").write_text("\n".join(["id,user_id,ts,event_name", *events]) + "\n")
        plan = {
            **BASE_PLAN,
            "sources": {
                "events": {"path": "events.csv", "unit": "user_id", "timestamp": "ts", "id": "id"}
            },
            "checks": {"min_units": self.min_units},
            **plan_overrides,
        }
        path = folder / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        return path


def _other(arm: str) -> str:
    return "control" if arm == "treatment" else "treatment"


def _statuses(plan: Path) -> dict[str, str]:
    return {c.name: c.status.value for c in evaluate(plan).checks}


CLEAN = {
    "srm": "pass",
    "multiple_variants": "pass",
    "exposure_window": "pass",
    "pre_exposure_events": "pass",
    "duplicate_events": "pass",
    "join_coverage": "pass",
    "sample_size": "pass",
    "implausible_lift": "pass",
}


def test_a_clean_export_passes_every_check(tmp_path):
    assert _statuses(Export().write(tmp_path)) == CLEAN


@pytest.mark.parametrize(
    ("export", "check", "status"),
    [
        (Export(treatment_share=0.45), "srm", "fail"),
        (Export(switchers=10), "multiple_variants", "warn"),
        (Export(switchers=60), "multiple_variants", "fail"),
        (Export(outside_window=25), "exposure_window", "warn"),
        (Export(pre_exposure={"treatment": 0.3}), "pre_exposure_events", "warn"),
        (Export(duplicates={"control": 5, "treatment": 5}), "duplicate_events", "warn"),
        (Export(duplicates={"treatment": 150}), "duplicate_events", "fail"),
        (Export(logged={"treatment": 0.2}), "join_coverage", "fail"),
        (Export(logged={"treatment": 0.85}), "join_coverage", "warn"),
        (Export(min_units=2500), "sample_size", "warn"),
        (Export(rate={"control": 0.1, "treatment": 0.2}), "implausible_lift", "warn"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_each_check_trips_alone(tmp_path, export, check, status):
    statuses = _statuses(export.write(tmp_path))
    assert statuses[check] == status
    assert {k: v for k, v in statuses.items() if k != check} == {
        k: v for k, v in CLEAN.items() if k != check
    }


def test_a_failing_check_makes_the_verdict_invalid(tmp_path):
    report = evaluate(Export(logged={"treatment": 0.2}).write(tmp_path))
    assert report.verdict.value == "invalid" and report.exit_code == 5
    assert any("join_coverage" in reason for reason in report.reasons)


@pytest.mark.parametrize("rate", [0.2, 0.3])
def test_warnings_never_change_the_verdict(tmp_path, rate):
    export = Export(seed=3, rate={"control": 0.2, "treatment": rate})
    clean = evaluate(export.write(tmp_path))
    export.outside_window = 25
    warned = evaluate(export.write(tmp_path))
    assert warned.verdict == clean.verdict
    assert any(c.status.value == "warn" for c in warned.checks)


def test_thresholds_overridden_in_the_plan_are_echoed(tmp_path):
    plan = Export(switchers=10).write(
        tmp_path, checks={"min_units": 100, "multiple_variants_share": 0.002}
    )
    check = next(c for c in evaluate(plan).checks if c.name == "multiple_variants")
    assert check.status.value == "fail" and check.threshold == 0.002 and check.units == 10


def test_a_small_sample_makes_the_metric_inconclusive(tmp_path):
    report = evaluate(Export(units=180, rate={"control": 0.1, "treatment": 0.3}).write(tmp_path))
    assert report.metrics[0].comparisons[0].outcome.value == "inconclusive"
    assert report.verdict.value == "inconclusive"


# --- A/A calibration: the real pipeline, many random splits of one population -----------------

SIMULATIONS = 500


def test_a_a_false_positive_and_srm_rates_match_their_alphas(tmp_path):
    """Under A/A the primary is significant ~alpha of the time and SRM fires ~srm_alpha of it.

    srm_alpha is raised to 0.05 for the calibration so that 500 runs can see it; with 500 runs
    the 99.9 % binomial band around 0.05 is [0.018, 0.082].
    """
    significant = srm_alarms = 0
    for seed in range(SIMULATIONS):
        plan = Export(units=400, seed=seed).write(
            tmp_path,
            decision={"alpha": 0.05, "srm_alpha": 0.05},
            checks={"min_units": 100, "srm_warn_alpha": 0.05},
        )
        report = evaluate(plan)
        srm = next(c for c in report.checks if c.name == "srm")
        srm_alarms += srm.status.value == "fail"
        significant += report.metrics[0].comparisons[0].p_value < 0.05
    assert 0.018 <= significant / SIMULATIONS <= 0.082
    assert 0.018 <= srm_alarms / SIMULATIONS <= 0.082


# --- the exit code is the verdict's, whatever the format ----------------------------------------

runner = CliRunner()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    units=st.integers(20, 600),
    control=st.floats(0.0, 0.5),
    treatment=st.floats(0.0, 0.5),
    share=st.floats(0.3, 0.7),
    seed=st.integers(0, 2**16),
)
def test_exit_code_is_the_verdicts_for_table_and_json(
    tmp_path, units, control, treatment, share, seed
):
    export = Export(
        units=units,
        rate={"control": control, "treatment": treatment},
        treatment_share=share,
        seed=seed,
    )
    plan = str(export.write(tmp_path, checks={"min_units": 30}))
    as_json = runner.invoke(app, ["evaluate", plan, "-f", "json"])
    as_table = runner.invoke(app, ["evaluate", plan])
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == report["exit_code"] == as_table.exit_code
    assert report["exit_code"] in (0, 1, 4, 5)
    assert (
        report["exit_code"]
        == {"ship": 0, "do_not_ship": 1, "inconclusive": 4, "invalid": 5}[report["verdict"]]
    )


def test_an_all_zero_metric_is_inconclusive_not_a_crash(tmp_path):
    report = evaluate(Export(rate={"control": 0.0, "treatment": 0.0}).write(tmp_path))
    comparison = report.metrics[0].comparisons[0]
    assert comparison.outcome.value == "inconclusive" and comparison.p_value != comparison.p_value
    assert report.verdict.value == "inconclusive" and report.exit_code == 4


def test_fieller_relative_ci_from_the_plan_and_its_unbounded_state(tmp_path):
    export = Export(units=200, rate={"control": 0.02, "treatment": 0.04}, min_units=10)
    plan = export.write(tmp_path, decision={"relative_ci": "fieller"})
    report = evaluate(plan).to_dict()
    comparison = report["metrics"][0]["comparisons"][0]
    assert report["decision"]["relative_ci"] == "fieller"
    assert comparison["relative_ci_unbounded"] is True
    assert comparison["relative_ci"] == [None, None]  # ±inf are written as null
    table = runner.invoke(app, ["evaluate", str(plan)])
    assert "(unbounded)" in table.stdout
    assert "CI unbounded" in report["reasons"][0]
    bounded = Export(units=4000, rate={"control": 0.2, "treatment": 0.22}).write(
        tmp_path, decision={"relative_ci": "fieller"}
    )
    lo, hi = evaluate(bounded).metrics[0].comparisons[0].relative_ci
    assert lo < hi and math.isfinite(lo) and math.isfinite(hi)


def _errors_from_none(tmp_path, errors: int, guardrail: dict, primary: bool = False) -> dict:
    """A readout where the control has no payment errors and `errors` treated units have one.

    The errors are a guardrail, or with `primary` the primary (a feature only the treatment has).
    """
    rng = np.random.default_rng(8)
    arms = np.where(rng.random(4000) < 0.5, "control", "treatment")
    exposures = [f"u{i},{arm},2026-10-02T00:00:00Z" for i, arm in enumerate(arms)]
    treated = np.flatnonzero(arms == "treatment")
    bought = [f"u{i},2026-10-03T00:00:00Z,purchase" for i in range(0, 4000, 5)]
    failed = [f"u{i},2026-10-03T00:00:00Z,payment_error" for i in treated[:errors]]
    (tmp_path / "exposures.csv").write_text(
        "\n".join(["user_id,variant,exposed_at", *exposures]) + "\n"
    )
    (tmp_path / "events.csv").write_text(
        "\n".join(["user_id,ts,event_name", *bought, *failed]) + "\n"
    )
    metric = {"role": "guardrail", "type": "proportion", "source": "events"}
    metric |= {"filter": "event_name = 'payment_error'", "goal": "decrease", **guardrail}
    plan = tmp_path / "plan.yaml"
    metrics = {**BASE_PLAN["metrics"], "errors": metric}
    if primary:
        metrics = {"errors": {**metric, "role": "primary", "goal": "increase"}}
    plan.write_text(yaml.safe_dump({**BASE_PLAN, "metrics": metrics}))
    return evaluate(plan).to_dict()


@pytest.mark.parametrize("guardrail", [{"margin": 0.1}, {}])
def test_a_guardrail_rising_from_zero_fails_when_the_rise_is_significant(tmp_path, guardrail):
    """From a control value of 0 the relative harm is unbounded: with a relative margin the
    guardrail was 'cannot be evaluated' (inconclusive) however many errors the treatment made."""
    report = _errors_from_none(tmp_path, 100, guardrail)
    assert report["verdict"] == "do_not_ship" and report["exit_code"] == 1
    reason = next(r for r in report["reasons"] if r.startswith("errors"))
    assert "fails: significantly worse, +0.05" in reason and "from a control value of 0" in reason
    assert "nan" not in " ".join(report["reasons"])


def test_a_guardrail_rising_from_zero_insignificantly_cannot_be_evaluated(tmp_path):
    report = _errors_from_none(tmp_path, 1, {"margin": 0.1})
    assert report["verdict"] == "inconclusive" and report["exit_code"] == 4
    assert any("cannot be evaluated (relative effect undefined" in r for r in report["reasons"])


def test_a_primary_rising_from_zero_is_described_by_its_absolute_change(tmp_path):
    report = _errors_from_none(tmp_path, 100, {}, primary=True)
    assert report["verdict"] == "ship"
    assert report["reasons"][0].startswith(
        "errors (primary), treatment vs control: significantly better, +0.05"
    )
    assert "from a control value of 0 (CI +0.0" in report["reasons"][0]
    assert "nan" not in report["reasons"][0]
