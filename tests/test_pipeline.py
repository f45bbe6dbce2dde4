"""The data rules of SPEC §4, each on a tiny export whose right answer is obvious by eye."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from croctl.errors import DataError, PlanErrors
from croctl.io.iso import iso_values
from croctl.pipeline import Engine, bind_plan, collect_stats
from croctl.pipeline.keys import fingerprint
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN, write_csv

EXPOSURE_HEADER = "user_id,variant,exposed_at"


def per_unit(tmp_path, make_plan, exposures, events, engine="polars", **plan):
    """Run the pipeline and return {variant: (units, sum of metric values)} for metric 0."""
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, exposures)
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name,revenue", events)
    stats = collect_stats(load_plan(make_plan(**plan)), engine=Engine(engine))
    return {v: (n, m[0].y) for v, (n, m) in stats.by_variant().items()}, stats


def revenue_mean(**options: object) -> dict[str, dict[str, object]]:
    """A primary `rev` metric: mean purchase revenue per unit (with `options` such as a cap)."""
    metric = {"role": "primary", "type": "mean", "source": "events", "value": "revenue"}
    return {"rev": metric | {"filter": "event_name = 'purchase'"} | options}


def test_purchase_one_second_before_exposure_does_not_count(tmp_path, make_plan):
    result, stats = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        ["a,2026-10-01T23:59:59Z,purchase,", "b,2026-10-02T00:00:00Z,purchase,"],
    )
    assert result == {"control": (1, 0.0), "treatment": (1, 1.0)}
    assert stats.sources["events"].pre_exposure == {"control": 1, "treatment": 0}


def test_first_exposure_defines_start_and_repeats_are_one_unit(tmp_path, make_plan):
    result, _ = per_unit(
        tmp_path,
        make_plan,
        [
            "a,control,2026-10-05T00:00:00Z",
            "a,control,2026-10-02T00:00:00Z",
            "b,treatment,2026-10-02T00:00:00Z",
        ],
        ["a,2026-10-03T00:00:00Z,purchase,"],
    )
    assert result["control"] == (1, 1.0)  # start is 10-02, so the 10-03 purchase counts


def test_segments_and_covariate_come_from_the_first_in_window_exposure(tmp_path, make_plan):
    """Three segment dimensions (an odd count) and a covariate, each from the earliest row."""
    write_csv(
        tmp_path / "exposures.csv",
        "user_id,variant,exposed_at,device,channel,country,pre",
        [
            "a,control,2026-10-05T00:00:00Z,desktop,email,fr,9",
            "a,control,2026-10-02T00:00:00Z,mobile,paid,de,3",
            "a,control,2026-09-20T00:00:00Z,tv,seo,us,50",  # before the window: ignored
            "b,treatment,2026-10-04T00:00:00Z,mobile,paid,de,7",
            "b,treatment,2026-10-03T00:00:00Z,tablet,seo,us,1",
        ],
    )
    write_csv(
        tmp_path / "events.csv", "user_id,ts,event_name,revenue", ["a,2026-10-06T00:00:00Z,view,"]
    )
    metric = {"role": "primary", "type": "mean", "source": "events", "value": "revenue"}
    plan = make_plan(
        segments={"device": "device", "channel": "channel", "country": "country"},
        metrics={"rev": metric | {"covariate": "pre"}},
    )
    stats = collect_stats(load_plan(plan))
    cells = {(c.variant, c.segments): (c.units, c.metrics[0].x) for c in stats.cells}
    assert cells == {
        ("control", ("mobile", "paid", "de")): (1, 3.0),
        ("treatment", ("tablet", "seo", "us")): (1, 1.0),
    }


def test_unit_in_two_variants_is_excluded_and_counted(tmp_path, make_plan):
    result, stats = per_unit(
        tmp_path,
        make_plan,
        [
            "a,control,2026-10-02T00:00:00Z",
            "a,treatment,2026-10-03T00:00:00Z",
            "b,treatment,2026-10-02T00:00:00Z",
            "c,control,2026-10-02T00:00:00Z",
        ],
        ["a,2026-10-04T00:00:00Z,purchase,"],
    )
    assert result == {"control": (1, 0.0), "treatment": (1, 0.0)}
    assert stats.exposures.multiple_variants == 1


def test_exposures_outside_the_window_are_excluded(tmp_path, make_plan):
    result, stats = per_unit(
        tmp_path,
        make_plan,
        [
            "a,control,2026-09-30T23:59:59Z",
            "b,control,2026-10-15T00:00:00Z",
            "c,control,2026-10-14T23:59:59Z",
            "d,treatment,2026-10-01T00:00:00Z",
        ],
        ["zz,2026-10-03T00:00:00Z,view,"],
    )
    assert result["control"][0] == 1
    assert stats.exposures.before_start == {"control": 1, "treatment": 0}
    assert stats.exposures.after_end == {"control": 1, "treatment": 0}


def test_window_counts_from_first_exposure(tmp_path, make_plan):
    metrics = {
        "conv": {
            "role": "primary",
            "type": "proportion",
            "source": "events",
            "filter": "event_name = 'purchase'",
            "window": "1d",
        }
    }
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        ["a,2026-10-02T23:59:59Z,purchase,", "b,2026-10-03T00:00:00Z,purchase,"],
        metrics=metrics,
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 0.0)}


def test_units_without_rows_count_as_zero_in_means(tmp_path, make_plan):
    metrics = revenue_mean()
    result, _ = per_unit(
        tmp_path,
        make_plan,
        [
            "a,control,2026-10-02T00:00:00Z",
            "b,control,2026-10-02T00:00:00Z",
            "c,treatment,2026-10-02T00:00:00Z",
        ],
        ["a,2026-10-03T00:00:00Z,purchase,30", "a,2026-10-04T00:00:00Z,purchase,12"],
        metrics=metrics,
    )
    assert result == {"control": (2, 42.0), "treatment": (1, 0.0)}


def test_crm_source_without_timestamp_joins_on_unit_and_is_not_windowed(tmp_path, make_plan):
    write_csv(tmp_path / "crm.csv", "user_id,status", ["a,accepted", "b,rejected", "zz,accepted"])
    sources = {
        "events": {"path": "events.csv", "unit": "user_id", "timestamp": "ts"},
        "crm": {"path": "crm.csv", "unit": "user_id"},
    }
    metrics = {
        "sal": {
            "role": "primary",
            "type": "proportion",
            "source": "crm",
            "filter": "status = 'accepted'",
            "window": None,
        }
    }
    metrics["sal"].pop("window")
    result, stats = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        ["zz,2026-10-03T00:00:00Z,view,"],
        sources=sources,
        metrics=metrics,
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 0.0)}
    assert stats.sources["crm"].covered == {"control": 1, "treatment": 1}


def test_ids_with_leading_zeros_stay_distinct_text(tmp_path, make_plan):
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["007,control,2026-10-02T00:00:00Z", "7,treatment,2026-10-02T00:00:00Z"],
        ["007,2026-10-03T00:00:00Z,purchase,"],
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 0.0)}


def test_binary_ids_read_as_their_hex_text(tmp_path, make_plan):
    """A Parquet UUID column (16 raw bytes, not UTF-8) keys as `uuid.hex`: the same units."""
    import uuid

    ids = [uuid.UUID(int=(0xFF << 120) + i) for i in range(4)]  # bytes no UTF-8 text has
    start = datetime(2026, 10, 2, tzinfo=UTC)
    for name, as_id in (("binary", lambda u: u.bytes), ("text", lambda u: u.hex)):
        folder = tmp_path / name
        folder.mkdir()
        pl.DataFrame(
            {
                "user_id": [as_id(u) for u in ids],
                "variant": ["control", "treatment"] * 2,
                "exposed_at": [start] * 4,
            }
        ).write_parquet(folder / "exposures.parquet")
        pl.DataFrame(  # units 0 and 1 buy, unit 2 only looks
            {
                "user_id": [as_id(u) for u in ids[:3]],
                "ts": [start + timedelta(hours=1)] * 3,
                "event_name": ["purchase", "purchase", "page_view"],
            }
        ).write_parquet(folder / "events.parquet")
    results = {}
    for name in ("binary", "text"):
        events = {**BASE_PLAN["sources"]["events"], "path": f"{name}/events.parquet"}
        plan = make_plan(
            exposures={**BASE_PLAN["exposures"], "path": f"{name}/exposures.parquet"},
            sources={"events": events},
        )
        stats = collect_stats(load_plan(plan))
        results[name] = {v: (n, m[0].y) for v, (n, m) in stats.by_variant().items()}
        assert stats.sources["events"].covered == {"control": 2, "treatment": 1}
    assert results["binary"] == results["text"] == {"control": (2, 1.0), "treatment": (2, 1.0)}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=60))
def test_text_id_fingerprints_are_as_distinct_as_the_ids(ids):
    frame = pl.DataFrame({"id": ids}, schema={"id": pl.String})
    keys = frame.select(fingerprint(pl.col("id")).alias("key"))["key"]
    assert keys.dtype == pl.Int128
    assert keys.is_null().to_list() == frame["id"].is_null().to_list()
    assert keys.drop_nulls().n_unique() == frame["id"].drop_nulls().n_unique()


def test_integer_variant_labels_need_no_quotes(tmp_path, make_plan):
    """Labels stored as 0 and 1 match a plan written `control: 0`, `variants: {0: .5, 1: .5}`."""
    experiment = BASE_PLAN["experiment"] | {"control": 0, "variants": {0: 0.5, 1: 0.5}}
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,0,2026-10-02T00:00:00Z", "b,1,2026-10-02T00:00:00Z"],
        ["a,2026-10-03T00:00:00Z,purchase,"],
        experiment=experiment,
    )
    assert result == {"0": (1, 1.0), "1": (1, 0.0)}


def test_naive_timestamps_use_the_plan_timezone(tmp_path, make_plan):
    # 00:30 in Paris is 22:30 UTC the day before: the purchase at 23:00 UTC is after exposure.
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-03 00:30:00", "b,treatment,2026-10-03 00:30:00"],
        ["a,2026-10-02 23:45:00,purchase,"],
        timezone="Europe/Paris",
    )
    assert result["control"] == (1, 0.0)  # 23:45 Paris is before 00:30 Paris


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2026-10-02 00:00:00 UTC", "2026-10-02T00:00:00"),  # BigQuery's CSV export
        ("2026-10-02 00:00:00.250 +0130", "2026-10-01T22:30:00.25"),  # Snowflake's
        ("2026-10-02 00:00:00.5 -02:00", "2026-10-02T02:00:00.5"),
    ],
)
def test_a_zone_after_a_space_is_read(tmp_path, make_plan, value, utc):
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, [f"a,control,{value}"])
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", [f"a,{value},purchase"])
    scan = bind_plan(load_plan(make_plan())).exposures.scan
    assert scan is not None
    expected = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert scan.frame.collect()["exposed_at"].to_list() == [expected]


@pytest.mark.parametrize("stored", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("scale", "fraction"), [(1, False), (10**3, False), (10**6, False), (10**9, False), (1, True)]
)
def test_epoch_numbers_are_read_in_the_unit_their_size_shows(
    tmp_path, make_plan, stored, scale, fraction
):
    """Seconds, milliseconds, microseconds, nanoseconds or fractional seconds since 1970 UTC,
    as text or numbers: the times Python's datetime gives, to the microsecond."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    micros = [
        (datetime(2026, 10, 2, tzinfo=UTC) - epoch) // timedelta(microseconds=1) + k
        for k in (0, 1, 123_456, 999_999, 86_400 * 10**6 + 1)
    ]
    numbers = [m / 10**6 if fraction else m * scale // 10**6 for m in micros]
    whole = [m if fraction else n * 10**6 // scale for m, n in zip(micros, numbers, strict=True)]
    expected = [epoch + timedelta(microseconds=w) for w in whole]  # nanoseconds truncated
    events = pl.DataFrame({"user_id": ["a"] * 5, "ts": numbers, "event_name": ["purchase"] * 5})
    if stored == "csv":
        events.write_csv(tmp_path / "events.csv", float_precision=6 if fraction else None)
    else:
        events.write_parquet(tmp_path / "events.parquet")
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    source = {"path": f"events.{stored}", "unit": "user_id", "timestamp": "ts"}
    bound = bind_plan(load_plan(make_plan(sources={"events": source})))
    scan = bound.sources["events"].scan
    assert scan is not None
    assert scan.frame.collect()["ts"].to_list() == expected


@pytest.mark.parametrize("statistics", [True, False])
def test_epoch_units_are_checked_over_a_parquet_column_when_its_statistics_allow(
    tmp_path, make_plan, statistics
):
    """Milliseconds for the sample's rows, then seconds: the row groups' min and max show it
    before the query; in a file written without statistics, the query's own guard finds the row
    (as in a CSV)."""
    start = int(datetime(2026, 10, 2, tzinfo=UTC).timestamp())
    ts = [(start + i) * 1000 for i in range(250)] + [start + i for i in range(250, 300)]
    events = pl.DataFrame({"user_id": ["a"] * 300, "ts": ts, "event_name": ["purchase"] * 300})
    events.write_parquet(tmp_path / "events.parquet", statistics=statistics, row_group_size=100)
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    source = {"path": "events.parquet", "unit": "user_id", "timestamp": "ts"}
    plan = load_plan(make_plan(sources={"events": source}))
    if not statistics:
        with pytest.raises(
            DataError, match=r"\(row 251\): column 'ts': '1790899450' is not in mil"
        ):
            collect_stats(plan)
        return
    with pytest.raises(DataError, match=r"holds numbers from 1790899450 to 1790899449000: no one"):
        bind_plan(plan)


@pytest.mark.parametrize(
    "value",
    [
        "2026-10-02T00:00:00Z",
        "2026-10-02T00:00:00.123456+02:00",
        "2026-10-02 00:00:00+0000",
        "2026-10-02 00:00:00",
        "2026-10-02T00:00:00.5",
        "2026-10-02 00:00:00.123456 UTC",
        "2026-10-02 00:00:00.123 -0130",
    ],
)
def test_text_timestamps_are_parsed_in_the_layout_their_sample_shows(tmp_path, make_plan, value):
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, [f"a,control,{value}"])
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", [f"a,{value},purchase"])
    scan = bind_plan(load_plan(make_plan(timezone="Europe/Paris"))).exposures.scan
    assert scan is not None and scan.inferred is not None  # a fixed layout, not inference
    assert scan.kinds["exposed_at"].iso  # read by Arrow's ISO 8601 parser
    assert scan.frame.collect().equals(scan.by_inference().frame.collect())


def _day_month_rows(days: list[int], layout: str) -> list[str]:
    return [
        f"u{i},control,{datetime(2026, 10, d, 12).strftime(layout)}" for i, d in enumerate(days)
    ]


@pytest.mark.parametrize(
    ("days", "layout", "problem"),
    [
        # an American export of the first 12 days: Polars read 10/02/2026 as 10 February
        ([2, 5, 12], "%m/%d/%Y %H:%M", "no date has a day above 12"),
        (
            [2] * 300 + [13],
            "%m/%d/%Y %H:%M",
            "dates are written month first (a day of 13 comes second)",
        ),
        ([2, 5, 12], "%d-%m-%Y %H:%M", "no date has a day above 12"),
    ],
)
def test_dates_whose_day_and_month_order_is_not_clear_are_refused(
    tmp_path, make_plan, days, layout, problem
):
    """Polars reads 02/10/2026 day first, always; a day past the sample settles it."""
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, _day_month_rows(days, layout))
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", ["u0,2026-10-03T00:00:00Z,x"])
    with pytest.raises(DataError, match=re.escape(f"column 'exposed_at': {problem}")):
        bind_plan(load_plan(make_plan(timezone="UTC")))


