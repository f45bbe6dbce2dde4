"""Parity: the Polars engine, the DuckDB engine (the plan's SQL) and a saved statistics table
give the same numbers and the same verdict; the SQL parses in every dialect."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil

import duckdb
import polars as pl
import pytest
import sqlglot
import yaml
from typer.testing import CliRunner

from croctl.cli import app
from croctl.errors import DataError
from croctl.evaluate import evaluate
from croctl.pipeline import bind_plan
from croctl.pipeline.engines import spark_reason
from croctl.pipeline.sql import DIALECTS, build_sql
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN, ROOT, integer_ids, write_csv
from tests.test_golden import _close
from tests.test_trust import Export

PLANS = sorted((ROOT / "plans").glob("*.yaml"))
CHECKOUT = ROOT / "plans" / "checkout.yaml"
SAMPLE = ROOT / "sample_data" / "checkout"
SPARK = importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None
NEEDS_SPARK = pytest.mark.skipif(
    not SPARK, reason="needs PySpark and Java (pip install 'croctl[spark]')"
)
ON_SPARK = [pytest.mark.spark, NEEDS_SPARK]
runner = CliRunner()


def _report(plan, **options):
    body = evaluate(plan, **options).to_dict()
    return json.loads(json.dumps(body))


def _stats_table(plan_path, target):
    """Run `croctl sql` output in DuckDB and save the statistics table."""
    sql = build_sql(bind_plan(load_plan(plan_path)), "duckdb")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.sql(sql)
        if target.suffix == ".parquet":
            relation.write_parquet(str(target))
        else:
            relation.write_csv(str(target))
    return target


def _assert_parity(plan_path, tmp_path):
    polars = _report(plan_path)
    _close(_report(plan_path, engine="duckdb"), polars)
    for suffix in (".parquet", ".csv"):
        table = _stats_table(plan_path, tmp_path / f"stats{suffix}")
        _close(_report(plan_path, stats=table), polars)
    return polars


def _checkout_over(tmp_path, exposures, events, **keys):
    """The shipped checkout plan reading recoded exports in `tmp_path` (plus top-level `keys`)."""
    plan = yaml.safe_load(CHECKOUT.read_text()) | keys
    plan["exposures"]["path"] = exposures
    plan["sources"]["events"]["path"] = events
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.stem)
def test_shipped_plans_agree_on_every_engine(plan, tmp_path):
    _assert_parity(plan, tmp_path)


FIXTURES = {
    "clean": Export(),
    "duplicates_and_switchers": Export(duplicates={"treatment": 40}, switchers=30),
    "window_and_pre_exposure": Export(outside_window=25, pre_exposure={"treatment": 0.3}),
    "coverage_gap": Export(logged={"treatment": 0.2}),
    "small": Export(units=120, min_units=10),
}


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_agree_on_every_engine(name, tmp_path):
    _assert_parity(FIXTURES[name].write(tmp_path), tmp_path)


def test_every_plan_feature_agrees_on_every_engine(tmp_path):
    report = _assert_parity(write_every_feature(tmp_path), tmp_path)
    assert report["funnels"] and report["segments"] and report["metrics"][1]["variance_reduction"]


def write_every_feature(tmp_path):
    """Naive timestamps in a plan time zone, a CRM source, windows, a lookback covariate, an
    exposures covariate, a cap, a ratio, a funnel, segments and a leading-zero id."""
    write_csv(
        tmp_path / "exposures.csv",
        "user_id,variant,exposed_at,device,pre",
        [
            f"{i:05d},{'control' if i % 2 else 'treatment'},2026-10-0{2 + i % 5} 0{i % 10}:00:00,"
            f"{['mobile', 'desktop', ''][i % 3]},{i % 7}"
            for i in range(400)
        ],
    )
    events = []
    for i in range(400):
        day = 2 + i % 5
        if i % 3 == 0:
            events.append(f"{i:05d},2026-10-0{day} 12:00:00,cart,")
        if i % 4 == 0:
            events.append(f"{i:05d},2026-10-0{day} 13:00:00,purchase,{10 + i % 50}")
        if i % 6 == 0:
            events.append(f"{i:05d},2026-10-0{day} 01:00:00,purchase,5")  # before or after start
        events.append(f"{i:05d},2026-09-28 10:00:00,purchase,{i % 9}")  # lookback period
    write_csv(tmp_path / "events.csv", "user_id,ts,event_name,amount", events)
    write_csv(
        tmp_path / "crm.csv",
        "user_id,status,value",
        [f"{i:05d},{'won' if i % 5 == 0 else 'lost'},{i % 11}" for i in range(0, 400, 2)],
    )
    plan = {
        **BASE_PLAN,
        "timezone": "Europe/Paris",
        "exposures": {**BASE_PLAN["exposures"]},
        "sources": {
            "events": {"path": "events.csv", "unit": "user_id", "timestamp": "ts"},
            "crm": {"path": "crm.csv", "unit": "user_id"},
        },
        "segments": {"device": "device"},
        "metrics": {
            "conv": {"role": "primary", "type": "proportion", "source": "events",
                     "filter": "event_name = 'purchase'", "window": "36h",
                     "covariate": {"lookback": "7d"}},
            "revenue": {"role": "quality", "type": "mean", "source": "events",
                        "filter": "event_name = 'purchase'", "value": "amount", "cap": 0.9,
                        "covariate": "pre"},
            "aov": {"role": "quality", "type": "ratio",
                    "numerator": {"source": "events", "filter": "event_name = 'purchase'",
                                  "value": "amount"},
                    "denominator": {"source": "events", "filter": "event_name = 'purchase'"}},
            "won": {"role": "downstream", "type": "proportion", "source": "crm",
                    "filter": "status = 'won'"},
            "crm_value": {"role": "guardrail", "type": "mean", "source": "crm", "value": "value",
                          "margin": 0.5},
        },
        "funnels": {"shop": {"source": "events", "steps": {
            "cart": "event_name = 'cart'", "purchase": "event_name = 'purchase'"}}},
        "checks": {"min_units": 10, "min_segment_units": 5},
    }  # fmt: skip
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def test_other_parquet_encodings_of_an_export_read_the_same(tmp_path):
    """Labels stored as categoricals (Parquet dictionaries, as pandas `category` writes them)
    and nanosecond naive timestamps in a plan time zone: the same report, on every engine, as
    the shipped export."""
    labels = pl.selectors.string() - pl.selectors.by_name("user_id", "event_id", require_all=False)
    for name in ("exposures", "events"):
        frame = pl.read_parquet(SAMPLE / f"{name}.parquet").with_columns(
            labels.cast(pl.Categorical),
            pl.selectors.datetime()
            .dt.convert_time_zone("America/New_York")
            .dt.replace_time_zone(None)
            .dt.cast_time_unit("ns"),
        )
        frame.write_parquet(tmp_path / f"{name}.parquet")
    plan = _checkout_over(
        tmp_path, "exposures.parquet", "events.parquet", timezone="America/New_York"
    )
    recoded = _assert_parity(plan, tmp_path)
    _close(recoded, _report(CHECKOUT) | {"plan_sha256": recoded["plan_sha256"]})


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=ON_SPARK)])
def test_integer_unit_ids_give_the_report_of_text_ids_on_every_engine(tmp_path, engine):
    """Integer ids are joined as integers on every engine (faster than text), with the report
    of the same units under text ids."""
    plan = integer_ids(CHECKOUT, tmp_path, first=10**12)  # past Int32
    assert "AS BIGINT" in build_sql(bind_plan(load_plan(plan)), engine)
    recoded = _report(plan, engine=engine)
    _close(recoded, _report(CHECKOUT) | {"plan_sha256": recoded["plan_sha256"]})


@pytest.mark.parametrize("engine", ["polars", "duckdb", pytest.param("spark", marks=ON_SPARK)])
def test_integer_ids_stored_as_floats_join_integer_ids_on_every_engine(tmp_path, engine):
    """pandas writes an integer column with a missing value as floats: `123.0` joined no `123`
    (text of the float), and every exposed unit looked uncovered (an invalid readout)."""
    plan = integer_ids(CHECKOUT, tmp_path)
    events = tmp_path / "export1.parquet"
    pl.read_parquet(events).with_columns(pl.col("user_id").cast(pl.Float64)).write_parquet(events)
    recoded = _report(plan, engine=engine)
    _close(recoded, _report(CHECKOUT) | {"plan_sha256": recoded["plan_sha256"]})


@pytest.mark.parametrize("engine", ["polars", "duckdb", pytest.param("spark", marks=ON_SPARK)])
def test_integer_ids_written_as_floats_in_a_csv_join_integer_ids_on_every_engine(tmp_path, engine):
    """pandas' to_csv of such a column writes `123.0`: as text, it joined no `123`."""
    plan = integer_ids(CHECKOUT, tmp_path)
    events = pl.read_parquet(tmp_path / "export1.parquet")
    events.with_columns(pl.col("user_id").cast(pl.Float64)).write_csv(tmp_path / "events.csv")
    assert "1.0," in (tmp_path / "events.csv").read_text()[:2000]
    plan.write_text(plan.read_text().replace("export1.parquet", "events.csv"))
    recoded = _report(plan, engine=engine)
    _close(recoded, _report(CHECKOUT) | {"plan_sha256": recoded["plan_sha256"]})


