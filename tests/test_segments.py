"""Segments: per-cell effects from raw data, Cochran's Q heterogeneity, suppression, "(other)"."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare
from statsmodels.stats.meta_analysis import combine_effects

from croctl.errors import PlanError
from croctl.evaluate import evaluate
from croctl.pipeline import cells, dense
from croctl.pipeline.names import MOMENTS
from croctl.stats import compute_heterogeneity
from croctl.sufficient import Cell, CellTable, ExposureCounts, Moments, SufficientStats
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


def _stats(cells):
    exposures = ExposureCounts({}, {}, {}, {}, {}, units_seen=0, multiple_variants=0)
    return SufficientStats(CellTable.of(cells), exposures, {}, {})


def test_segment_groups_hold_each_values_cells_most_units_first():
    cells = [
        Cell(arm, (device, page), units, (Moments(n=units),))
        for arm in ("control", "treatment")
        for device, page, units in [("m", "a", 5), ("m", "b", 2), ("d", "a", 2), ("d", "c", 2)]
    ]
    data = _stats(cells)
    pages = data.segment_groups(1)
    assert [value for value, _ in pages] == ["a", "b", "c"]  # 14 units, then 4 and 4 by name
    table = list(data.cells)  # sorted by variant, then segment values
    for value, rows in pages:
        assert [table[row] for row in rows] == [c for c in table if c.segments[1] == value]
    assert data.units_by_variant() == {v: n for v, (n, _) in data.by_variant().items()}
    assert data.units_by_variant(pages[0][1]) == {"control": 7, "treatment": 7}


def test_cell_table_holds_the_cells_sorted_by_variant_then_segment_values():
    cells = [
        Cell(arm, (device,), units, (Moments(units, y=units / 2), Moments(units, d=1.5)))
        for arm, device, units in [("t", "m", 3), ("c", "m", 2), ("t", "d", 4), ("c", "d", 1)]
    ]
    table = CellTable.of(cells)
    assert list(table) == sorted(cells, key=lambda c: (c.variant, c.segments))
    assert table.variants == ("c", "t") and len(table) == 4
    assert table == CellTable.of(reversed(cells))
    assert table != CellTable.of(cells[1:])
    assert list(CellTable.of([])) == []


_FLOATS = st.floats(-1e9, 1e9, allow_nan=False)


@given(st.lists(st.tuples(st.integers(0, 10**6), *[_FLOATS] * 10), max_size=40))
def test_moments_total_adds_each_field_in_order(rows):
    expected = [0] * 11  # one field at a time, left to right: the order the cells come in
    for row in rows:
        expected = [total + value for total, value in zip(expected, row, strict=True)]
    items = [Moments(*row) for row in rows]
    assert Moments.total(items) == Moments(*expected)
    if len(items) >= 2:
        assert items[0] + items[1] == Moments.total(items[:2])


def test_by_variant_sums_each_variants_cells_as_moments_total_does():
    rng = np.random.default_rng(7)
    cells = [
        Cell(
            arm,
            (f"p{k}",),
            int(rng.integers(1, 50)),
            tuple(Moments(int(rng.integers(1, 50)), *rng.normal(0, 1e6, 10)) for _ in range(3)),
        )
        for k in range(300)
        for arm in ("control", "treatment")
    ]
    data = _stats(cells)
    table = list(data.cells)
    some = np.arange(len(table))[::-3]  # any order: the cells are added in the table's
    for chosen in (None, some):
        totals = data.by_variant(chosen)
        for arm in ("control", "treatment"):
            rows = range(len(table)) if chosen is None else sorted(chosen)
            mine = [table[row] for row in rows if table[row].variant == arm]
            units, moments = totals[arm]
            assert units == sum(c.units for c in mine)
            for i, summed in enumerate(moments):  # exactly: the same additions in the same order
                assert summed == Moments.total(c.metrics[i] for c in mine)


def test_cells_read_moments_in_the_order_moments_declares_them():
    # `collect._cells` hands each row's moments to `Moments` by position
    assert [f.name for f in fields(Moments)] == ["n", *(name for name, _, _ in MOMENTS)]


def test_a_dimension_of_thousands_of_values_reads_out_with_the_rest_pooled(tmp_path):
    """Each value's cells looked up anew was quadratic (11 k values: past two minutes)."""
    rng = np.random.default_rng(3)
    units = 12_000
    big = rng.random(units) < 0.5  # half the units on 5 pages, half over 2995 more
    pages = np.where(big, rng.integers(0, 5, units), rng.integers(5, 3_000, units))
    arms = np.where(rng.random(units) < 0.5, "treatment", "control")
    exposures = [f"u{i},{arms[i]},2026-10-02T00:00:00Z,p{pages[i]}" for i in range(units)]
    events = [f"u{i},2026-10-03T00:00:00Z,purchase" for i in range(0, units, 7)]
    (tmp_path / "exposures.csv").write_text(
        "\n".join(["user_id,variant,exposed_at,page", *exposures]) + "\n"
    )
    (tmp_path / "events.csv").write_text("\n".join(["user_id,ts,event_name", *events]) + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({**BASE_PLAN, "segments": {"page": "page"}}, sort_keys=False))
    report = evaluate(plan)
    values = [s.value for s in report.segments]
    assert len(values) == 11 and values[-1] == "(other)"
    counts = np.bincount(pages)
    top = sorted(counts, reverse=True)[:10]
    other = report.segments[-1].variants
    assert other["control"].units + other["treatment"].units == units - sum(top)
    srm = next(c for c in report.checks if c.name == "srm_segment:page")
    assert srm.status.value in ("pass", "warn")