def test_dates_written_day_first_are_read_when_a_day_past_the_sample_shows_it(tmp_path, make_plan):
    days = [2] * 300 + [13]  # the first rows (the sample) are all of 2 October
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, _day_month_rows(days, "%d/%m/%Y %H:%M"))
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", ["u0,2026-10-03T00:00:00Z,x"])
    scan = bind_plan(load_plan(make_plan(timezone="UTC"))).exposures.scan
    assert scan is not None
    times = scan.frame.collect()["exposed_at"]
    assert times[0] == datetime(2026, 10, 2, 12, tzinfo=UTC)
    assert times[-1] == datetime(2026, 10, 13, 12, tzinfo=UTC)


def test_nanosecond_text_is_parsed_by_its_layout_not_arrow(tmp_path, make_plan):
    """Arrow's ISO 8601 parser refuses a seventh fraction digit in microseconds; the layout
    truncates it, as inference does. The sample shows it, so the layout is kept."""
    value = "2026-10-02T00:00:00.123456789Z"
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, [f"a,control,{value}"])
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", [f"a,{value},purchase"])
    scan = bind_plan(load_plan(make_plan())).exposures.scan
    assert scan is not None and scan.kinds["exposed_at"].layout is not None
    assert not scan.kinds["exposed_at"].iso
    assert scan.frame.collect().equals(scan.by_inference().frame.collect())


