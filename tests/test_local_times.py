"""Naive local times (a plan's `timezone:`) name the same instants on every engine, through
daylight-saving changes, and in every dialect's SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
import sqlglot
import yaml

from croctl.pipeline import bind_plan
from croctl.pipeline.sql import build_sql
from croctl.plan import load_plan
from croctl.plan.fields import to_utc
from tests.conftest import BASE_PLAN, write_csv
from tests.test_engines import ON_SPARK, _assert_parity, _report

ZONE = "Europe/Berlin"  # 2026: clocks skip 02:00-03:00 on 29 March and repeat it on 25 October
# (exposure, purchase) in Berlin's wall time, and whether the purchase falls in the hour after
# the exposure. The rule: of two readings, the later instant (DuckDB's and PostgreSQL's).
UNITS = [
    # the repeated hour's second pass, 01:10Z; the purchase is 02:05Z, 55 minutes later (the
    # first pass, 00:10Z, would put it 115 minutes later)
    ("2026-10-25 02:10:00", "2026-10-25 03:05:00", True),
    # a skipped time, read with the winter offset: 01:30Z; the purchase at 01:20Z precedes it
    # (the summer offset, 00:30Z, would count it; Polars alone read the exposure as missing)
    ("2026-03-29 02:30:00", "2026-03-29 03:20:00", False),
    ("2026-10-25 02:40:00", "2026-10-25 02:50:00", True),  # both in the repeated hour
    ("2026-06-01 12:00:00", "2026-06-01 12:30:00", True),  # summer time, away from a change
    ("2026-10-25 00:30:00", "2026-10-25 01:20:00", True),  # summer time, hours before the change
]


def write_local_times(folder):
    """An export in Berlin's wall time around both changes; every variant converts at 0.8."""
    exposures, events = [], []
    for i in range(40):
        exposed, bought, _ = UNITS[i % len(UNITS)]
        variant = "control" if (i // len(UNITS)) % 2 == 0 else "treatment"
        exposures.append(f"u{i:03d},{variant},{exposed}")
        events.append(f"u{i:03d},{bought},purchase")
    write_csv(folder / "exposures.csv", "user_id,variant,exposed_at", exposures)
    write_csv(folder / "events.csv", "user_id,ts,event_name", events)
    plan = {
        **BASE_PLAN,
        "timezone": ZONE,
        "experiment": {**BASE_PLAN["experiment"], "start": "2026-03-01T00:00:00",
                       "end": "2026-11-01T00:00:00"},
        "metrics": {"conv": {**BASE_PLAN["metrics"]["conv"], "window": "1h"}},
    }  # fmt: skip
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _converted(report):
    conv = report["metrics"][0]
    return {name: (v["units"], v["value"]) for name, v in conv["variants"].items()}


def test_local_times_around_daylight_saving_changes_agree_on_every_engine(tmp_path):
    report = _assert_parity(write_local_times(tmp_path), tmp_path)
    expected = sum(converts for _, _, converts in UNITS) / len(UNITS)
    assert _converted(report) == {"control": (20, expected), "treatment": (20, expected)}
    window = next(c for c in report["checks"] if c["name"] == "exposure_window")
    assert "0 without timestamp" in window["message"]  # no skipped time was read as missing


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_local_times_read_alike_by_the_dense_arrays(tmp_path, monkeypatch, fmt):
    """The dense path (taken from 2 M exposure rows) reads the same local times: a CSV's once, a
    Parquet export's through the scan."""
    from croctl.pipeline import dense

    plan = write_local_times(tmp_path)
    if fmt == "parquet":
        for name in ("exposures", "events"):
            frame = pl.read_csv(tmp_path / f"{name}.csv", try_parse_dates=True)
            frame.write_parquet(tmp_path / f"{name}.parquet")
        text = plan.read_text().replace(".csv", ".parquet")
        plan.write_text(text)
    expected = _converted(_report(plan))
    monkeypatch.setattr(dense, "MIN_ROWS", 0)
    assert _converted(_report(plan)) == expected == {"control": (20, 0.8), "treatment": (20, 0.8)}


@pytest.mark.parametrize("engine", [pytest.param("spark", marks=ON_SPARK)])
def test_local_times_agree_on_spark(tmp_path, engine):
    """Spark's SQL read naive times as UTC and shifted them by twice the zone's offset (sqlglot's
    `AT TIME ZONE` is FROM_UTC_TIMESTAMP there), and Java reads a repeated hour's first pass."""
    plan = write_local_times(tmp_path)
    assert _converted(_report(plan, engine=engine)) == _converted(_report(plan))


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        (datetime(2026, 10, 25, 2, 30), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),  # repeated
        (datetime(2026, 3, 29, 2, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # skipped
        (datetime(2026, 10, 25, 3, 30), datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
        (datetime(2026, 7, 1, 12, 0), datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_plan_times_take_the_later_reading_as_the_exports_do(local, utc):
    assert to_utc(local, ZONE) == utc


# Each dialect's documented function for "this wall time, in this zone" (not its reverse)
LOCAL_TO_UTC = {
    "duckdb": "CAST(\"exposed_at\" AS TIMESTAMP) AT TIME ZONE 'Europe/Berlin'",
    "postgres": "CAST(\"exposed_at\" AS TIMESTAMP) AT TIME ZONE 'Europe/Berlin'",
    "spark": "TO_UTC_TIMESTAMP(CAST(`exposed_at` AS TIMESTAMP), 'Europe/Berlin')",
    "bigquery": "TIMESTAMP(CAST(`exposed_at` AS DATETIME), 'Europe/Berlin')",
    "snowflake": "CONVERT_TIMEZONE('Europe/Berlin', 'UTC', CAST(\"exposed_at\" AS TIMESTAMPNTZ))",
}


@pytest.mark.parametrize("dialect", sorted(LOCAL_TO_UTC))
def test_every_dialect_reads_a_naive_time_as_local_to_the_plan_zone(tmp_path, dialect):
    sql = build_sql(bind_plan(load_plan(write_local_times(tmp_path))), dialect)
    assert LOCAL_TO_UTC[dialect] in " ".join(sql.split())
    assert "FROM_UTC_TIMESTAMP(CAST" not in sql  # Spark's reverse, on the raw column
    sqlglot.parse(sql, read=dialect)
