"""The dense arrays (`pipeline.dense`, slots by id range or by key) give the hash query's
statistics and verdict on every plan, and the compiled loops do what they say."""

from __future__ import annotations

import mmap
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from croctl.errors import DataError
from croctl.pipeline import bind_plan, dense, dense_rows, held, kernel, unit_sums
from croctl.pipeline.collect import exposure_span
from croctl.pipeline.slots import KeyedSlots, RangeSlots
from croctl.pipeline.unit_sums import measure_major
from croctl.plan import Plan, load_plan
from tests.conftest import BASE_PLAN, ROOT, integer_ids
from tests.test_engines import FIXTURES, _assert_parity, _report
from tests.test_golden import _close

PLANS = sorted((ROOT / "plans").glob("*.yaml"))


def _on_both(plan: Path | Plan, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The report by the hash query; asserts the dense arrays give the same one."""
    monkeypatch.setattr(dense, "MIN_ROWS", 10**18)
    hashed = _report(plan)
    runs = []
    original = dense.dense_results

    def spy(*args: object) -> object:
        runs.append(args)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(dense, "MIN_ROWS", 0)
    monkeypatch.setattr(dense, "dense_results", spy)
    _close(_report(plan), hashed)
    assert runs, "the dense arrays were not used"
    return hashed


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.stem)
def test_shipped_plans_give_the_hash_query_report(plan, tmp_path, monkeypatch):
    _on_both(integer_ids(plan, tmp_path), monkeypatch)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_give_the_hash_query_report(name, tmp_path, monkeypatch):
    source = tmp_path / "csv"
    source.mkdir()
    _on_both(integer_ids(FIXTURES[name].write(source), tmp_path), monkeypatch)


@pytest.mark.parametrize("shape", ["tidy", "scattered"])
def test_the_benchmark_export_gives_the_hash_query_report(tmp_path, monkeypatch, shape):
    """Integer ids as generated: caps, CUPED, ratios, two segments, every trust check.

    Events grouped by user sum measure by measure; in time order, unit by unit (`_zeros`).
    """
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import generate  # type: ignore[import-not-found]

    generate.generate(3000, 15, "parquet", tmp_path, shape=shape)
    layouts = []
    original = dense_rows._zeros
    monkeypatch.setattr(dense_rows, "_zeros", lambda *a: layouts.append(a[2]) or original(*a))
    report = _on_both(tmp_path / "plan.yaml", monkeypatch)
    assert report["verdict"] != "invalid"
    assert layouts == [shape == "scattered"]


@pytest.mark.parametrize("shape", ["tidy", "scattered"])
def test_twenty_metrics_give_the_hash_query_report(tmp_path, monkeypatch, shape):
    """`bench/many_metrics.yaml`: 14 measures, 11 of them counts, windows of 1, 3 and 7 days."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import generate  # type: ignore[import-not-found]

    generate.generate(3000, 15, "parquet", tmp_path, shape=shape)
    plan = tmp_path / "many_metrics.yaml"
    plan.write_text((ROOT / "bench" / "many_metrics.yaml").read_text())
    report = _on_both(plan, monkeypatch)
    assert len(report["metrics"]) == 20


def _edge_export(
    folder: Path,
    event_id: Callable[[int], object],
    bad: str = "",
    unit_id: tuple[Callable[[int], object], pl.DataType] = (int, pl.Int64()),
) -> Path:
    """Units 1-60 with a null-id exposure, a unit shown both arms, exposures outside the window
    or without a time, and events on ids outside the exposures' range, a null id, rows logged
    twice (same event id, `event_id(i)` for row i), rows before exposure; a lookback and a
    column covariate, a window, caps (of a sum of values and of a count) and a funnel. `bad`:
    "revenue" or "pre" with NaN values, "variant" with a null variant. `unit_id`: unit i's id,
    and the column's type."""
    unit, dtype = unit_id
    units = [*range(1, 61), None, 7, 61, 62, 63, 3]
    times = [f"2026-10-0{2 + i % 4}T0{i % 9}:00:00Z" for i in range(len(units) - 4)]
    times += ["2026-09-20T00:00:00Z", "2026-10-20T00:00:00Z", None, "2026-10-16T00:00:00Z"]
    variants = ["control" if i % 2 else "treatment" for i in range(len(units))]
    pl.DataFrame(
        {
            "user_id": pl.Series([None if u is None else unit(u) for u in units], dtype=dtype),
            "variant": [None if bad == "variant" and i == 9 else v for i, v in enumerate(variants)],
            "exposed_at": times,
            "device": [["mobile", None, "desktop"][i % 3] for i in range(len(units))],
            "pre": [
                float("nan") if bad == "pre" and i == 4 else None if i == 8 else i % 5 * 1.5
                for i in range(len(units))
            ],
        }
    ).write_parquet(folder / "exposures.parquet")
    rows = range(600)
    events = pl.DataFrame(
        {
            "user_id": pl.Series(
                [None if i % 63 == 62 else unit(i % 63) for i in rows], dtype=dtype
            ),
            "event_id": [None if i == 5 else event_id(i) for i in rows],
            "ts": [f"2026-{10 - (i % 5 == 0):02d}-0{1 + i % 7}T1{i % 10}:00:00Z" for i in rows],
            "event_name": [["purchase", "cart", "page_view"][i % 3] for i in rows],
            "revenue": [float("nan") if bad == "revenue" and i % 41 == 0 else i % 13 for i in rows],
        }
    )
    pl.concat([events, events.gather_every(7)]).write_parquet(folder / "events.parquet")
    purchase = "event_name = 'purchase'"
    plan = {
        **BASE_PLAN,
        "exposures": {**BASE_PLAN["exposures"], "path": "exposures.parquet"},
        "sources": {
            "events": {
                "path": "events.parquet",
                "unit": "user_id",
                "timestamp": "ts",
                "id": "event_id",
            },
        },
        "segments": {"device": "device"},
        "metrics": {
            "conv": {
                "role": "primary",
                "type": "proportion",
                "source": "events",
                "filter": purchase,
                "window": "3d",
                "covariate": {"lookback": "14d"},
            },
            "revenue": {
                "role": "quality",
                "type": "mean",
                "source": "events",
                "filter": purchase,
                "value": "revenue",
                "cap": 0.9,
                "covariate": "pre",
            },
            "carts": {  # a capped count: its cap is a quantile of 32-bit counts in the loop
                "role": "diagnostic",
                "type": "mean",
                "source": "events",
                "filter": "event_name = 'cart'",
                "cap": 0.8,
            },
        },
        "funnels": {
            "buy": {
                "source": "events",
                "window": "5d",
                "steps": {"cart": "event_name = 'cart'", "purchase": purchase},
            },
        },
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "event_id",
    [lambda i: i, lambda i: i * 10**15, lambda i: f"e{i}"],  # a bitmap, hashed, text
    ids=["integer", "sparse", "text"],
)
def test_edge_cases_give_the_hash_query_report(tmp_path, monkeypatch, event_id):
    report = _on_both(_edge_export(tmp_path, event_id), monkeypatch)
    events = next(c for c in report["checks"] if c["name"] == "duplicate_events")  # type: ignore[index]
    assert sum(events["counts"].values())


@pytest.mark.parametrize("dtype", [pl.Int64(), pl.UInt64()], ids=["int64", "uint64"])
def test_edge_cases_agree_on_every_engine(tmp_path, dtype):
    """A null-id exposure is no unit in any engine; ids past 2^63 join as UInt64."""
    folder = tmp_path / "export"
    folder.mkdir()
    ids = (int, dtype) if dtype == pl.Int64 else (lambda i: 2**64 - 1 - 7 * i, dtype)
    report = _assert_parity(_edge_export(folder, int, unit_id=ids), tmp_path)
    srm = next(c for c in report["checks"] if c["name"] == "srm")  # type: ignore[index]
    assert srm["counts"] == {"control": 30, "treatment": 29}


def test_a_readout_as_of_a_moment_gives_the_hash_query_report(tmp_path, monkeypatch):
    plan = load_plan(_edge_export(tmp_path, int))
    _on_both(replace(plan, as_of=datetime(2026, 10, 4, 3, tzinfo=UTC)), monkeypatch)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("revenue", "NaN or infinite"),
        ("pre", "NaN or infinite"),
        ("variant", "no variant label"),
    ],
)
def test_bad_values_fail_the_run_with_the_hash_query_error(tmp_path, monkeypatch, bad, message):
    plan = _edge_export(tmp_path, int, bad)
    errors = []
    for rows in (10**18, 0):
        monkeypatch.setattr(dense, "MIN_ROWS", rows)
        with pytest.raises(DataError) as error:
            _report(plan)
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert message in errors[0]