_OFFSETS = st.sampled_from(["Z", "+00:00", "+0200", "-05:30", "+1400", "-1200", "+0000"])


@settings(max_examples=200, deadline=None)
@given(
    moments=st.lists(
        st.tuples(
            st.datetimes(datetime(1970, 1, 2), datetime(2099, 12, 30)),
            st.integers(0, 6),  # fraction digits
            st.sampled_from("T "),
            _OFFSETS,
        ),
        min_size=1,
        max_size=20,
    ),
    aware=st.booleans(),
)
def test_arrow_reads_iso_text_as_polars_layouts_do(moments, aware):
    """`iso_values` (Arrow) against Polars' chrono parse of the sniffed layouts, value by value."""
    texts = []
    for moment, digits, separator, offset in moments:
        fraction = f".{moment.microsecond:06d}"[: digits + 1] if digits else ""
        texts.append(moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + fraction)
        if aware:
            texts[-1] += offset
    text = pl.Series("ts", texts)
    zone = "UTC" if aware else None
    expected = text.str.to_datetime(time_unit="us", time_zone=zone, strict=True)
    assert iso_values(text, aware).equals(expected)


def test_arrow_refuses_what_the_layout_refuses():
    """A naive value in an aware column (and the reverse) fails, so the query falls back."""
    with pytest.raises(pl.exceptions.ComputeError, match="2026-10-02T00:00:00"):
        iso_values(pl.Series("ts", ["2026-10-02T00:00:00Z", "2026-10-02T00:00:00"]), True)
    with pytest.raises(pl.exceptions.ComputeError):
        iso_values(pl.Series("ts", ["2026-10-02T00:00:00+02:00"]), False)


