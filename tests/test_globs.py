"""A glob's files written apart (types drifting day to day, columns reordered, a day without
rows) read out as the same rows in one file do, on every engine."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from croctl.errors import DataError
from croctl.io import inspect_export
from croctl.io.globs import common_type
from tests.test_engines import ON_SPARK, SAMPLE, _checkout_over, _report
from tests.test_golden import _close

ENGINES = ["polars", "duckdb", pytest.param("spark", marks=ON_SPARK)]

# How each day's writer stored the events: the first as the sample, the others apart.
DRIFTS = [
    lambda day: day,
    lambda day: day.with_columns(  # floats written as integers, times in milliseconds
        pl.col("revenue").round().cast(pl.Int32), pl.col("ts").dt.cast_time_unit("ms")
    ),
    lambda day: day.with_columns(  # labels as a dictionary, times in another zone
        pl.col("event_name").cast(pl.Categorical),
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata"),
    ),
    lambda day: day.clear(),  # a day without events
]
NANOSECONDS = 2  # this day's times also in nanoseconds, which Spark does not read


def _days(events: pl.DataFrame) -> list[pl.DataFrame]:
    """The events as written day by day, each day's writer storing them its own way."""
    days = events.with_row_index("row").with_columns((pl.col("row") % 3).alias("day"))
    return [
        drift(days.filter(pl.col("day") == k % 3).drop("row", "day"))
        for k, drift in enumerate(DRIFTS)
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_glob_of_files_typed_apart_reads_out_as_one_file(tmp_path, engine):
    events = pl.read_parquet(SAMPLE / "events.parquet")
    days = _days(events)
    (tmp_path / "events").mkdir()
    for k, day in enumerate(days):
        stored = day
        if k == NANOSECONDS and engine != "spark":
            stored = day.with_columns(pl.col("ts").dt.cast_time_unit("ns"))
        stored.write_parquet(tmp_path / "events" / f"day-{k}.parquet")
    # the same rows in one file, as the glob's common types read them
    common = [
        pl.col("event_name").cast(pl.String),
        pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        pl.col("revenue").cast(pl.Float64),
    ]
    pl.concat([day.with_columns(common) for day in days]).write_parquet(tmp_path / "one.parquet")
    exposures = str(SAMPLE / "exposures.parquet")
    expected = _report(_checkout_over(tmp_path, exposures, "one.parquet"))
    plan = _checkout_over(tmp_path, exposures, "events/*.parquet")
    got = _report(plan, engine=engine)
    _close(got, expected | {"plan_sha256": got["plan_sha256"]})


@pytest.mark.parametrize("engine", ENGINES)
def test_a_glob_of_csv_files_with_columns_in_other_orders_reads_out_as_one(tmp_path, engine):
    events = pl.read_parquet(SAMPLE / "events.parquet")
    (tmp_path / "events").mkdir()
    half = events.height // 2
    events.head(half).write_csv(tmp_path / "events" / "a.csv")
    events.tail(-half).select(reversed(events.columns)).write_csv(tmp_path / "events" / "b.csv")
    events.head(0).write_csv(tmp_path / "events" / "c.csv")  # a header, no rows
    events.write_csv(tmp_path / "one.csv")
    exposures = str(SAMPLE / "exposures.parquet")
    expected = _report(_checkout_over(tmp_path, exposures, "one.csv"))
    got = _report(_checkout_over(tmp_path, exposures, "events/*.csv"), engine=engine)
    _close(got, expected | {"plan_sha256": got["plan_sha256"]})


def test_a_glob_whose_files_are_all_empty_is_refused(tmp_path):
    for name in ("a", "b"):
        pl.DataFrame({"user_id": ["u"]}).clear().write_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(DataError, match=r"a\.parquet: has no rows"):
        inspect_export(tmp_path / "*.parquet")


@pytest.mark.parametrize(
    ("first", "other", "common"),
    [
        (pl.Int32, pl.Int64, pl.Int64),
        (pl.UInt8, pl.UInt32, pl.UInt64),
        (pl.UInt32, pl.Int16, pl.Int64),
        (pl.Int64, pl.Float32, pl.Float64),
        (pl.Categorical, pl.String, pl.String),
        (pl.Datetime("ns"), pl.Datetime("ms"), pl.Datetime("us")),
        (pl.Datetime("us", "UTC"), pl.Datetime("ms", "UTC"), pl.Datetime("us", "UTC")),
        (pl.Datetime("us", "UTC"), pl.Datetime("us", "Europe/Paris"), pl.Datetime("us", "UTC")),
    ],
)
def test_common_type_converts_every_files_type_without_loss(first, other, common):
    assert common_type("c", [(Path("a"), first), (Path("b"), other)]) == common


@pytest.mark.parametrize(
    ("first", "other"),
    [
        (pl.String, pl.Int64),
        (pl.Datetime("us", "UTC"), pl.Datetime("us")),  # absolute against local times
        (pl.Date, pl.Datetime("us", "UTC")),
    ],
)
def test_types_without_a_common_one_are_a_data_error_naming_both_files(first, other):
    with pytest.raises(DataError, match=r"b: column 'c' is .*, but .* in a"):
        common_type("c", [(Path("a"), first), (Path("b"), other)])


@pytest.mark.parametrize("engine", ENGINES)
def test_folders_and_files_named_with_glob_characters_are_read_as_written(tmp_path, engine):
    """`exports [2026-10]` is a folder, not a character class, for croctl and every engine."""
    folder = tmp_path / "exports [2026-10] & more"
    (folder / "events {a}").mkdir(parents=True)
    events = pl.read_parquet(SAMPLE / "events.parquet")
    half = events.height // 2
    events.head(half).write_parquet(folder / "events {a}" / "day [1].parquet")
    events.tail(-half).write_parquet(folder / "events {a}" / "day [2].parquet")
    exposures = folder / "exposures*.parquet"  # a file named with a star
    pl.read_parquet(SAMPLE / "exposures.parquet").write_parquet(exposures)
    expected = _report(
        _checkout_over(tmp_path, str(SAMPLE / "exposures.parquet"), str(SAMPLE / "events.parquet"))
    )
    plan = _checkout_over(folder, "exposures*.parquet", "events {a}/day*.parquet")
    assert len(inspect_export(folder / "events {a}" / "day*.parquet").paths) == 2
    got = _report(plan, engine=engine)
    _close(got, expected | {"plan_sha256": got["plan_sha256"]})