def test_float_ids_are_written_the_same_by_polars_and_the_sql():
    from croctl.io.values import integral_text
    from croctl.pipeline.sqlexpr import col
    from croctl.pipeline.sqlexpr import integral_text as sql_integral_text

    ids = pl.DataFrame({"id": [1.0, -3.0, 2.5, None, 2.0**53, 0.1]})
    polars = ids.select(integral_text(pl.col("id"))).to_series().to_list()
    query = f"SELECT {sql_integral_text(col('id')).sql('duckdb')} FROM ids"
    assert polars == ["1", "-3", "2.5", None, "9007199254740992", "0.1"]
    assert [row[0] for row in duckdb.sql(query).fetchall()] == polars


def _epoch_micros(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("us")


def test_epoch_timestamps_read_the_same_on_every_engine(tmp_path):
    """Times as epoch numbers, as event pipelines often export them: exposures in microseconds
    (Parquet Int64), events in nanoseconds (Parquet) and as fractional seconds (CSV text). Each
    gives the shipped report on every engine."""
    exposures = pl.read_parquet(SAMPLE / "exposures.parquet")
    exposures = exposures.with_columns(_epoch_micros("exposed_at"))
    exposures.write_parquet(tmp_path / "exposures.parquet")
    events = pl.read_parquet(SAMPLE / "events.parquet")
    events.with_columns(_epoch_micros("ts") * 1000).write_parquet(tmp_path / "events.parquet")
    seconds = pl.format(
        "{}.{}",
        _epoch_micros("ts") // 10**6,
        (_epoch_micros("ts") % 10**6).cast(pl.String).str.zfill(6),
    )
    events.with_columns(seconds.alias("ts")).write_csv(tmp_path / "events.csv")
    expected = _report(CHECKOUT)
    for events_file in ("events.parquet", "events.csv"):
        plan = _checkout_over(tmp_path, "exposures.parquet", events_file)
        recoded = _assert_parity(plan, tmp_path)
        _close(recoded, expected | {"plan_sha256": recoded["plan_sha256"]})


@pytest.mark.parametrize("zone", ["UTC", None], ids=["aware", "naive"])
@pytest.mark.parametrize("engine", ["polars", "dense", "duckdb"])
def test_nanosecond_timestamps_are_truncated_to_microseconds_on_every_engine(
    tmp_path, monkeypatch, engine, zone
):
    """pandas writes timestamps in nanoseconds. Each is truncated to its microsecond (DuckDB's
    cast rounds; Polars compared nanoseconds with a window's end in microseconds): a purchase
    300 ns before an exposure 700 ns into its microsecond counts, one 100 ns before the end of
    the day's window does not."""
    from croctl.pipeline import dense

    units = 300
    first = 1_790_000_000 * 10**9 + 700  # 2026-09-21, 700 ns into a microsecond
    start = pl.Series([first + i * 10**9 for i in range(units)]).cast(pl.Datetime("ns", zone))
    ahead = {0: -300, 1: 86_400 * 10**9 - 100, 2: 3_600 * 10**9}  # ns after the exposure
    ts = pl.Series([first + i * 10**9 + ahead[i % 3] for i in range(units)])
    pl.DataFrame(
        {"user_id": range(units), "variant": ["control", "treatment"] * (units // 2)}
    ).with_columns(exposed_at=start).write_parquet(tmp_path / "exposures.parquet")
    pl.DataFrame({"user_id": range(units), "event_name": "purchase"}).with_columns(
        ts=ts.cast(pl.Datetime("ns", zone))
    ).write_parquet(tmp_path / "events.parquet")
    plan = {**BASE_PLAN, "timezone": "UTC"} if zone is None else dict(BASE_PLAN)
    plan["experiment"] = {**plan["experiment"], "start": "2026-09-01T00:00:00Z"}
    plan["exposures"] = {**plan["exposures"], "path": "exposures.parquet"}
    plan["sources"] = {"events": {**plan["sources"]["events"], "path": "events.parquet"}}
    plan["metrics"] = {"conv": {**plan["metrics"]["conv"], "window": "1d"}}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    if engine == "dense":
        monkeypatch.setattr(dense, "MIN_ROWS", 0)
    report = _report(tmp_path / "plan.yaml", engine="duckdb" if engine == "duckdb" else "polars")
    counted = [i % 3 != 1 for i in range(units)]
    for arm, parity in (("control", 0), ("treatment", 1)):
        mine = counted[parity::2]
        expected = sum(mine) / len(mine)
        assert report["metrics"][0]["variants"][arm]["value"] == pytest.approx(expected)


@pytest.mark.parametrize("engine", ["polars", "duckdb", pytest.param("spark", marks=ON_SPARK)])
def test_an_epoch_number_in_another_unit_fails_on_every_engine(engine):
    """Milliseconds, then one value in seconds past the sample: refused, not put in 1970."""
    plan = ROOT / "tests" / "bad_inputs" / "data_mixed_epoch_units_csv.yaml"
    with pytest.raises(DataError, match="1790985830"):
        evaluate(plan, engine=engine)


@pytest.mark.spark
@NEEDS_SPARK
def test_the_spark_engine_turns_ansi_mode_on_in_a_session_that_has_it_off():
    """Without ANSI mode Spark's failing cast gives null, and the row would drop in silence."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[*]").getOrCreate()
    spark.conf.set("spark.sql.ansi.enabled", "false")
    plan = ROOT / "tests" / "bad_inputs" / "data_mixed_epoch_units_csv.yaml"
    with pytest.raises(DataError, match="1790985830"):
        evaluate(plan, engine="spark")
    assert spark.conf.get("spark.sql.ansi.enabled") == "true"


@pytest.mark.parametrize(
    "layout", ["%Y-%m-%d %H:%M:%S%.6f UTC", "%Y-%m-%d %H:%M:%S%.6f +0000"], ids=["bq", "sf"]
)
def test_warehouse_text_timestamps_read_the_same_on_every_engine(tmp_path, layout):
    """CSV exports as BigQuery (`... UTC`) and Snowflake (`... +0000`) write them: a space
    before the zone. Each gives the shipped report on every engine."""
    for name, column in (("exposures", "exposed_at"), ("events", "ts")):
        frame = pl.read_parquet(SAMPLE / f"{name}.parquet")
        frame.with_columns(pl.col(column).dt.strftime(layout)).write_csv(tmp_path / f"{name}.csv")
    recoded = _assert_parity(_checkout_over(tmp_path, "exposures.csv", "events.csv"), tmp_path)
    _close(recoded, _report(CHECKOUT) | {"plan_sha256": recoded["plan_sha256"]})


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.stem)
def test_generated_sql_parses_in_every_dialect(plan, dialect):
    result = runner.invoke(app, ["sql", str(plan), "--dialect", dialect])
    assert result.exit_code == 0, result.stderr
    parsed = sqlglot.parse_one(result.stdout.rstrip().rstrip(";"), read=dialect)
    assert parsed.find(sqlglot.exp.Union) is not None
    if dialect != "duckdb":  # warehouses read tables named after the sources
        assert "read_parquet" not in result.stdout.lower()


def test_sql_table_mapping_and_bad_options():
    plan = str(ROOT / "plans" / "checkout.yaml")
    result = runner.invoke(app, ["sql", plan, "--dialect", "bigquery", "--table", "events=shop.ev"])
    assert result.exit_code == 0 and "shop.ev" in result.stdout
    assert runner.invoke(app, ["sql", plan, "--dialect", "oracle"]).exit_code == 2
    assert runner.invoke(app, ["sql", plan, "--table", "nope=x"]).exit_code == 2


def test_a_stats_table_of_another_plan_is_a_data_error(tmp_path):
    table = _stats_table(ROOT / "plans" / "saas.yaml", tmp_path / "saas.parquet")
    with pytest.raises(DataError, match="columns missing"):
        evaluate(ROOT / "plans" / "checkout.yaml", stats=table)
    result = runner.invoke(
        app,
        ["evaluate", str(ROOT / "plans" / "checkout.yaml"), "--stats", str(tmp_path / "no.csv")],
    )
    assert result.exit_code == 3 and "no such file" in result.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (pl.col("rows").cast(pl.String), "section 'exposures': column 'rows' holds String"),
        (-pl.col("rows"), "section 'exposures': column 'rows' is a count, and holds -"),
        (pl.col("n") / 3, "section 'cells': column 'n' is a count"),
        (pl.col("y0") * float("nan"), "its sums are not finite"),
    ],
)
def test_an_edited_stats_table_is_a_data_error(tmp_path, edit, message):
    """Text or NaN in a count was an internal error (int() of it); negative counts read out."""
    table = _stats_table(CHECKOUT, tmp_path / "stats.parquet")
    pl.read_parquet(table).with_columns(edit).write_parquet(table)
    with pytest.raises(DataError, match=re.escape(message)):
        evaluate(CHECKOUT, stats=table)


@pytest.mark.parametrize("rows", ["repeated", "missing"])
def test_a_stats_table_with_a_row_repeated_or_missing_is_a_data_error(tmp_path, rows):
    """Both read out: a repeated row was ignored, a missing exposures row counted as zeros."""
    table = _stats_table(CHECKOUT, tmp_path / "stats.parquet")
    frame = pl.read_parquet(table)
    exposures = frame.filter(pl.col("section") == "exposures")
    edited = (
        pl.concat([frame, exposures.head(1)])
        if rows == "repeated"
        else frame.filter((pl.col("section") != "exposures") | (pl.col("__variant") != "one_click"))
    )
    edited.write_parquet(table)
    expected = "two rows for the same variant" if rows == "repeated" else "no row for variant"
    with pytest.raises(DataError, match=expected):
        evaluate(CHECKOUT, stats=table)


def test_stats_path_exits_with_the_verdict(tmp_path):
    plan = ROOT / "plans" / "leadgen.yaml"
    table = _stats_table(plan, tmp_path / "stats.csv")
    result = runner.invoke(app, ["evaluate", str(plan), "--stats", str(table), "-f", "json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["verdict"] == "do_not_ship"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--as-of", "2026-10-05"], "--as-of reads the exports"),
        (["--engine", "duckdb"], "--engine duckdb aggregates the exports"),
    ],
)
def test_options_on_the_exports_are_refused_with_a_stats_table(tmp_path, option, message):
    """--as-of was ignored: the readout of every row, as if it were the data as of then."""
    table = _stats_table(CHECKOUT, tmp_path / "stats.parquet")
    result = runner.invoke(app, ["evaluate", str(CHECKOUT), "--stats", str(table), *option])
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.spark
@NEEDS_SPARK
def test_a_file_spark_cannot_read_is_a_data_error_not_an_internal_one(tmp_path):
    """Spark reads no nanosecond times; the read failed outside the query's error handling."""
    events = pl.read_parquet(SAMPLE / "events.parquet")
    events.with_columns(pl.col("ts").dt.cast_time_unit("ns")).write_parquet(tmp_path / "ev.parquet")
    plan = _checkout_over(tmp_path, str(SAMPLE / "exposures.parquet"), "ev.parquet")
    with pytest.raises(DataError, match=r"spark: .*Illegal Parquet type.*NANOS"):
        evaluate(plan, engine="spark")


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=ON_SPARK)])
def test_columns_that_differ_only_in_case_are_refused_where_the_engine_mixes_them(tmp_path, engine):
    """DuckDB matched `"event"` (the plan's value) to `Event` (text): a binder error."""
    events = pl.read_parquet(SAMPLE / "events.parquet")
    events.rename({"event_name": "Event"}).with_columns(event=pl.col("revenue")).write_parquet(
        tmp_path / "ev.parquet"
    )
    plan = _checkout_over(tmp_path, str(SAMPLE / "exposures.parquet"), "ev.parquet")
    text = plan.read_text().replace("event_name", "Event")
    plan.write_text(text.replace("value: revenue", "value: event"))
    with pytest.raises(DataError, match=f"'Event' and 'event' differ only in case, which {engine}"):
        evaluate(plan, engine=engine)
    assert evaluate(plan, engine="polars").verdict  # the Polars engine reads them apart


