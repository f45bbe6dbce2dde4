"""Metric filters mean on the SQL engines what they mean on Polars, where the engines' own
functions differ (ROUND's halves, CONCAT's nulls, TRIM's white space), and a cast no spelling
makes agree is a plan error."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest
import yaml

from croctl.errors import PlanErrors
from croctl.pipeline import bind_plan
from croctl.pipeline.filter_sql import filter_sql
from croctl.pipeline.sql import DIALECTS, build_sql
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN
from tests.test_engines import ON_SPARK, _assert_parity, _report

# Filters whose functions the engines disagree on, with the rows each must count (by hand)
FILTERS = {
    "half": ("round(amount) = 2", 3),  # 2.5 (to even; away from zero gives 3), 1.5 and 2.4
    "negative_half": ("round(amount) = -2", 1),  # -2.5 (to even); away from zero gives -3
    "cents": ("round(amount, 2) = 0.12", 1),  # 0.125 is a binary tie: to even, 0.12
    "nested": ("round(round(amount * 3, 1) / 2) = 4", 2),  # 2.5: 3.75; 2.4: 7.2 / 2 = 3.6
    "null_skipped": ("concat(event_name, '!') = '!'", 1),  # the null name, as Polars skips it
    "trimmed": ("trim(event_name) = 'cart'", 2),  # a tab, a no-break space and a line break
    "left_trimmed": ("ltrim(event_name) = 'cart'", 0),  # both keep their trailing white space
}
AMOUNTS = [2.5, 3.5, -2.5, 0.125, 1.5, 2.4]
NAMES = ["purchase", "refund", None, "purchase", "cart\t", "\u00a0cart\n"]


def write_filters(folder):
    """One unit per variant with every row; each metric's mean is its count of matching rows."""
    pl.DataFrame(
        {
            "user_id": ["a", "b"],
            "variant": ["control", "treatment"],
            "exposed_at": [datetime(2026, 10, 2, tzinfo=UTC)] * 2,
        }
    ).write_parquet(folder / "exposures.parquet")
    rows = len(AMOUNTS)
    pl.DataFrame(
        {
            "user_id": ["a"] * rows + ["b"] * rows,
            "ts": [datetime(2026, 10, 3, tzinfo=UTC) + timedelta(minutes=i) for i in range(rows)]
            * 2,
            "event_name": NAMES * 2,
            "amount": AMOUNTS * 2,
        }
    ).write_parquet(folder / "events.parquet")
    metric = {"role": "diagnostic", "type": "mean", "source": "events"}
    plan = {
        **BASE_PLAN,
        "exposures": {**BASE_PLAN["exposures"], "path": "exposures.parquet"},
        "sources": {"events": {"path": "events.parquet", "unit": "user_id", "timestamp": "ts"}},
        "metrics": {
            "conv": BASE_PLAN["metrics"]["conv"],
            **{name: metric | {"filter": sql} for name, (sql, _) in FILTERS.items()},
        },
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _counts(report):
    return {m["name"]: m["variants"]["control"]["value"] for m in report["metrics"][1:]}


EXPECTED = {name: count for name, (_, count) in FILTERS.items()}


def test_filters_whose_functions_differ_by_engine_agree_on_every_engine(tmp_path):
    report = _assert_parity(write_filters(tmp_path), tmp_path)
    assert _counts(report) == EXPECTED


@pytest.mark.parametrize("engine", [pytest.param("spark", marks=ON_SPARK)])
def test_filters_whose_functions_differ_by_engine_agree_on_spark(tmp_path, engine):
    assert _counts(_report(write_filters(tmp_path), engine=engine)) == EXPECTED


@pytest.mark.parametrize("decimals", [None, 0, 1, 2, 3])
def test_the_sql_rounds_halves_to_even_as_numpy_does(decimals):
    """DuckDB running the spelled-out ROUND gives numpy's round (halves to even) on values
    with binary ties (halves, eighths, thousandths) and without."""
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.normal(0, 100, 20_000),
            np.round(rng.normal(0, 100, 20_000) * 2) / 2,
            np.round(rng.normal(0, 100, 20_000) * 8) / 8,
            rng.integers(-1000, 1000, 20_000) / 1000,
        ]
    )
    frame = pl.DataFrame({"x": values})  # noqa: F841 (DuckDB reads it by name)
    call = "round(x)" if decimals is None else f"round(x, {decimals})"
    sql = filter_sql(call).sql(dialect="duckdb")
    got = duckdb.sql(f"SELECT {sql} AS r FROM frame").pl()["r"].to_numpy()
    np.testing.assert_array_equal(got, np.round(values, decimals or 0))


def test_a_fraction_cast_to_an_integer_is_a_plan_error(tmp_path):
    plan = yaml.safe_load(write_filters(tmp_path).read_text())
    plan["metrics"]["cast"] = plan["metrics"]["half"] | {"filter": "CAST(amount AS INT) >= 2"}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    with pytest.raises(PlanErrors) as caught:
        bind_plan(load_plan(tmp_path / "plan.yaml"))
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith("metrics.cast.filter: 'CAST(amount AS INT) >= 2' casts amount")
    assert "CAST(FLOOR(amount) AS INTEGER)" in problem  # the hint says how to choose


@pytest.mark.parametrize(
    "sql", ["CAST(FLOOR(amount) AS INTEGER) = 2", "TRY_CAST(event_name AS INTEGER) = 2"]
)
def test_a_cast_that_rounds_nothing_is_not_an_error(tmp_path, sql):
    plan = yaml.safe_load(write_filters(tmp_path).read_text())
    plan["metrics"]["cast"] = plan["metrics"]["half"] | {"filter": sql}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    bind_plan(load_plan(tmp_path / "plan.yaml"))


def test_the_printed_sql_names_the_utc_session_its_dates_need(tmp_path):
    """A DATE in a filter is read in the session's zone: the printed DuckDB query counted other
    rows in a New York session. Its first line says how to set the session to UTC."""
    plan = yaml.safe_load(write_filters(tmp_path).read_text())
    dated = plan["metrics"]["half"] | {"filter": "ts < DATE '2026-10-03' + INTERVAL 2 MINUTE"}
    plan["metrics"] = {"conv": plan["metrics"]["conv"], "dated": dated}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    sql = build_sql(bind_plan(load_plan(tmp_path / "plan.yaml")), "duckdb")
    command = re.fullmatch(r"-- Run in a UTC session: (.*;) \(.*", sql.splitlines()[0])
    assert command is not None
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'America/New_York'")
        elsewhere = con.sql(sql).pl()
        con.execute(command.group(1))
        utc = con.sql(sql).pl()
    assert not elsewhere.equals(utc)
    table = tmp_path / "stats.parquet"
    utc.write_parquet(table)
    assert (
        _report(tmp_path / "plan.yaml", stats=table)["metrics"][1]["variants"]["control"]["value"]
        == 2
    )  # the rows at 00:00 and 00:01 UTC on 3 October


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_names_its_utc_session_command(tmp_path, dialect):
    sql = build_sql(bind_plan(load_plan(write_filters(tmp_path))), dialect)
    assert sql.startswith("-- Run in a UTC session: ") and "UTC" in sql.splitlines()[0][25:]