def _srm_by_page(tmp_path, arms, pages):
    """The `srm_segment:page` check of a readout of these units' arms and pages."""
    exposures = [
        f"u{i},{arm},2026-10-02T00:00:00Z,p{page}"
        for i, (arm, page) in enumerate(zip(arms, pages, strict=True))
    ]
    (tmp_path / "exposures.csv").write_text(
        "\n".join(["user_id,variant,exposed_at,page", *exposures]) + "\n"
    )
    (tmp_path / "events.csv").write_text(
        "user_id,ts,event_name\nu0,2026-10-03T00:00:00Z,purchase\n"
    )
    plan = tmp_path / "plan.yaml"
    decision = {"srm_alpha": 0.01}
    plan.write_text(
        yaml.safe_dump({**BASE_PLAN, "segments": {"page": "page"}, "decision": decision})
    )
    report = evaluate(plan)
    return next(c for c in report.checks if c.name == "srm_segment:page")


def test_segment_srm_is_adjusted_for_the_number_of_values(tmp_path):
    """1000 balanced pages: each at p < 0.01 by chance 1 % of the time, so one nearly always is.

    The smallest p times the number of values (Bonferroni) is what is compared, checked against
    SciPy's chi-square on the counts per page; a page truly off still warns.
    """
    rng = np.random.default_rng(11)
    pages = np.repeat(np.arange(1000), 40)
    arms = np.where(rng.random(len(pages)) < 0.5, "treatment", "control")
    p_values = []
    for page in range(1000):
        treated = int((arms[pages == page] == "treatment").sum())
        observed = [40 - treated, treated]
        if min(observed) >= 8:
            p_values.append(chisquare(observed).pvalue)
    assert min(p_values) < 0.01  # unadjusted, this readout would warn

    srm = _srm_by_page(tmp_path, arms, pages)
    assert srm.status.value == "pass"
    assert srm.p_value == pytest.approx(min(1.0, min(p_values) * len(p_values)), rel=1e-9)
    assert f"adjusted for {len(p_values)} values" in srm.message

    skewed_arms = np.concatenate([arms, ["treatment"] * 160 + ["control"] * 40])
    skewed_pages = np.concatenate([pages, [5000] * 200])
    srm = _srm_by_page(tmp_path, skewed_arms, skewed_pages)
    assert srm.status.value == "warn" and "page = p5000" in srm.message


def test_segments_that_split_the_units_too_finely_are_a_plan_error(tmp_path, monkeypatch):
    """Four dimensions of 3, 5, 30 k and 400 values split 10 M units into 9.9 M cells: 84 s and
    14 GB to read out. Past `MAX_CELLS` it stops once the query has counted them."""
    monkeypatch.setattr(cells, "MAX_CELLS", 100)
    units = 400
    exposures = [
        f"u{i},{('control', 'treatment')[i % 2]},2026-10-02T00:00:00Z,p{i % 97},c{i % 7}"
        for i in range(units)
    ]
    (tmp_path / "exposures.csv").write_text(
        "\n".join(["user_id,variant,exposed_at,page,campaign", *exposures]) + "\n"
    )
    (tmp_path / "events.csv").write_text(
        "user_id,ts,event_name\nu0,2026-10-03T00:00:00Z,purchase\n"
    )
    plan = tmp_path / "plan.yaml"
    segments = {"page": "page", "campaign": "campaign"}
    plan.write_text(yaml.safe_dump({**BASE_PLAN, "segments": segments}))
    for engine in ("polars", "duckdb"):
        with pytest.raises(
            PlanError, match="segments: campaign × page split the units into 400 cells"
        ):
            evaluate(plan, engine=engine)
    report = evaluate(plan, segments=False)  # --no-segments: aggregated without them
    assert report.segments == [] and not any("segment" in c.name for c in report.checks)
    # the arrays of 2 M exposure rows and more count them before the cells' group-by
    monkeypatch.setattr(dense, "MIN_ROWS", 0)
    monkeypatch.setattr(dense, "MAX_CELLS", 100)
    monkeypatch.setattr(dense, "cells_frame", None)  # not reached
    with pytest.raises(PlanError, match="split the units into 400 cells"):
        evaluate(plan)