@pytest.mark.parametrize(
    "unit_id",
    [
        (lambda i: f"u{i:03d}x", pl.String()),  # not numbered: keyed as text
        (lambda i: -(2**63) if i == 1 else i * 10**12, pl.Int64()),  # 1: the table's EMPTY word
        (lambda i: 2**64 - 1 - 7 * i, pl.UInt64()),
    ],
    ids=["text", "sparse", "uint64"],
)
def test_ids_by_key_give_the_hash_query_report(tmp_path, monkeypatch, unit_id):
    spied = []
    original = dense.slots_for
    monkeypatch.setattr(dense, "slots_for", lambda *a: spied.append(original(*a)) or spied[-1])
    report = _on_both(_edge_export(tmp_path, int, unit_id=unit_id), monkeypatch)
    assert [type(s).__name__ for s in spied] == ["KeyedSlots"]
    assert report["verdict"] != "invalid"


def test_uint64_ids_in_a_range_give_the_hash_query_report(tmp_path, monkeypatch):
    """Ids past 2^63 numbered densely: slots by subtraction, the bitmaps by numpy."""
    ids = (lambda i: 2**64 - 100 + i, pl.UInt64())
    _on_both(_edge_export(tmp_path, int, unit_id=ids), monkeypatch)


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.stem)
def test_shipped_plans_by_key_give_the_hash_query_report(plan, monkeypatch):
    _on_both(plan, monkeypatch)


