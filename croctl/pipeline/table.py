"""The sufficient-statistics table: what every engine hands back, in one tidy shape.

One row per (section, variant[, segment values]); the `section` column says which part it is:

    exposures           exposure rows per variant: rows, no_timestamp, before_start, after_end,
                        nonfinite:<covariate>
    multiple_variants   one row: units, multiple, first_start, last_start (epoch seconds)
    rows:<source>       kept rows per variant: rows, pre_exposure, duplicates, nonfinite:<column>
    coverage:<source>   exposed units with any row in the source, per variant: covered
    caps                one row: cap<i>, the pooled quantile of each capped metric
    cells               per variant and segment values: n and the sums y<i>, yy<i>, d<i>, dd<i>,
                        yd<i>, x<i>, xx<i>, xy<i>, r<i>, rr<i> of each metric i

Columns a section does not use are null. `croctl sql` prints the query that computes it,
`croctl evaluate --stats FILE` finishes a readout from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl

from croctl.errors import DataError
from croctl.pipeline.names import MOMENTS, UNIT, VARIANT, check_col, seg_col
from croctl.plan import MetricType, Plan

SECTION = "section"


def _kinds(plan: Plan, i: int) -> set[str]:
    """Per-unit columns metric i has: y always; d for ratios; x with a covariate; r when capped."""
    metric = plan.measured[i]
    kinds = {"y"}
    if metric.type is MetricType.RATIO:
        kinds.add("d")
    if metric.covariate is not None:
        kinds.add("x")
    if metric.cap is not None:
        kinds.add("r")
    return kinds


def moment_columns(plan: Plan) -> list[tuple[str, str, str | None]]:
    """(table column, left per-unit column, right per-unit column) for every sum in `cells`."""
    result = []
    for i in range(len(plan.measured)):
        kinds = _kinds(plan, i)
        for moment, left, right in MOMENTS:
            if left in kinds and (right is None or right in kinds):
                result.append((f"{moment}{i}", f"{left}{i}", f"{right}{i}" if right else None))
    return result


def cell_keys(plan: Plan) -> list[str]:
    """The columns naming a cell: the variant and each segment dimension's value."""
    return [VARIANT, *[seg_col(i) for i in range(len(plan.segments))]]


def cap_columns(plan: Plan) -> list[str]:
    """`cap<i>` for every capped metric i."""
    return [f"cap{i}" for i in plan.capped]


def source_counts(plan: Plan, name: str) -> list[str]:
    """The trust-check counts of source `name`: rows kept, before exposure, duplicates, NaN/inf."""
    spec = plan.sources[name]
    return [
        "rows",
        *(["pre_exposure"] if spec.timestamp else []),
        *(["duplicates"] if spec.id else []),
        *[f"nonfinite:{c}" for c in plan.source_values(name)],
    ]


def check_columns(plan: Plan) -> list[str]:
    """Per-unit columns holding every source's check counts (the Polars engine sums them)."""
    return [check_col(name, c) for name in plan.used_sources for c in source_counts(plan, name)]


def section_columns(plan: Plan) -> dict[str, list[str]]:
    """The columns of each section, in order."""
    sections = {
        "exposures": [
            VARIANT,
            "rows",
            "no_timestamp",
            "before_start",
            "after_end",
            *[f"nonfinite:{c}" for c in plan.covariate_columns],
        ],
        "multiple_variants": ["units", "multiple", "first_start", "last_start"],
    }
    for name in plan.used_sources:
        sections[f"rows:{name}"] = [VARIANT, *source_counts(plan, name)]
        sections[f"coverage:{name}"] = [VARIANT, "covered"]
    caps = cap_columns(plan)
    if caps:
        sections["caps"] = caps
    sections["cells"] = [*cell_keys(plan), "n", *[c for c, _, _ in moment_columns(plan)]]
    return sections


def table_columns(plan: Plan) -> list[tuple[str, str]]:
    """Every column of the table after `section`, with its SQL type."""
    seen: dict[str, str] = {}
    for columns in section_columns(plan).values():
        for column in columns:
            text = column == VARIANT or column.startswith("__seg")
            seen.setdefault(column, "VARCHAR" if text else "DOUBLE")
    return list(seen.items())


def unit_value_columns(plan: Plan) -> list[str]:
    """Columns of the per-unit value table before caps (SQL engine)."""
    columns = [UNIT, *cell_keys(plan)]
    for i, metric in enumerate(plan.measured):
        columns.append(f"y{i}")
        if metric.type is MetricType.RATIO:
            columns.append(f"d{i}")
        if metric.covariate is not None:
            columns.append(f"x{i}")
    return columns