def test_a_layout_the_sample_did_not_show_is_still_read(tmp_path, make_plan):
    """Rows past the sample in another ISO layout: the query is rerun with per-value parsing."""
    sampled = [f"u{i},{('control', 'treatment')[i % 2]},2026-10-02T00:00:00Z" for i in range(300)]
    # 12:00 at +02:00 is 10:00 UTC: the purchase at 10:30 UTC counts, the one at 09:59 UTC not
    late = ["late,treatment,2026-10-02 12:00:00+02:00"]
    result, stats = per_unit(
        tmp_path,
        make_plan,
        sampled + late,
        ["late,2026-10-02T10:30:00Z,purchase,", "late,2026-10-02 11:59:00+02:00,purchase,"],
    )
    assert result == {"control": (150, 0.0), "treatment": (151, 1.0)}
    assert stats.sources["events"].pre_exposure == {"treatment": 1}


def test_a_malformed_timestamp_past_the_sample_is_reported_with_its_line(tmp_path, make_plan):
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    events = ["a,2026-10-03T00:00:00Z,purchase"] * 250 + ["a,yesterday,purchase"]
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name", events)
    with pytest.raises(DataError, match=r"events\.csv:252.*yesterday"):
        collect_stats(load_plan(make_plan()))


def test_duplicate_event_ids_are_dropped_and_counted(tmp_path, make_plan):
    write_csv(
        tmp_path / "exposures.csv",
        EXPOSURE_HEADER,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
    )
    write_csv(
        tmp_path / "events.csv",
        "id,user_id,ts,event_name",
        ["1,a,2026-10-03T00:00:00Z,purchase", "1,a,2026-10-03T00:00:00Z,purchase"],
    )
    metrics = {
        "n": {
            "role": "primary",
            "type": "mean",
            "source": "events",
            "filter": "event_name = 'purchase'",
        }
    }
    sources = {"events": {"path": "events.csv", "unit": "user_id", "timestamp": "ts", "id": "id"}}
    stats = collect_stats(load_plan(make_plan(metrics=metrics, sources=sources)))
    assert stats.by_variant()["control"][1][0].y == 1.0
    assert stats.sources["events"].duplicates == {"control": 1}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 39), st.integers(0, 5), st.floats(0, 500, allow_nan=False)),
        min_size=1,
        max_size=80,
    )
)
def test_polars_sums_equal_numpy_per_unit_sums(tmp_path_factory, events):
    folder = tmp_path_factory.mktemp("prop")
    exposures = [
        f"u{i},{'control' if i % 2 else 'treatment'},2026-10-01T00:00:00Z" for i in range(40)
    ]
    write_csv(folder / "exposures.csv", EXPOSURE_HEADER, exposures)
    write_csv(
        folder / "events.csv",
        "user_id,ts,event_name,revenue",
        [f"u{u},2026-10-0{d + 1}T00:00:00Z,purchase,{v}" for u, d, v in events],
    )
    plan = folder / "plan.yaml"
    plan.write_text("""
experiment: {name: p, control: control, variants: {control: 1, treatment: 1}}
exposures: {path: exposures.csv, unit: user_id, variant: variant, timestamp: exposed_at}
sources: {events: {path: events.csv, unit: user_id, timestamp: ts}}
metrics: {rev: {role: primary, type: mean, source: events, value: revenue}}
""")
    stats = collect_stats(load_plan(plan))
    per_user = np.zeros(40)
    for u, _, v in events:
        per_user[u] += v
    treated = np.arange(40) % 2 == 0
    moments = stats.by_variant()["treatment"][1][0]
    assert moments.y == pytest.approx(per_user[treated].sum())
    assert moments.yy == pytest.approx((per_user[treated] ** 2).sum())


