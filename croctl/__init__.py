"""croctl: trustworthy A/B test readouts from exports and a measurement plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from croctl.plan import Plan
    from croctl.report import Report

__version__ = "0.1.0"


def evaluate(plan: Plan | str | Path, *, segments: bool = True) -> Report:
    """Read a plan's exports and return the readout (see `croctl.evaluate.evaluate`).

    Imported lazily so `import croctl` stays cheap (no Polars until a readout is asked for).
    """
    from croctl.evaluate import evaluate as _evaluate

    return _evaluate(plan, segments=segments)
