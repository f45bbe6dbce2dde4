"""How a plan's YAML scalars read: as YAML 1.2 reads them, so arm names stay names."""

from __future__ import annotations

import pytest

from croctl.errors import PlanErrors
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN


def write(make_plan, control: str, other: str, alpha: str):
    """A plan with its arms and alpha written as plain (unquoted) YAML scalars."""
    arms = {"ARM_ONE": 0.5, "ARM_TWO": 0.5}
    path = make_plan(
        experiment=BASE_PLAN["experiment"] | {"control": "ARM_ONE", "variants": arms},
        decision={"alpha": "ALPHA_VALUE"},
    )
    text = path.read_text().replace("ARM_ONE", control).replace("ARM_TWO", other)
    path.write_text(text.replace("ALPHA_VALUE", alpha))
    return path


@pytest.mark.parametrize(("control", "other"), [("off", "on"), ("no", "yes"), ("n", "y")])
def test_arms_named_off_and_on_are_names_not_booleans(make_plan, control, other):
    """YAML 1.1 (PyYAML's default) read `off` as false: `control: must be text (got False)`."""
    plan = load_plan(write(make_plan, control, other, "0.05"))
    assert plan.experiment.control == control
    assert set(plan.experiment.variants) == {control, other}


def test_true_and_false_are_still_booleans(make_plan):
    with pytest.raises(PlanErrors, match=r"experiment.control: must be non-empty text \(got False"):
        load_plan(write(make_plan, "false", "true", "0.05"))


@pytest.mark.parametrize(("written", "alpha"), [("5e-2", 0.05), ("1E-2", 0.01), ("0.1", 0.1)])
def test_numbers_with_an_exponent_and_no_dot_are_numbers(make_plan, written, alpha):
    """YAML 1.1 needs a dot in a float: `5e-2` was the text '5e-2', refused as not a number."""
    plan = load_plan(write(make_plan, "control", "treatment", written))
    assert plan.decision.alpha == alpha


def test_a_share_out_of_range_names_its_arm(make_plan):
    path = make_plan(
        experiment=BASE_PLAN["experiment"] | {"variants": {"control": 1, "treatment": 0}}
    )
    with pytest.raises(PlanErrors, match=r"the share of 'treatment' must be above 0 \(got 0.0\)"):
        load_plan(path)