def test_lazy_query_reads_only_needed_columns(tmp_path, make_plan):
    from croctl.pipeline import bind_plan
    from croctl.pipeline.build import build_query

    write_csv(
        tmp_path / "exposures.csv",
        EXPOSURE_HEADER + ",unused",
        ["a,control,2026-10-02T00:00:00Z,x"],
    )
    write_csv(
        tmp_path / "events.csv",
        "user_id,ts,event_name,revenue,junk",
        ["a,2026-10-03T00:00:00Z,purchase,1,zz"],
    )
    query = build_query(bind_plan(load_plan(make_plan())))
    plan_text = query.frames["cells"].explain()
    assert "junk" not in plan_text and "unused" not in plan_text
    assert isinstance(query.frames["cells"], pl.LazyFrame)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=40),
    zeros=st.integers(0, 40),
    q=st.floats(0.5, 0.999),
)
def test_padded_quantile_equals_numpy_on_the_padded_array(values, zeros, q):
    from croctl.pipeline.caps import padded_quantile

    if not values and not zeros:
        return
    frame = pl.DataFrame({"v": values}, schema={"v": pl.Float64})
    got = frame.select(padded_quantile(pl.col("v"), q, pl.lit(len(values) + zeros))).item()
    expected = np.quantile(np.concatenate([values, np.zeros(zeros)]), q)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_timestamps_are_parsed_only_on_rows_a_metric_uses(tmp_path, make_plan):
    from croctl.errors import DataError

    exposures = ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"]
    # a page view no metric reads: its broken timestamp never matters
    result, _ = per_unit(
        tmp_path,
        make_plan,
        exposures,
        ["a,not a time,page_view,", "b,2026-10-03T00:00:00Z,purchase,"],
    )
    assert result == {"control": (1, 0.0), "treatment": (1, 1.0)}
    # the same broken timestamp on a purchase is an error that names the file and line
    with pytest.raises(DataError, match=r"events\.csv:2"):
        per_unit(
            tmp_path,
            make_plan,
            exposures,
            ["a,not a time,purchase,", "b,2026-10-03T00:00:00Z,purchase,"],
        )