def test_the_realistic_benchmark_export_gives_the_hash_query_report(tmp_path, monkeypatch):
    """Hex ids, several exposure rows per user, events scattered: caps, CUPED, two segments."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import generate  # type: ignore[import-not-found]

    generate.generate(3000, 15, "parquet", tmp_path, shape="realistic")
    report = _on_both(tmp_path / "plan.yaml", monkeypatch)
    assert report["verdict"] != "invalid"


@pytest.mark.parametrize("chunk", [100, 10**6], ids=["chunk-per-batch", "one-chunk-at-the-end"])
@pytest.mark.parametrize("shape", ["tidy", "realistic"])  # slots by range, by key
def test_a_csv_read_once_gives_the_hash_query_report(tmp_path, monkeypatch, chunk, shape):
    """Every row marks coverage, and kept rows are tagged a chunk at a time."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import generate  # type: ignore[import-not-found]

    generate.generate(3000, 15, "csv", tmp_path, shape=shape)
    monkeypatch.setattr(held, "CHUNK_ROWS", chunk)
    passes = []
    original = dense_rows._one_pass
    monkeypatch.setattr(dense_rows, "_one_pass", lambda *a: passes.append(a) or original(*a))
    report = _on_both(tmp_path / "plan.yaml", monkeypatch)
    assert passes and report["verdict"] != "invalid"
    assert isinstance(passes[0][2], RangeSlots if shape == "tidy" else KeyedSlots)