def frames_from_table(table: pl.DataFrame, plan: Plan, label: str) -> dict[str, pl.DataFrame]:
    """Split a statistics table back into its sections.

    Raises:
        DataError: a column or a section the plan needs is missing.
    """
    expected = section_columns(plan)
    if SECTION not in table.columns:
        raise DataError(
            f"{label}: no '{SECTION}' column: not a croctl statistics table",
            hint="produce it with the query `croctl sql PLAN` prints",
        )
    missing = sorted({c for cs in expected.values() for c in cs} - set(table.columns))
    if missing:
        raise DataError(
            f"{label}: columns missing for this plan: {', '.join(missing[:6])}",
            hint="was the table computed for this plan? rerun `croctl sql PLAN`",
        )
    if table.get_column(SECTION).null_count():
        raise DataError(f"{label}: a row has no '{SECTION}'", hint=RERUN)
    frames = {
        section: table.filter(pl.col(SECTION) == section).select(columns)
        for section, columns in expected.items()
    }
    for section, frame in frames.items():
        # a moment that is not finite is refused per metric (`refuse_bad_data`), once the
        # sources' NaN counts have had their say: an infinite value makes its sums NaN too
        _check_section(frame, f"{label}: section '{section}'", cells=section == "cells")
    if frames["cells"].is_empty() and not frames["exposures"].is_empty():
        raise no_units_in_window(plan)  # the exposures were read: none is in the window
    for section in ("multiple_variants", "cells", "exposures"):
        if frames[section].is_empty():
            raise DataError(
                f"{label}: section '{section}' has no rows",
                hint="was the query run on the plan's data? rerun `croctl sql PLAN`",
            )
    exposed = set(frames["exposures"].get_column(VARIANT))
    unexposed = sorted(set(frames["cells"].get_column(VARIANT)) - exposed, key=str)
    if unexposed:  # every unit in a cell came from an exposure row
        raise DataError(
            f"{label}: section 'exposures' has no row for variant {unexposed[0]!r} of 'cells'",
            hint=RERUN,
        )
    frames.setdefault("caps", pl.DataFrame())
    return frames


RERUN = "was the table computed for this plan and edited since? rerun `croctl sql PLAN`"
_MOMENTS = "|".join(moment for moment, _, _ in MOMENTS)
_MOMENT_SUMS = re.compile(rf"({_MOMENTS})\d+")
# columns that may be negative or fractional; the others are counts
_SUMS = re.compile(rf"({_MOMENTS}|cap)\d+|(first|last)_start")


def _check_section(frame: pl.DataFrame, where: str, *, cells: bool) -> None:
    """Refuse what no engine writes.

    Text or NaN for numbers (but in the `cells` section's moments), negative or fractional
    counts, and a second row for the same variant (and segment values).

    Raises:
        DataError: naming the section and column.
    """
    keys = [c for c in frame.columns if c == VARIANT or c.startswith("__seg")]
    for name, dtype in frame.schema.items():
        if name in keys or dtype == pl.Null:
            continue
        column = frame.get_column(name)
        if not dtype.is_numeric():
            raise DataError(f"{where}: column '{name}' holds {dtype}, not numbers", hint=RERUN)
        values = column.drop_nulls().cast(pl.Float64)
        if not values.is_finite().all() and not (cells and _MOMENT_SUMS.fullmatch(name)):
            raise DataError(f"{where}: column '{name}' holds NaN or infinity", hint=RERUN)
        odd = values.filter((values < 0) | (values != values.floor()))
        if not _SUMS.fullmatch(name) and len(odd):
            message = f"{where}: column '{name}' is a count, and holds {odd[0]:g}"
            raise DataError(message, hint=RERUN)
    if frame.height > 1 and frame.select(keys or pl.lit(0)).is_duplicated().any():
        raise DataError(f"{where}: two rows for the same variant", hint=RERUN)


def read_stats_table(path: Path) -> pl.DataFrame:
    """Read a statistics table from CSV or Parquet.

    Raises:
        DataError: missing or unreadable file.
    """
    if not path.is_file():
        raise DataError(
            f"--stats {path}: no such file", hint="give the table `croctl sql` computed"
        )
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path, glob=False)
        return pl.read_csv(
            path, infer_schema_length=None, schema_overrides=_text_columns(path), glob=False
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"--stats {path}: cannot read ({first})", hint="CSV with a header, or Parquet"
        ) from exc


def _text_columns(path: Path) -> dict[str, Any]:
    header = pl.read_csv(path, n_rows=0, glob=False).columns
    return {c: pl.String for c in header if c in (SECTION, VARIANT) or c.startswith("__seg")}


def no_units_in_window(plan: Plan) -> DataError:
    """The error for a readout whose exposures all fall outside the window (or `--as-of`)."""
    return DataError(
        f"{plan.exposures.path.name}: no exposures inside the experiment window",
        hint="check experiment.start/end (and --as-of) against the exposure timestamps",
    )