def test_a_filter_reading_a_timestamp_column_runs_after_the_parse(tmp_path, make_plan):
    metric = {
        "role": "primary",
        "type": "proportion",
        "source": "events",
        "filter": "event_name = 'purchase' AND ts IS NOT NULL",
    }
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        ["a,2026-10-03T23:00:00+00:00,purchase,", "b,2026-10-04T01:00:00+02:00,page_view,"],
        metrics={"conv": metric},
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 0.0)}


@pytest.mark.parametrize(
    "since",
    ["TIMESTAMPTZ '2026-10-03 12:00:00+00:00'", "CAST('2026-10-03 12:00:00' AS TIMESTAMPTZ)"],
)
def test_a_filter_compares_a_timestamp_column_with_a_utc_literal(tmp_path, make_plan, since):
    metric = {"role": "primary", "type": "mean", "source": "events"}
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        [
            "a,2026-10-03T11:00:00Z,purchase,",  # before noon UTC: not counted
            "a,2026-10-03T13:00:00+02:00,purchase,",  # 11:00 UTC: not counted
            "a,2026-10-03T12:00:00Z,purchase,",
            "b,2026-10-03T14:00:00+01:00,purchase,",
        ],
        metrics={"n": metric | {"filter": f"event_name = 'purchase' AND ts >= {since}"}},
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 1.0)}


def test_each_filter_that_cannot_run_on_its_columns_is_a_plan_error(tmp_path, make_plan):
    """Found when the plan is bound, not as an internal error inside the query."""
    from croctl.errors import PlanErrors

    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    write_csv(
        tmp_path / "events.csv", "user_id,ts,event_name,revenue", ["a,2026-10-03T00:00:00Z,x,1"]
    )
    metric = {"role": "primary", "type": "mean", "source": "events", "value": "revenue"}
    plan = make_plan(
        metrics={
            "late": metric | {"filter": "ts >= TIMESTAMP '2026-10-03 00:00:00'"},
            "odd": metric | {"role": "diagnostic", "filter": "event_name > 3"},
            "bare": metric | {"role": "diagnostic", "filter": "ts >= '2026-10-03'"},
        }
    )
    with pytest.raises(PlanErrors) as caught:
        bind_plan(load_plan(plan))
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 3
    assert problems[0].startswith("metrics.late.filter: \"ts >= TIMESTAMP '2026-10-03 00:00:00'\"")
    assert "TIMESTAMPTZ" in problems[0]  # the hint says how to write it
    assert problems[1].startswith("metrics.odd.filter: ")
    # Polars' own words suggested "native python" objects
    assert "a timestamp column is compared with a text literal (hint: " in problems[2]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_filter_that_fails_on_the_values_is_a_plan_error(tmp_path, make_plan, fmt):
    """`CAST` of text that is no number: named with its plan key, not as an internal error.

    On a Parquet export's first rows when the plan is bound; a CSV's once the query fails.
    """
    from croctl.errors import PlanErrors

    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    events = pl.DataFrame(
        {"user_id": ["a"], "ts": [datetime(2026, 10, 3, tzinfo=UTC)], "event_name": ["x"]}
    )
    if fmt == "parquet":
        events.write_parquet(tmp_path / "events.parquet")
    else:
        events.write_csv(tmp_path / "events.csv")
    metric = {"role": "primary", "type": "mean", "source": "events"}
    plan = make_plan(
        sources={"events": {"path": f"events.{fmt}", "unit": "user_id", "timestamp": "ts"}},
        metrics={"n": metric | {"filter": "CAST(event_name AS INTEGER) > 3"}},
    )
    with pytest.raises(PlanErrors) as caught:
        if fmt == "parquet":
            bind_plan(load_plan(plan))
        else:
            collect_stats(load_plan(plan))
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith("metrics.n.filter: 'CAST(event_name AS INTEGER) > 3' cannot run")
    assert "TRY_CAST" in problem  # the hint says how to skip what does not convert


