"""The library entry point: a plan in, a Report out."""

from __future__ import annotations

from pathlib import Path

from croctl.analysis import analyze
from croctl.pipeline import collect_stats
from croctl.plan import Plan, load_plan
from croctl.report import Report


def evaluate(plan: Plan | str | Path, *, segments: bool = True) -> Report:
    """Read a plan's exports and return the readout.

    Args:
        plan: a `Plan`, or the path of a plan file.
        segments: compute the segment breakdown.

    Raises:
        PlanError: the plan is invalid (exit 2).
        DataError: an export is missing, unreadable or malformed (exit 3).
    """
    if not isinstance(plan, Plan):
        plan = load_plan(Path(plan))
    return analyze(plan, collect_stats(plan), segments=segments)
