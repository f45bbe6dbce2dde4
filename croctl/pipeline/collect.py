"""Execute the query once and convert its small outputs into `SufficientStats`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from croctl.errors import DataError
from croctl.io import FailedExport, diagnose_failure
from croctl.pipeline import dense, sift
from croctl.pipeline.bind import check_filters
from croctl.pipeline.bound import BoundPlan, BoundSource
from croctl.pipeline.build import build_query
from croctl.pipeline.caps import capped_cells, sample_frames, thresholds_from_sample
from croctl.pipeline.cells import refuse_too_many_cells
from croctl.pipeline.coverage import Bitmap, Coverage, MarkIds, Span, bitmap_of, id_span
from croctl.pipeline.held import hold_csv_exports, hold_exposures
from croctl.pipeline.keys import source_ids
from croctl.pipeline.names import MISSING_SEGMENT, MOMENTS, VARIANT, check_col, seg_col
from croctl.pipeline.numbered_ids import integer_keyed
from croctl.pipeline.table import cap_columns, check_columns, source_counts
from croctl.plan import Plan
from croctl.sufficient import CellTable, ExposureCounts, SourceCounts, SufficientStats

_MOMENT_NAMES = tuple(name for name, _, _ in MOMENTS)


def collect_query(
    bound: BoundPlan, covered: Mapping[str, Coverage] | None = None
) -> SufficientStats:
    """Run every frame of the plan's query in one `collect_all`; return the sufficient statistics.

    `covered`: the sources' coverage when already read (None: read here, where it pays).

    Raises:
        DataError: the exports cannot be read or parsed; located by `diagnose_failure`.
    """
    try:
        sift.preload(bound)  # numba loads while the exposures are read
        held = hold_exposures(bound)
        if covered is None and (integer := integer_keyed(held)) is not None:
            try:
                return _stats(integer, None)
            except (pl.exceptions.PolarsError, OSError):
                pass  # a CSV id not written as an integer after all, or a bad export: as text
        return _stats(held, covered)
    except (pl.exceptions.PolarsError, OSError) as exc:
        if (inferring := bound.by_inference()) is not None:
            # A text timestamp in another layout than its sample's: parse value by value
            # (~10× slower) before calling the export malformed. Unit ids do not change, so
            # neither does coverage.
            return collect_query(inferring, covered)
        check_filters(bound, every_row=True)  # a value far in that breaks a filter: a plan error
        raise diagnose_failure([_failed(s) for s in bound.scans()], exc) from exc


def _stats(bound: BoundPlan, covered: Mapping[str, Coverage] | None) -> SufficientStats:
    """`collect_query` without its second tries (a Polars error escapes)."""
    span = exposure_span(bound)
    rows = dense.exposure_rows(bound, span)
    if dense.applies(bound, rows):
        mark = _compiled_mark()  # loaded here: `slots_for` marks in another thread
        slots = dense.slots_for(
            bound, span, rows, lambda skip: coverage_bitmaps(bound, span, mark, skip)
        )
        try:
            results = dense.dense_results(bound, slots)
        finally:
            slots.release()
        return stats_from_frames(split_caps(results, bound.plan), bound.plan)
    query = bound
    if covered is None:
        query, covered = hold_csv_exports(bound, span)
        covered |= coverage_bitmaps(bound, span, skip=covered)
    results = _capped_results(query, covered)
    plan, cells = bound.plan, results["cells"]
    for name in plan.used_sources:
        counts = [pl.col(check_col(name, c)).sum().alias(c) for c in source_counts(plan, name)]
        per_variant = cells.group_by(VARIANT).agg(counts)
        # as in the SQL engine, a variant with no kept rows has no row in the section
        results[f"rows:{name}"] = per_variant.filter(pl.col("rows") > 0)
    results["cells"] = cells.drop(*check_columns(plan))
    return stats_from_frames(results, plan)


def _capped_results(bound: BoundPlan, covered: Mapping[str, Coverage]) -> dict[str, pl.DataFrame]:
    """The query's frames by name, `caps` split off the cells.

    Caps come from the tail of the candidate units when a sample gives thresholds low enough
    (`caps`), else from the query itself: a second run, if the thresholds fell short.
    """
    frames = sample_frames(bound)
    thresholds = None if frames is None else thresholds_from_sample(bound.plan, _collect(frames))
    if thresholds is not None:
        results = _collect(build_query(bound, covered, thresholds).frames)
        capped = capped_cells(bound.plan, results["cells"], thresholds)
        if capped is not None:
            results["cells"], results["caps"] = capped
            return results
    return split_caps(_collect(build_query(bound, covered).frames), bound.plan)


def split_caps(results: dict[str, pl.DataFrame], plan: Plan) -> dict[str, pl.DataFrame]:
    """Move the caps the cells carry (taken in the query) to a `caps` section of their own."""
    caps = cap_columns(plan)
    results["caps"] = results["cells"].select(caps).head(1) if caps else pl.DataFrame()
    results["cells"] = results["cells"].drop(*caps)
    return results


def _collect(frames: dict[str, pl.LazyFrame]) -> dict[str, pl.DataFrame]:
    collected = pl.collect_all(
        list(frames.values()),
        engine="streaming",
        # What is shared is cached explicitly (`build`); the automatic elimination would
        # also cache a whole source that two frames scan with different filters.
        optimizations=pl.QueryOptFlags(comm_subplan_elim=False),
    )
    return dict(zip(frames, collected, strict=True))


def exposure_span(bound: BoundPlan) -> Span | None:
    """The exposures' integer unit ids' range (None for text ids)."""
    if not bound.unit_dtype.is_integer():
        return None
    return id_span(source_ids(bound, bound.exposures))


def coverage_bitmaps(
    bound: BoundPlan, span: Span | None, mark: MarkIds | None = None, skip: Collection[str] = ()
) -> dict[str, Bitmap]:
    """Per source not in `skip`, the unit ids it has rows for, if integers in a compact range.

    A pass of its own over each source's id column, before the query (see `coverage`).
    """
    if span is None or not span.compact:
        return {}
    sources = {name: s for name, s in bound.sources.items() if name not in skip}
    return {name: _bitmap(bound, s, span, mark) for name, s in sources.items()}


def _bitmap(bound: BoundPlan, source: BoundSource, span: Span, mark: MarkIds | None) -> Bitmap:
    if mark is not None and bound.numbering is not None and source.unit_text is not None:
        from croctl.pipeline.numbered_kernel import numbered_bitmap  # compiled, as `mark`

        return numbered_bitmap(source.unit_text, bound.numbering, span)
    return bitmap_of(source_ids(bound, source), span, mark)


def _compiled_mark() -> MarkIds:
    from croctl.pipeline.kernel import mark  # numba loads for the dense path only

    return mark


def stats_from_frames(results: dict[str, pl.DataFrame], plan: Plan) -> SufficientStats:
    """Decode the sections of the statistics table (from any engine) into `SufficientStats`.

    Raises:
        PlanError: the segments split the units into too many cells (`refuse_too_many_cells`).
    """
    refuse_too_many_cells(plan, results["cells"].height)
    return SufficientStats(
        cells=_cells(results["cells"], len(plan.segments), len(plan.measured)),
        exposures=_exposures(results["exposures"], results["multiple_variants"]),
        sources={
            name: _source(plan, name, results[f"rows:{name}"], results[f"coverage:{name}"])
            for name in plan.used_sources
        },
        caps={
            plan.measured[int(name.removeprefix("cap"))].name: float(v)
            for name, v in (
                results["caps"].row(0, named=True).items() if results["caps"].height else ()
            )
        },
    )


def _cells(frame: pl.DataFrame, n_segments: int, n_metrics: int) -> CellTable:
    """The cells frame as a `CellTable`: rows sorted, each metric's moments (null: 0)."""
    keys = [VARIANT, *(seg_col(j) for j in range(n_segments))]
    fields = ("n", *_MOMENT_NAMES)  # `Moments`' order; its `n` is the cell's units
    moments = [_moment_column(frame, field, i) for i in range(n_metrics) for field in fields]
    frame = frame.select(
        *(pl.col(c).cast(pl.String).fill_null(MISSING_SEGMENT) for c in keys),
        pl.col("n").cast(pl.Int64).fill_null(0),
        *moments,
    ).sort(keys)
    names = [m.meta.output_name() for m in moments]
    return CellTable.build(
        frame[VARIANT].to_list(),
        [frame[c].to_list() for c in keys[1:]],
        frame["n"].to_numpy(),
        frame.select(names).to_numpy().reshape(frame.height, n_metrics, len(fields)),
    )