def test_try_cast_in_a_filter_skips_the_values_that_do_not_convert(tmp_path, make_plan):
    metric = {"role": "primary", "type": "mean", "source": "events"}
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        ["a,2026-10-03T00:00:00Z,x,", "a,2026-10-03T00:00:00Z,5,", "b,2026-10-03T00:00:00Z,2,"],
        metrics={"n": metric | {"filter": "TRY_CAST(event_name AS INTEGER) > 3"}},
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 0.0)}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_filter_failing_past_the_first_rows_is_named_once_the_query_fails(
    tmp_path, make_plan, fmt
):
    """Beyond the rows read when the plan is bound, the query fails; then every row is tried."""
    from croctl.errors import PlanErrors

    rows = 20_000
    events = pl.DataFrame(
        {
            "user_id": ["a"] * rows,
            "ts": ["2026-10-03T00:00:00Z"] * rows,
            "event_name": ["1"] * (rows - 1) + ["x"],
        }
    )
    if fmt == "parquet":
        events = events.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
        events.write_parquet(tmp_path / "events.parquet")
    else:
        events.write_csv(tmp_path / "events.csv")
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    metric = {"role": "primary", "type": "mean", "source": "events"}
    plan = make_plan(
        sources={"events": {"path": f"events.{fmt}", "unit": "user_id", "timestamp": "ts"}},
        metrics={"n": metric | {"filter": "CAST(event_name AS INTEGER) > 0"}},
    )
    bind_plan(load_plan(plan))  # its first rows convert
    with pytest.raises(PlanErrors, match=r"metrics\.n\.filter: .* for 1 out of \d+ values"):
        collect_stats(load_plan(plan))


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_a_csv_filter_column_with_digits_first_then_text_is_read_as_text(
    tmp_path, make_plan, engine
):
    """Typed by its first rows it would be a number, and the filter on its text could not run."""
    rows = 30_000  # past Polars' 10 000 rows of type inference and DuckDB's 20 480
    pl.DataFrame(
        {
            "user_id": ["a"] * rows + ["b"],
            "ts": ["2026-10-03T00:00:00Z"] * (rows + 1),
            "event_name": ["1"] * rows + ["SAVE10"],
        }
    ).write_csv(tmp_path / "events.csv")
    write_csv(
        tmp_path / "exposures.csv",
        EXPOSURE_HEADER,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
    )
    metric = {"role": "primary", "type": "mean", "source": "events", "filter": "event_name = '1'"}
    other = metric | {"role": "diagnostic", "filter": "event_name = 'SAVE10'"}
    plan = load_plan(make_plan(metrics={"ones": metric, "codes": other}))
    stats = collect_stats(plan, engine=Engine(engine))
    totals = {v: [m.y for m in moments] for v, (_, moments) in stats.by_variant().items()}
    assert totals == {"control": [rows, 0.0], "treatment": [0.0, 1.0]}


def test_csv_numbers_with_spaces_around_them_are_numbers(tmp_path, make_plan):
    """Polars' reader refuses ` 12.5`; the second read (as text, stripped) takes it, as DuckDB's."""
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        ["a,2026-10-03T00:00:00Z,purchase, 12.5", "b,2026-10-03T00:00:00Z,purchase,7 "],
        metrics=revenue_mean(),
    )
    assert result == {"control": (1, 12.5), "treatment": (1, 7.0)}


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_a_csv_column_of_true_and_false_averages_as_ones_and_zeros(tmp_path, make_plan, engine):
    """DuckDB's reader types such a column boolean and casts it to 0/1; Polars' refused it."""
    rows = [("a", "true"), ("a", "FALSE"), ("b", "false")]
    result, _ = per_unit(
        tmp_path,
        make_plan,
        ["a,control,2026-10-02T00:00:00Z", "b,treatment,2026-10-02T00:00:00Z"],
        [f"{unit},2026-10-03T00:00:00Z,lead,{flag}" for unit, flag in rows],
        engine=engine,
        metrics=revenue_mean(filter="event_name = 'lead'"),
    )
    assert result == {"control": (1, 1.0), "treatment": (1, 0.0)}


