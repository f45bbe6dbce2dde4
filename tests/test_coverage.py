"""Coverage by bitmap (integer unit ids) gives what the hash set and the SQL engine give."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from croctl.pipeline import bind_plan, collect_stats
from croctl.pipeline.collect import coverage_bitmaps, exposure_span
from croctl.pipeline.coverage import MIN_SPAN, Bitmap, KeysSeen, Span, bitmap_of, id_span
from croctl.pipeline.engines import collect_with_duckdb
from croctl.pipeline.names import UNIT
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN


def _ids(values: list[int | None]) -> pl.LazyFrame:
    return pl.LazyFrame({UNIT: values}, schema={UNIT: pl.Int64})


def _compact(values: list[int | None]) -> tuple[int, int] | None:
    span = id_span(_ids(values))
    return (span.lo, span.hi) if span is not None and span.compact else None


def test_a_compact_range_gets_a_bitmap_and_a_sparse_one_does_not():
    assert _compact([5, None, 9, 7]) == (5, 9)
    assert id_span(_ids([None, None])) is None
    assert _compact([0, MIN_SPAN - 1]) == (0, MIN_SPAN - 1)
    assert _compact([0, 10**12]) is None  # hashed ids: one byte each would be 1 TB
    assert _compact([-3, 2**63 - 1]) is None  # the width overflows no integer
    assert id_span(_ids([5, None, 9, 7])) == Span(5, 9, rows=4)


def test_a_null_id_is_never_covered():
    bitmap = Bitmap(10, np.array([True, False, True]))
    ids = pl.Series([10, 11, 12, None], dtype=pl.Int64)
    assert bitmap.covered(ids).to_list() == [True, False, True, False]


@pytest.mark.parametrize(
    ("dtype", "ids", "span"),
    [
        (pl.Int64, [7, None, 3, 9, 12, 2, 7], Span(3, 9, 4)),
        (pl.Int32, [-4, None, -1, 0, 5], Span(-2, 4, 2)),
        (pl.UInt64, [2**64 - 1, 2**63, 10, 11, None, 3], Span(8, 12, 2)),  # past Int64
        (pl.UInt64, [2**64 - 1, 2**63 + 5, 2**63 + 2, None], Span(2**63 + 1, 2**63 + 6, 3)),
    ],
)
def test_the_compiled_marker_marks_what_numpy_does(dtype, ids, span):
    from croctl.pipeline.kernel import mark

    frame = pl.LazyFrame({UNIT: ids}, schema={UNIT: dtype})
    compiled, plain = bitmap_of(frame, span, mark), bitmap_of(frame, span)
    expected = [u in ids for u in range(span.lo, span.hi + 1)]
    assert compiled.seen.tolist() == plain.seen.tolist() == expected


def _write_export(folder, unit_ids, event_ids, dtype=pl.Int64):
    """Parquet exports: `unit_ids` exposed alternately to control/treatment, events for
    `event_ids` (page views only: coverage counts any row)."""
    pl.DataFrame(
        {
            "user_id": pl.Series(unit_ids, dtype=dtype),
            "variant": ["control" if i % 2 else "treatment" for i in range(len(unit_ids))],
            "exposed_at": ["2026-10-02T00:00:00Z"] * len(unit_ids),
        }
    ).write_parquet(folder / "exposures.parquet")
    pl.DataFrame(
        {
            "user_id": pl.Series(event_ids, dtype=dtype),
            "ts": ["2026-10-03T00:00:00Z"] * len(event_ids),
            "event_name": ["page_view"] * len(event_ids),
        }
    ).write_parquet(folder / "events.parquet")
    plan = {
        **BASE_PLAN,
        "exposures": {**BASE_PLAN["exposures"], "path": "exposures.parquet"},
        "sources": {"events": {"path": "events.parquet", "unit": "user_id", "timestamp": "ts"}},
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return load_plan(path)


@pytest.mark.parametrize(
    ("unit_ids", "bitmap"),
    [
        ([*range(-5, 300), None], True),  # negative ids, a null id
        ([*range(0, 300 * 10**9, 10**9)], False),  # sparse: the hash set
    ],
    ids=["compact", "sparse"],
)
def test_coverage_agrees_with_the_sql_engine(tmp_path, unit_ids, bitmap):
    rng = np.random.default_rng(3)
    present = [u for u in unit_ids if u is not None]
    logged = [int(u) for u in rng.choice(present, 200)]  # with repeats; some units never logged
    events = [*logged, None, min(present) - 1, max(present) + 1]  # outside the exposures' range
    plan = _write_export(tmp_path, unit_ids, events)
    bound = bind_plan(plan)
    assert bool(coverage_bitmaps(bound, exposure_span(bound))) is bitmap
    covered = collect_stats(plan).sources["events"].covered
    assert covered == collect_with_duckdb(bind_plan(plan)).sources["events"].covered
    assert sum(covered.values()) == len(set(logged))


def test_text_ids_keep_the_hash_set(tmp_path):
    plan = _write_export(tmp_path, ["1x", "2x"], ["1x"], dtype=pl.String)  # not numbered
    assert exposure_span(bind_plan(plan)) is None
    assert collect_stats(plan).sources["events"].covered == {"treatment": 1}


def test_text_coverage_by_half_fingerprints_agrees_with_the_sql_engine(tmp_path):
    # Coverage keys text ids by 64 bits of their fingerprint (`keys.coverage_key`), the query's
    # joins by all 128: the counts must still be those of the exact text comparison.
    rng = np.random.default_rng(5)
    unit_ids = [f"{v:032x}" for v in rng.integers(0, 2**62, 400)] + ["007", "7", None]
    present = [u for u in unit_ids if u is not None]
    logged = [str(u) for u in rng.choice(present[:-2], 250)] + ["7"]  # `007` is not `7`
    plan = _write_export(tmp_path, unit_ids, [*logged, None, "not-exposed"], dtype=pl.String)
    covered = collect_stats(plan).sources["events"].covered
    assert covered == collect_with_duckdb(bind_plan(plan)).sources["events"].covered
    assert sum(covered.values()) == len(set(logged))


@given(
    st.lists(st.lists(st.none() | st.integers(0, 40), max_size=12), max_size=8), st.integers(1, 20)
)
def test_keys_seen_are_the_distinct_keys_whenever_deduplicated(batches, dedupe_at):
    seen = KeysSeen(pl.UInt64)
    seen.DEDUPE_AT = dedupe_at  # type: ignore[misc]
    for batch in batches:
        seen.add(pl.Series(batch, dtype=pl.UInt64))
    keys = seen.keys().frame.get_column(UNIT)
    assert keys.dtype == pl.UInt64 and keys.is_unique().all()
    assert set(keys) == {key for batch in batches for key in batch if key is not None}