def test_a_csv_read_once_runs_a_filter_on_a_timestamp_after_the_parse(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import generate  # type: ignore[import-not-found]

    generate.generate(3000, 15, "csv", tmp_path, shape="tidy")
    plan = yaml.safe_load((tmp_path / "plan.yaml").read_text())
    afternoon = "event_name = 'purchase' AND EXTRACT(hour FROM ts) >= 12"
    plan["metrics"]["conversion"]["filter"] = afternoon
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    report = _on_both(tmp_path / "plan.yaml", monkeypatch)
    assert report["verdict"] != "invalid"


def test_slots_by_range_for_compact_integer_ids_else_by_key(tmp_path, monkeypatch):
    plan = load_plan(_edge_export(tmp_path, int))
    bound = bind_plan(plan)
    span = exposure_span(bound)
    assert span is not None and span.rows == 66
    assert dense.exposure_rows(bound, span) == dense.exposure_rows(bound, None) == 66
    assert not dense.applies(bound, 66)  # small: the hash query
    monkeypatch.setattr(dense, "MIN_ROWS", 66)
    assert dense.applies(bound, 66)
    monkeypatch.setattr(dense, "MIN_ROWS", 67)
    assert not dense.applies(bound, 66)
    assert isinstance(dense.slots_for(bound, span, 66, lambda skip: {}), RangeSlots)
    sparse = type(span)(span.lo, span.lo + 10 * span.rows, span.rows)
    assert isinstance(
        dense.slots_for(bound, sparse, 66, lambda skip: {}), KeyedSlots
    )  # mostly empty slots
    keyed = dense.slots_for(bound, None, 1 << 20, lambda skip: {})
    assert isinstance(keyed, KeyedSlots)
    assert keyed.index.bits == 20  # room for half the exposure rows before a rehash


def _duplicates(batches: list[list[int | None]], lows: list[np.ndarray] | None = None) -> int:
    """Repeated ids `kernel.add_rows` counts over `batches` of event ids (one unit, no measure).

    With `lows`, each batch's low words: the ids are text (by fingerprint), in a hash table.
    """
    ids = kernel.IdSet(integer=lows is None)
    checks = np.zeros((2, 1), np.int64)
    empty = np.zeros(0, np.int64)
    for k, batch in enumerate(batches):
        high = np.array([0 if i is None else i for i in batch], np.int64)
        flags = np.array([i is None for i in batch], np.uint64) << np.uint64(kernel.NULL_ID_BIT)
        ids.reserve(high, np.array([i is not None for i in batch]))
        zeros = np.zeros(len(batch), np.int64)
        low = zeros if lows is None else lows[k]
        kernel.add_rows(
            zeros, zeros, flags, high, low, np.zeros((0, len(batch))),
            kernel.unit_pairs(np.zeros(1, np.int64), np.zeros(1, np.uint32), np.ones(1, np.bool_)),
            (empty, empty, empty, empty, empty, empty), False, True, ids.bits, ids.keys,
            ids.state, np.zeros((0, 1), np.uint32), np.zeros((0, 1)), checks, k % 2 == 0,
        )  # fmt: skip
    return int(checks[1, 0])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.none(),
                st.integers(-200, 200),  # a bitmap, grown both ways
                st.integers(-(2**63), 2**63 - 1),  # sparse: moves to the hash table
            ),
            max_size=40,
        ),
        max_size=6,
    )
)
def test_repeated_event_ids_are_counted_as_a_set_would(batches):
    flat = [i for batch in batches for i in batch]
    assert _duplicates(batches) == len(flat) - len(set(flat))


def test_text_event_ids_are_counted_as_a_set_would_as_the_table_grows():
    """Fingerprint words (high, low), some high words shared or the free marker, 0.2 M rows."""
    rng = np.random.default_rng(7)
    highs = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 60_000), [kernel.FREE, 0, 1]])
    pick = rng.integers(0, len(highs), 200_000)
    high, low = highs[pick], rng.integers(0, 3, len(pick))  # a high word with up to three lows
    batches = [high[i : i + 10_000].tolist() for i in range(0, len(pick), 10_000)]
    lows = [low[i : i + 10_000] for i in range(0, len(pick), 10_000)]
    distinct = len(set(zip(high.tolist(), low.tolist(), strict=True)))
    assert _duplicates(batches, lows) == len(pick) - distinct


def test_expected_rows_scale_the_first_rows_share_to_every_row(tmp_path, monkeypatch):
    """The estimate that sizes the text event ids' table (`dense_rows._expected_rows`)."""
    at = datetime(2026, 10, 2, tzinfo=UTC)
    pl.DataFrame({"user_id": ["u"], "variant": ["control"], "exposed_at": [at]}).write_parquet(
        tmp_path / "exposures.parquet"
    )
    names = ["page_view"] * 9 + ["purchase"]  # a tenth of the rows some metric uses
    pl.DataFrame(
        {"user_id": ["u"] * 2000, "ts": [at] * 2000, "event_name": names * 200}
    ).write_parquet(tmp_path / "events.parquet")
    spec = yaml.safe_load(yaml.safe_dump(BASE_PLAN))
    spec["exposures"]["path"] = "exposures.parquet"
    spec["sources"]["events"]["path"] = "events.parquet"
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(spec))
    bound = bind_plan(load_plan(tmp_path / "plan.yaml"))
    measures = dense_rows.Measures.of(bound, "events")
    monkeypatch.setattr(dense_rows, "_SAMPLE_ROWS", 100)
    expected = dense_rows._expected_rows(bound.sources["events"], measures)
    assert expected == int(200 * dense_rows._MARGIN)


