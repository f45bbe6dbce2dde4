"""Segments: per-cell effects from raw data, Cochran's Q heterogeneity, suppression, "(other)"."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from statsmodels.stats.meta_analysis import combine_effects

from croctl.evaluate import evaluate
from croctl.stats import compute_heterogeneity
from tests.conftest import BASE_PLAN


def _write(folder, rates, sizes, seed=0, min_units=50):
    """Exposures with a `device` column; `rates[device][arm]` purchase probabilities."""
    rng = np.random.default_rng(seed)
    exposures, events, truth = [], [], []
    for device, size in sizes.items():
        for i in range(size):
            unit = f"{device}{i}"
            arm = "treatment" if rng.random() < 0.5 else "control"
            bought = rng.random() < rates[device][arm]
            exposures.append(f"{unit},{arm},2026-10-02T00:00:00Z,{device}")
            if bought:
                events.append(f"{unit},2026-10-03T00:00:00Z,purchase")
            truth.append((device, arm, float(bought)))
    (folder / "exposures.csv").write_text(
        "\n".join(["user_id,variant,exposed_at,device", *exposures]) + "\n"
    )
    (folder / "events.csv").write_text("\n".join(["user_id,ts,event_name", *events]) + "\n")
    plan = {**BASE_PLAN, "segments": {"device": "device"}, "checks": {"min_units": min_units}}
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path, truth


def test_segment_cells_match_raw_per_cell_effects(tmp_path):
    rates = {
        "mobile": {"control": 0.2, "treatment": 0.3},
        "desktop": {"control": 0.3, "treatment": 0.3},
    }
    plan, truth = _write(tmp_path, rates, {"mobile": 3000, "desktop": 3000})
    report = evaluate(plan)
    for cell in report.segments:
        y = {a: [v for d, arm, v in truth if d == cell.value and arm == a] for a in rates["mobile"]}
        expected = np.mean(y["treatment"]) / np.mean(y["control"]) - 1
        assert cell.comparisons[0].relative == pytest.approx(expected, rel=1e-9)
        assert cell.variants["control"].units == len(y["control"])


def test_an_effect_that_reverses_between_segments_is_heterogeneous_and_called_out(tmp_path):
    rates = {
        "mobile": {"control": 0.2, "treatment": 0.3},
        "desktop": {"control": 0.3, "treatment": 0.2},
        "tablet": {"control": 0.2, "treatment": 0.3},
    }
    plan, _ = _write(tmp_path, rates, {"mobile": 4000, "desktop": 2000, "tablet": 2000})
    report = evaluate(plan)
    (test,) = report.heterogeneity
    assert test.dimension == "device" and test.differs and test.df == 2
    assert test.p_value < 1e-6
    desktop = next(s for s in report.segments if s.value == "desktop")
    assert desktop.opposite_sign and desktop.comparisons[0].outcome.value == "worse"


def test_a_homogeneous_effect_is_not_flagged(tmp_path):
    rates = {d: {"control": 0.2, "treatment": 0.24} for d in ("mobile", "desktop", "tablet")}
    plan, _ = _write(tmp_path, rates, {"mobile": 3000, "desktop": 3000, "tablet": 3000}, seed=1)
    (test,) = evaluate(plan).heterogeneity
    assert test.p_value > 0.001  # one draw under the null: not extreme (5 % of draws fall < 0.05)


def test_small_cells_are_suppressed_and_many_values_pool_as_other(tmp_path):
    sizes = {f"d{i:02d}": 400 for i in range(12)} | {"tiny": 40}
    rates = {d: {"control": 0.2, "treatment": 0.2} for d in sizes}
    plan, _ = _write(tmp_path, rates, sizes)
    report = evaluate(plan)
    values = [s.value for s in report.segments]
    assert len(values) == 11 and values[-1] == "(other)"  # top 10 by units, then the rest
    plan, _ = _write(
        tmp_path,
        {"big": rates["d00"], "tiny": rates["tiny"]},
        {"big": 2000, "tiny": 40},
        min_units=10,
    )
    tiny = next(s for s in evaluate(plan).segments if s.value == "tiny")
    assert tiny.comparisons[0].reason.startswith("suppressed")


def test_cochran_q_matches_statsmodels_meta_analysis():
    effects = np.array([0.10, 0.30, 0.22, -0.05])
    variances = np.array([0.010, 0.020, 0.015, 0.030])
    ours = compute_heterogeneity(list(effects), list(np.sqrt(variances)))
    reference = combine_effects(effects, variances)
    assert ours.q == pytest.approx(reference.q, rel=1e-12)
    assert ours.df == reference.df_resid
    assert ours.i_squared == pytest.approx(max(reference.i2, 0.0), abs=1e-12)
    assert ours.p_value == pytest.approx(reference.test_homogeneity().pvalue, rel=1e-9)