def test_a_spark_error_is_reported_by_its_root_cause():
    """Through py4j the first line says nothing; the last error class is the cause."""
    message = (
        "An error occurred while calling o48.getResult.\n"
        ": org.apache.spark.SparkException: Exception thrown in awaitResult: \n"
        "\tat org.apache.spark.util.SparkThreadUtils$.awaitResult(SparkThreadUtils.scala:70)\n"
        "Caused by: org.apache.spark.SparkException: [STAGE_MATERIALIZATION_MULTIPLE_FAILURES]"
        " Multiple failures (2) in stage materialization: \n"
        "  1. SparkNumberFormatException: [CAST_INVALID_INPUT] The value '17 is not in the epoch"
        ' unit\' cannot be cast to "BIGINT". SQLSTATE: 22018\n'
        "== SQL (line 53, position 14) ==\n"
    )
    assert spark_reason(message) == (
        "[CAST_INVALID_INPUT] The value '17 is not in the epoch unit' cannot be cast to \"BIGINT\"."
    )
    assert spark_reason("Java gateway process exited\nmore") == "Java gateway process exited"


@pytest.mark.parametrize("plan", [pytest.param(p, marks=ON_SPARK, id=p.stem) for p in PLANS])
def test_spark_local_mode_agrees(plan):
    _close(_report(plan, engine="spark"), _report(plan))


@pytest.mark.parametrize("name", [pytest.param(n, marks=ON_SPARK) for n in [*FIXTURES, "every"]])
def test_spark_local_mode_agrees_on_the_fixtures(name, tmp_path):
    plan = write_every_feature(tmp_path) if name == "every" else FIXTURES[name].write(tmp_path)
    _close(_report(plan, engine="spark"), _report(plan))