def test_rows_of_far_apart_units_are_told_from_rows_grouped_by_unit():
    rng = np.random.default_rng(5)
    grouped = np.repeat(np.arange(5000, dtype=np.int64), 3)  # an export sorted by unit
    assert not dense_rows.far_apart(grouped)
    assert not dense_rows.far_apart(np.sort(rng.integers(0, 10_000, 4000)))  # units nearby
    assert dense_rows.far_apart(rng.integers(0, 10_000_000, 4000))  # an export in time order
    assert not dense_rows.far_apart(np.zeros(1, np.int64))  # one row: nothing to judge


def test_sums_laid_out_unit_by_unit_come_back_measure_by_measure():
    by_unit = np.arange(21, dtype=np.float64).reshape(7, 3)  # 7 units, 3 measures
    sums = by_unit.T  # `sums[j, u]`, as `dense_rows._zeros` lays it out for scattered rows
    copied = measure_major(sums)
    assert copied.flags.c_contiguous and np.array_equal(copied, sums)
    units = 2 * kernel._BLOCK + 5  # blocks copied in parallel, the last one short
    wide = np.random.default_rng(3).random((units, 4)).T
    assert np.array_equal(measure_major(wide), wide)
    already = np.zeros((3, 7))
    assert measure_major(already) is already


@pytest.mark.parametrize("scattered", [False, True])
def test_counts_and_sums_of_values_each_add_up_in_their_own_array(scattered):
    """Counts are 32-bit integers, sums of values float64; each measure reads back in its order."""
    rng = np.random.default_rng(7)
    units, rows = 50, 400
    unit = rng.integers(0, units, rows).astype(np.int64)
    flags = rng.integers(0, 4, rows).astype(np.uint64)  # bits 0 and 1: two metric filters
    values = rng.random((1, rows))
    counted = [True, False, False, True]  # count, sum on filter 0; sum, count on filter 1
    never = np.full(4, kernel.NEVER, np.int64)
    spans = (
        np.array([0, 0, 1, 1], np.int64),  # filter bit
        np.array([-1, 0, 0, -1], np.int64),  # value row, -1: add 1
        np.zeros(4, np.int64),
        never,
        never,
        np.array(unit_sums.measure_rows(counted), np.int64),
    )
    assert list(spans[-1]) == [0, 0, 1, 1]
    sums = unit_sums.UnitSums.zeros(counted, units, scattered)
    ids = kernel.IdSet(integer=True)
    pairs = kernel.unit_pairs(
        np.zeros(units, np.int64), np.zeros(units, np.uint32), np.ones(units, np.bool_)
    )
    nothing = np.zeros(rows, np.int64)
    kernel.add_rows(
        unit, nothing, flags, nothing, nothing, values, pairs, spans, False, False, ids.bits,
        ids.keys, ids.state, sums.counts, sums.values, np.zeros((2, 1), np.int64), scattered,
    )  # fmt: skip
    for j, column in enumerate(sums.per_measure()):
        on = (flags >> spans[0][j].astype(np.uint64)) & np.uint64(1) == 1
        expected = np.bincount(unit[on], None if counted[j] else values[0][on], minlength=units)
        assert column.dtype == (np.uint32 if counted[j] else np.float64)
        assert column.flags.c_contiguous  # the unit table takes it uncopied
        np.testing.assert_allclose(column, expected, rtol=1e-12)