def _moment_column(frame: pl.DataFrame, field: str, metric: int) -> pl.Expr:
    """Metric `metric`'s moment `field` as floats: `n` the cell's units, a missing one zeros."""
    name = f"{field}{metric}"
    if field == "n":
        return pl.col("n").cast(pl.Float64).fill_null(0.0).alias(name)
    if name not in frame.columns:
        return pl.lit(0.0).alias(name)
    return pl.col(name).cast(pl.Float64).fill_null(0.0)


def _per_variant(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if column not in frame.columns:
        return {}
    pairs = zip(frame[VARIANT], frame[column], strict=True)
    return {str(v): int(n or 0) for v, n in sorted(pairs, key=lambda pair: str(pair[0]))}


def _nonfinite(frame: pl.DataFrame) -> dict[str, int]:
    return {
        c.split(":", 1)[1]: int(frame[c].sum() or 0)
        for c in frame.columns
        if c.startswith("nonfinite:")
    }


def _exposures(frame: pl.DataFrame, multiple: pl.DataFrame) -> ExposureCounts:
    if frame.filter(pl.col(VARIANT).is_null()).height:
        raise DataError(
            "exposures: some rows have no variant label", hint="every exposure row needs a variant"
        )
    row: dict[str, Any] = multiple.row(0, named=True)
    return ExposureCounts(
        rows=_per_variant(frame, "rows"),
        before_start=_per_variant(frame, "before_start"),
        after_end=_per_variant(frame, "after_end"),
        no_timestamp=_per_variant(frame, "no_timestamp"),
        nonfinite=_nonfinite(frame),
        units_seen=int(row["units"] or 0),
        multiple_variants=int(row["multiple"] or 0),
        first_start=_moment(row["first_start"]),
        last_start=_moment(row["last_start"]),
    )


def _moment(epoch_seconds: float | None) -> datetime | None:
    if epoch_seconds is None:
        return None
    return datetime.fromtimestamp(float(epoch_seconds), UTC)


def _source(plan: Plan, name: str, rows: pl.DataFrame, coverage: pl.DataFrame) -> SourceCounts:
    spec = plan.sources[name]
    return SourceCounts(
        rows=_per_variant(rows, "rows"),
        pre_exposure=_per_variant(rows, "pre_exposure"),
        duplicates=_per_variant(rows, "duplicates"),
        covered=_per_variant(coverage, "covered"),
        nonfinite=_nonfinite(rows),
        has_timestamp=spec.timestamp is not None,
        has_id=spec.id is not None,
    )


def distinct_variants(bound: BoundPlan) -> set[str]:
    """Variant labels present in the exposures (reads that one column).

    Raises:
        DataError: the exposures cannot be read; located by `diagnose_failure`.
    """
    assert bound.exposures.frame is not None
    column = bound.plan.exposures.variant
    query = bound.exposures.frame.select(pl.col(column).cast(pl.String).unique())
    try:
        frame = query.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise diagnose_failure([_failed(bound.exposures)], exc) from exc
    return {str(v) for v in frame[column] if v is not None}


def _failed(source: BoundSource) -> FailedExport:
    units = source.scan.epoch_units if source.scan is not None else {}
    return FailedExport(source.files, source.needs, units)
