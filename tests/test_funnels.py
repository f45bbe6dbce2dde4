"""Funnels: reach needs every earlier step, conversion is step-to-step, effects match raw data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from croctl.errors import PlanErrors
from croctl.evaluate import evaluate
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN, write_csv

FUNNEL = {
    "shop": {
        "source": "events",
        "window": "2d",
        "steps": {
            "cart": "event_name = 'cart'",
            "checkout": "event_name = 'checkout'",
            "purchase": "event_name = 'purchase'",
        },
    }
}


def _plan(tmp_path, funnels=FUNNEL):
    plan = {**BASE_PLAN, "funnels": funnels}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def test_reach_requires_every_earlier_step_inside_the_window(tmp_path):
    write_csv(
        tmp_path / "exposures.csv",
        "user_id,variant,exposed_at",
        [f"u{i},{'control' if i < 4 else 'treatment'},2026-10-02T00:00:00Z" for i in range(8)],
    )
    day = "2026-10-02T06:00:00Z"
    write_csv(
        tmp_path / "events.csv",
        "user_id,ts,event_name",
        [
            f"u0,{day},cart", f"u0,{day},checkout", f"u0,{day},purchase",  # full funnel
            f"u1,{day},cart", f"u1,{day},purchase",  # skipped checkout: reaches cart only
            f"u2,{day},checkout",  # no cart: reaches nothing
            f"u3,{day},cart", "u3,2026-10-05T00:00:00Z,checkout",  # checkout after the window
            f"u4,{day},cart", f"u4,{day},checkout",
            f"u5,{day},purchase", f"u5,{day},checkout", f"u5,{day},cart",  # any order counts
        ],
    )  # fmt: skip
    (funnel,) = evaluate(_plan(tmp_path)).funnels
    reached = {s.name: {v: a.reached for v, a in s.variants.items()} for s in funnel.steps}
    assert reached == {
        "cart": {"control": 3, "treatment": 2},
        "checkout": {"control": 1, "treatment": 2},
        "purchase": {"control": 1, "treatment": 1},
    }
    checkout = funnel.steps[1].variants["control"]
    assert checkout.conversion == pytest.approx(1 / 3) and checkout.drop_off == pytest.approx(2 / 3)
    assert funnel.steps[0].variants["treatment"].conversion == pytest.approx(2 / 4)


def test_step_effects_match_raw_per_unit_data(tmp_path):
    rng = np.random.default_rng(4)
    arms = np.where(rng.random(3000) < 0.5, "treatment", "control")
    p_checkout = {"control": 0.5, "treatment": 0.6}
    cart, checkout = rng.random(3000) < 0.3, rng.random(3000)
    did_checkout = cart & (checkout < np.vectorize(p_checkout.get)(arms))
    exposures = [f"u{i},{a},2026-10-02T00:00:00Z" for i, a in enumerate(arms)]
    events = [f"u{i},2026-10-02T05:00:00Z,cart" for i in np.flatnonzero(cart)]
    events += [f"u{i},2026-10-02T06:00:00Z,checkout" for i in np.flatnonzero(did_checkout)]
    write_csv(tmp_path / "exposures.csv", "user_id,variant,exposed_at", exposures)
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", events)
    funnels = {"f": {"source": "events", "steps": dict(list(FUNNEL["shop"]["steps"].items())[:2])}}
    (funnel,) = evaluate(_plan(tmp_path, funnels)).funnels
    step = funnel.steps[1]
    # step conversion = share of cart users who checked out; on large samples the delta-method
    # ratio CI matches a Welch z test on the cart users' indicators
    c = [did_checkout[(arms == "control") & cart], did_checkout[(arms == "treatment") & cart]]
    assert step.variants["control"].conversion == pytest.approx(c[0].mean())
    diff = CompareMeans(DescrStatsW(c[1].astype(float)), DescrStatsW(c[0].astype(float)))
    lo, hi = diff.zconfint_diff(usevar="unequal")
    comparison = step.comparisons[0]
    assert comparison.absolute == pytest.approx(c[1].mean() - c[0].mean())
    width = comparison.absolute_ci[1] - comparison.absolute_ci[0]
    assert width == pytest.approx(hi - lo, rel=0.02)  # n vs n−1 and the random cart count


@pytest.mark.parametrize(
    ("funnels", "message"),
    [
        (
            {"f": {"source": "evnts", "steps": {"a": "x = 1", "b": "x = 2"}}},
            "did you mean 'events'",
        ),
        ({"f": {"source": "events", "steps": {"a": "event_name = 'a'"}}}, "at least two steps"),
        ({"f": {"source": "events", "steps": {"a": "nope = 1", "b": "event_name = 'b'"}}}, "nope"),
        ({"f": {"source": "events", "stpes": {}}}, "stpes"),
    ],
)
def test_funnel_plan_errors_name_the_key(tmp_path, funnels, message):
    write_csv(tmp_path / "exposures.csv", "user_id,variant,exposed_at", ["u1,control,2026-10-02"])
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", ["u1,2026-10-02,a"])
    with pytest.raises(PlanErrors) as error:
        evaluate(load_plan(_plan(tmp_path, funnels)))
    assert "funnels.f" in str(error.value) and message in str(error.value)