def test_sums_in_a_mapping_are_copied_out_whole_as_their_pages_are_given_back(monkeypatch):
    """Chunks of units, each released once copied: a page released early would read as zeros."""
    monkeypatch.setattr(unit_sums, "_CHUNK", 3 * mmap.PAGESIZE + 40)  # chunks across pages
    units, measures = 5 * kernel._BLOCK + 7, 5
    sums = unit_sums.unit_major_zeros(units, measures)
    assert not sums.any() and unit_sums._mapping(sums.T) is not None
    values = np.random.default_rng(4).random((measures, units))
    sums[:] = values
    assert np.array_equal(measure_major(sums), values)
    assert not sums[:, : units // 2].any()  # given back: the pages read as zeros again
    empty = unit_sums.unit_major_zeros(0, measures)
    assert measure_major(empty).shape == (measures, 0)


def test_unit_pairs_hold_each_start_and_code_and_minus_one_for_units_that_do_not_count():
    """An unseen unit's code is the highest 32-bit one (`_Units`): it must not survive."""
    start = np.array([5, kernel.UNSEEN, 9, 11])
    codes = np.array([0, 2**32 - 1, 1, 1], np.uint32)
    valid = np.array([True, False, True, False])
    pairs = kernel.unit_pairs(start, codes, valid)
    assert pairs.tolist() == [[5, 0], [kernel.UNSEEN, -1], [9, 1], [11, -1]]


def test_a_prefetch_changes_nothing_and_never_faults():
    """`prefetch` only asks for a cache line: any row, past the end or before the start."""
    from numba import njit

    from croctl.pipeline.prefetch import prefetch

    @njit
    def total_after_prefetch(array, at):  # type: ignore[no-untyped-def]
        prefetch(array, at)
        return array.sum()

    values = np.arange(10.0)
    for at in (0, 3, 9, 10**12, -(10**12)):
        assert total_after_prefetch(values, at) == 45.0
        assert total_after_prefetch(values.reshape(2, 5).T, at % 5) == 45.0


def test_per_unit_arrays_grow_and_trim_keeping_every_unit_and_unseen_room():
    """`_Units.grow` doubles array by array: the units seen stay, the new room is unseen."""
    units = dense._Units.empty(words=2, covariates=1, size=3)
    units.first[:] = [7, 8, 9]
    units.low[:], units.high[:] = [0, 1, 0], [1, 1, 0]
    units.words[:] = [[1, 2, 3], [4, 5, 6]]
    units.covariates[:] = [[0.5, 1.5, 2.5]]
    seen = {name: getattr(units, name).copy() for name in dense._PER_UNIT}
    units.grow(4)  # doubles: room for 6
    fresh = dense._Units.empty(words=2, covariates=1, size=3)
    for name in dense._PER_UNIT:
        grown = getattr(units, name)
        assert grown.shape[-1] == 6 and grown.dtype == seen[name].dtype
        assert np.array_equal(grown[..., :3], seen[name])
        assert np.array_equal(grown[..., 3:], getattr(fresh, name))
    units.grow(20)  # past double: exactly as asked
    assert len(units.first) == 20 and units.words.shape == (2, 20)
    trimmed = units.trimmed(3)
    assert all(np.array_equal(getattr(trimmed, n), seen[n]) for n in dense._PER_UNIT)


def _marking_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("croctl-coverage")]


def test_the_coverage_pass_in_its_own_thread_fails_the_readout(tmp_path, monkeypatch):
    """The bitmaps are marked in another thread: its error is the readout's, raised in it."""
    from croctl.pipeline import collect

    def failing(*args, **kwargs):
        time.sleep(0.2)  # the exposures are read meanwhile
        raise pl.exceptions.ComputeError("coverage failed")

    monkeypatch.setattr(dense, "MIN_ROWS", 0)
    monkeypatch.setattr(collect, "coverage_bitmaps", failing)
    with pytest.raises(DataError):
        _report(_edge_export(tmp_path, int))
    assert not _marking_threads()


def test_a_failed_readout_waits_for_the_coverage_pass(tmp_path, monkeypatch):
    """No read outlives the readout: the marking thread is waited for when the rest fails."""
    from croctl.pipeline import collect

    marked = []
    original = collect.coverage_bitmaps

    def slow(*args, **kwargs):
        time.sleep(0.3)
        marked.append(original(*args, **kwargs))
        return marked[-1]

    def failing(*args, **kwargs):
        raise MemoryError("the units")

    monkeypatch.setattr(dense, "MIN_ROWS", 0)
    monkeypatch.setattr(collect, "coverage_bitmaps", slow)
    monkeypatch.setattr(dense._Units, "of", failing)
    with pytest.raises(MemoryError):
        _report(_edge_export(tmp_path, int))
    assert marked and not _marking_threads()
