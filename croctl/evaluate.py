"""The library entry point: a plan in, a Report out."""

from __future__ import annotations

import importlib
import threading
from dataclasses import replace
from pathlib import Path

from croctl.pipeline import Engine, collect_stats
from croctl.plan import Plan, load_plan
from croctl.report import Report


def evaluate(
    plan: Plan | str | Path,
    *,
    segments: bool = True,
    engine: Engine | str = Engine.POLARS,
    stats: Path | None = None,
) -> Report:
    """Read a plan's exports and return the readout.

    Args:
        plan: a `Plan`, or the path of a plan file.
        segments: compute the segment breakdown (without it, the exports are aggregated without
            the plan's segments: no per-segment SRM checks either).
        engine: where to aggregate: `polars` (default), `duckdb` or `spark`.
        stats: finish from this statistics table (CSV/Parquet) instead of reading the exports.

    Raises:
        PlanError: the plan is invalid (exit 2).
        DataError: an export is missing, unreadable or malformed (exit 3).
    """
    if not isinstance(plan, Plan):
        plan = load_plan(Path(plan))
    if not segments and stats is None:  # aggregated without them: no cell per segment value
        plan = replace(plan, segments={})
    # The statistics import SciPy's special functions and root finder (~0.3 s); load them while
    # the engine aggregates the exports (it releases the GIL) instead of before.
    loading = threading.Thread(target=importlib.import_module, args=("croctl.analysis",))
    loading.start()
    try:
        data = collect_stats(plan, engine=Engine(engine), stats_file=stats)
    finally:
        loading.join()
    from croctl.analysis import analyze

    return analyze(plan, data, segments=segments)