@pytest.mark.parametrize(
    ("column", "key", "held"),
    [
        ("ts", "metrics.rev.value", "timestamps"),  # the source's own timestamp
        ("took", "metrics.rev.value", "Duration values"),
        ("signed_up", "metrics.rev.covariate", "timestamps"),
    ],
)
def test_a_value_or_covariate_column_that_holds_no_numbers_is_a_plan_error(
    tmp_path, make_plan, column, key, held
):
    """It was an internal error (Polars cannot cast times to Float64) or DuckDB's binder error."""
    from croctl.errors import PlanErrors

    moment = datetime(2026, 10, 3, tzinfo=UTC)
    pl.DataFrame(
        {
            "user_id": ["a"],
            "variant": ["control"],
            "exposed_at": [moment],
            "signed_up": [moment],
        }
    ).write_parquet(tmp_path / "exposures.parquet")
    pl.DataFrame(
        {"user_id": ["a"], "ts": [moment], "revenue": [1.0], "took": [timedelta(seconds=3)]}
    ).write_parquet(tmp_path / "events.parquet")
    metric = {"role": "primary", "type": "mean", "source": "events", "value": "revenue"}
    covariate = key.endswith("covariate")
    metric |= {"covariate": column} if covariate else {"value": column}
    plan = make_plan(
        exposures=BASE_PLAN["exposures"] | {"path": "exposures.parquet"},
        sources={"events": {"path": "events.parquet", "unit": "user_id", "timestamp": "ts"}},
        metrics={"rev": metric},
    )
    with pytest.raises(PlanErrors) as caught:
        bind_plan(load_plan(plan))
    export = tmp_path / ("exposures.parquet" if covariate else "events.parquet")
    assert [str(p).split(" (hint")[0] for p in caught.value.problems] == [
        f"{key}: column '{column}' of {export} holds {held}, not numbers"
    ]


def test_cap_is_the_pooled_quantile_of_per_unit_values_and_is_reported(tmp_path, make_plan):
    from croctl.analysis import analyze

    metrics = revenue_mean(cap=0.75)
    arms = ["control", "control", "control", "treatment", "treatment", "treatment"]
    exposures = [f"{u},{v},2026-10-02T00:00:00Z" for u, v in zip("abcfde", arms, strict=True)]
    events = [  # per unit: a 10+5, b 40, c and f no rows (0), d 100, e 7
        "a,2026-10-03T00:00:00Z,purchase,10",
        "a,2026-10-04T00:00:00Z,purchase,5",
        "b,2026-10-03T00:00:00Z,purchase,40",
        "d,2026-10-03T00:00:00Z,purchase,100",
        "e,2026-10-03T00:00:00Z,purchase,7",
    ]
    result, stats = per_unit(tmp_path, make_plan, exposures, events, metrics=metrics)
    cap = float(np.quantile([15.0, 40.0, 0.0, 100.0, 7.0, 0.0], 0.75))  # 33.75
    assert stats.caps["rev"] == pytest.approx(cap)
    assert result == {
        "control": (3, pytest.approx(15.0 + cap + 0.0)),  # b's 40 capped
        "treatment": (3, pytest.approx(0.0 + cap + 7.0)),  # d's 100 capped
    }
    report = analyze(load_plan(tmp_path / "plan.yaml"), stats)
    assert report.metrics[0].cap == pytest.approx(cap)


def test_a_parquet_text_column_of_no_numbers_is_no_value(tmp_path, make_plan):
    """Text numbers are read (`12.5`), but an event name as a value is a plan error at its key."""
    write_csv(tmp_path / "exposures.csv", EXPOSURE_HEADER, ["a,control,2026-10-02T00:00:00Z"])
    events = {"user_id": ["a"], "ts": ["2026-10-03T00:00:00Z"], "event_name": ["purchase"]}
    pl.DataFrame(events | {"revenue": ["12.5"]}).write_parquet(tmp_path / "events.parquet")
    sources = {"events": {"path": "events.parquet", "unit": "user_id", "timestamp": "ts"}}
    metric = {"role": "primary", "type": "mean", "source": "events", "value": "event_name"}
    with pytest.raises(PlanErrors, match=r"value: column 'event_name' .* holds text such as"):
        bind_plan(load_plan(make_plan(sources=sources, metrics={"m": metric})))
    metric["value"] = "revenue"
    bind_plan(load_plan(make_plan(sources=sources, metrics={"m": metric})))
