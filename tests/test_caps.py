"""Caps from the tail of candidate units (`pipeline.caps`) equal caps taken in the query."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import croctl.pipeline.collect as collect
from croctl.pipeline import Engine, bind_plan, caps, collect_stats
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN

START = datetime(2026, 10, 1, tzinfo=UTC)


@given(
    st.lists(st.floats(-50, 500, allow_nan=False), min_size=1, max_size=40),
    st.integers(0, 40),
    st.floats(0.5, 0.999),
    st.floats(-60, 510),
)
def test_tail_quantile_is_numpy_quantile_or_none_when_the_threshold_is_too_high(
    values, zeros, q, threshold
):
    padded = np.array(values + [0.0] * zeros)
    above = pl.Series(padded[padded > threshold])
    cap = caps.tail_quantile(above, len(padded), q)
    low = int(np.floor((len(padded) - 1) * q))
    if low >= len(padded) - len(above):
        assert cap == pytest.approx(float(np.quantile(padded, q)), rel=1e-12, abs=1e-12)
    else:
        assert cap is None


def _exports(folder, text_ids: bool):
    """800 units, ~5 % switchers or out of the window; purchases (some before exposure, some
    repeated ids), refunds with negative amounts, and visits most units have."""
    rng = np.random.default_rng(7)
    units = np.arange(1000, 1800)
    ids = [f"u-{u:06d}" for u in units] if text_ids else units.tolist()
    starts = [START + timedelta(hours=int(h)) for h in rng.integers(-24, 14 * 24, len(units))]
    variant = ["control" if u % 2 else "treatment" for u in units]
    switch = rng.random(len(units)) < 0.03
    pl.DataFrame(
        {
            "user_id": ids + [i for i, s in zip(ids, switch, strict=True) if s],
            "variant": variant + [v for v, s in zip(variant, switch, strict=True) if s][::-1],
            "exposed_at": starts + [START + timedelta(days=3)] * int(switch.sum()),
            "device": [["mobile", "desktop", None][u % 3] for u in units]
            + ["mobile"] * int(switch.sum()),
            "pre": rng.exponential(20, len(units) + int(switch.sum())),
        }
    ).write_parquet(folder / "exposures.parquet")
    rows = []
    for unit, start in zip(ids, starts, strict=True):
        for _ in range(rng.poisson(3)):
            rows.append(
                (unit, start + timedelta(hours=float(rng.uniform(-30, 200))), "visit", None)
            )
        for _ in range(rng.poisson(0.4)):
            amount = float(np.round(rng.lognormal(3, 1.2), 2))
            rows.append(
                (unit, start + timedelta(hours=float(rng.uniform(-30, 200))), "purchase", amount)
            )
            if rng.random() < 0.2:
                rows.append((unit, rows[-1][1] + timedelta(hours=1), "refund", -amount / 2))
    frame = pl.DataFrame(rows, schema=["user_id", "ts", "event_name", "amount"], orient="row")
    frame = frame.with_row_index("event_id").with_columns(pl.col("event_id").cast(pl.Int64))
    repeated = frame.filter(pl.col("event_name") == "purchase").head(25)  # the same ids again
    pl.concat([frame, repeated]).sample(fraction=1.0, shuffle=True, seed=3).write_parquet(
        folder / "events.parquet"
    )


def _plan(folder, text_ids: bool, revenue_cap: float = 0.99):
    _exports(folder, text_ids)
    plan = {
        **BASE_PLAN,
        "exposures": {**BASE_PLAN["exposures"], "path": "exposures.parquet"},
        "sources": {"events": {"path": "events.parquet", "unit": "user_id", "timestamp": "ts",
                               "id": "event_id"}},
        "segments": {"device": "device"},
        "metrics": {
            "conv": {"role": "primary", "type": "proportion", "source": "events",
                     "filter": "event_name = 'purchase'"},
            "revenue": {"role": "quality", "type": "mean", "source": "events", "value": "amount",
                        "filter": "event_name = 'purchase'", "window": "3d", "cap": revenue_cap,
                        "covariate": "pre"},
            "net": {"role": "guardrail", "type": "mean", "source": "events", "value": "amount",
                    "filter": "event_name IN ('purchase', 'refund')", "cap": 0.995},
            "visits": {"role": "diagnostic", "type": "mean", "source": "events",
                       "filter": "event_name = 'visit'", "cap": 0.999},
        },
    }  # fmt: skip
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return load_plan(path)


@pytest.fixture
def every_unit_sampled(monkeypatch):
    """The pass before the query reads every unit, and small exports take the tail path."""
    monkeypatch.setattr(caps, "SAMPLE", 1)
    monkeypatch.setattr(caps, "MIN_SAMPLED", 0)


def _spy(monkeypatch):
    """Record what `capped_cells` returned: caps (tail path taken) or None (fell back)."""
    outcomes = []
    real = collect.capped_cells

    def spy(*args):
        outcomes.append(result := real(*args))
        return result

    monkeypatch.setattr(collect, "capped_cells", spy)
    return outcomes


def _exact(plan, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(collect, "sample_frames", lambda bound: None)
        return collect_stats(plan)


def _assert_same(actual, expected):
    assert actual.caps == pytest.approx(expected.caps, rel=1e-12)
    assert [(c.variant, c.segments, c.units) for c in actual.cells] == [
        (c.variant, c.segments, c.units) for c in expected.cells
    ]
    for got, want in zip(actual.cells, expected.cells, strict=True):
        for m_got, m_want in zip(got.metrics, want.metrics, strict=True):
            assert dataclasses.asdict(m_got) == pytest.approx(
                dataclasses.asdict(m_want), rel=1e-9, abs=1e-9
            )
    assert actual.sources == expected.sources
    assert actual.exposures == expected.exposures


@pytest.mark.parametrize("text_ids", [False, True], ids=["integer ids", "text ids"])
def test_caps_from_the_tail_equal_caps_in_the_query(
    tmp_path, monkeypatch, every_unit_sampled, text_ids
):
    plan = _plan(tmp_path, text_ids)
    outcomes = _spy(monkeypatch)
    tail = collect_stats(plan)
    assert len(outcomes) == 1 and outcomes[0] is not None  # the tail path, no second run
    exact = _exact(plan, monkeypatch)
    assert len(outcomes) == 1
    _assert_same(tail, exact)
    assert len(tail.caps) == 3 and all(c > 0 for c in tail.caps.values())
    # and the SQL engine, which takes its caps its own way, agrees
    _assert_same(tail, collect_stats(plan, engine=Engine.DUCKDB))


def test_a_threshold_above_the_cap_falls_back_to_caps_in_the_query(tmp_path, monkeypatch):
    plan = _plan(tmp_path, text_ids=False)
    monkeypatch.setattr(caps, "SAMPLE", 1)
    monkeypatch.setattr(caps, "MIN_SAMPLED", 0)
    monkeypatch.setattr(
        collect, "thresholds_from_sample", lambda plan, sample: {1: 1e9, 2: 0.0, 3: 0.0}
    )
    outcomes = _spy(monkeypatch)
    fallen_back = collect_stats(plan)
    assert outcomes == [None]
    _assert_same(fallen_back, _exact(plan, monkeypatch))


def test_thresholds_give_way_where_the_tail_does_not_pay(tmp_path, monkeypatch):
    plan = _plan(tmp_path, text_ids=False)
    sample = collect._collect(caps.sample_frames(bind_plan(plan)))
    assert caps.thresholds_from_sample(plan, sample) is None  # 1 unit in 16 of 800: too few
    monkeypatch.setattr(caps, "MIN_SAMPLED", 0)
    assert set(caps.thresholds_from_sample(plan, sample)) == {1, 2, 3}
    # a 0.98 cap: 20 times its 2 % of units is more than a quarter of them
    low_cap = _plan(tmp_path, text_ids=False, revenue_cap=0.98)
    assert caps.thresholds_from_sample(low_cap, sample) is None


def test_csv_sources_take_the_caps_in_the_query(tmp_path, make_plan):
    from tests.conftest import write_csv

    write_csv(
        tmp_path / "exposures.csv", "user_id,variant,exposed_at", ["a,control,2026-10-02T00:00:00Z"]
    )
    write_csv(
        tmp_path / "events.csv",
        "user_id,ts,event_name,revenue",
        ["a,2026-10-03T00:00:00Z,purchase,5"],
    )
    metrics = {"rev": {"role": "primary", "type": "mean", "source": "events", "value": "revenue",
                       "filter": "event_name = 'purchase'", "cap": 0.99}}  # fmt: skip
    assert caps.sample_frames(bind_plan(load_plan(make_plan(metrics=metrics)))) is None


@pytest.mark.parametrize("sampled", [2000, 1], ids=["caps-in-the-query", "caps-from-the-tail"])
def test_a_capped_metric_no_unit_has_a_row_for_caps_at_zero(tmp_path, monkeypatch, sampled):
    """Every event a page view: the cap is the quantile of zeros (it was null, and crashed)."""
    from tests.test_dense import _edge_export
    from tests.test_engines import _report
    from tests.test_golden import _close

    plan = _edge_export(tmp_path, int)
    events = pl.read_parquet(tmp_path / "events.parquet")
    events.with_columns(event_name=pl.lit("page_view")).write_parquet(tmp_path / "events.parquet")
    monkeypatch.setattr(caps, "MIN_SAMPLED", sampled)
    report = _report(plan)
    _close(report, _report(plan, engine="duckdb"))
