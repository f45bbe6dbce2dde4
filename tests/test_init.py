"""`croctl init` writes a plan that validates and evaluates; `croctl validate` checks labels."""

from __future__ import annotations

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from croctl.cli import app
from croctl.io.sniff import profile_export
from tests.conftest import ROOT, write_csv

runner = CliRunner()
SAMPLES = ROOT / "sample_data"


@pytest.mark.parametrize(
    ("scenario", "files", "primary_filter"),
    [
        ("checkout", ["events.parquet", "exposures.parquet"], "event_name = 'purchase'"),
        ("leadgen", ["exposures.csv", "events.csv", "crm.csv"], "event_name = 'form_submit'"),
        ("saas", ["exposures.csv.gz", "events.parquet"], "event_name = 'trial_signup'"),
    ],
)
def test_init_scaffolds_a_plan_that_validates_and_evaluates(
    tmp_path, scenario, files, primary_filter
):
    plan = tmp_path / "plans" / "plan.yaml"
    plan.parent.mkdir()
    paths = [str(SAMPLES / scenario / name) for name in files]
    result = runner.invoke(app, ["init", *paths, "--output", str(plan)])
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load(plan.read_text())
    assert document["exposures"]["path"].endswith(files[0] if "exposures" in files[0] else files[1])
    assert document["exposures"]["unit"] == "user_id"
    assert document["experiment"]["control"] == "control"
    (metric,) = document["metrics"].values()
    assert metric["role"] == "primary" and metric["filter"] == primary_filter
    assert "device" in document["segments"]
    assert runner.invoke(app, ["validate", str(plan)]).exit_code == 0
    assert runner.invoke(app, ["evaluate", str(plan), "-f", "json"]).exit_code in (0, 1, 4, 5)


def test_init_lists_event_names_and_writes_to_stdout(tmp_path):
    result = runner.invoke(
        app,
        [
            "init",
            str(SAMPLES / "leadgen" / "events.csv"),
            str(SAMPLES / "leadgen" / "exposures.csv"),
        ],
    )
    assert result.exit_code == 0
    assert "event_name values: page_view" in result.stdout
    assert "form_submit" in result.stdout


def test_init_refuses_to_overwrite_and_reports_bad_files(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("keep me")
    result = runner.invoke(
        app, ["init", str(SAMPLES / "leadgen" / "exposures.csv"), "-o", str(plan)]
    )
    assert result.exit_code == 2 and plan.read_text() == "keep me"
    (tmp_path / "empty.csv").write_text("")
    result = runner.invoke(app, ["init", str(tmp_path / "empty.csv")])
    assert result.exit_code == 3 and "empty" in result.stderr


def test_validate_reads_variant_labels(tmp_path, make_plan):
    write_csv(
        tmp_path / "exposures.csv",
        "user_id,variant,exposed_at",
        ["u1,control,2026-10-02T00:00:00Z"],
    )
    write_csv(
        tmp_path / "events.csv", "user_id,ts,event_name", ["u1,2026-10-03T00:00:00Z,purchase"]
    )
    result = runner.invoke(app, ["validate", str(make_plan())])
    assert result.exit_code == 3 and "never exposed: treatment" in result.stderr


def test_init_takes_epoch_numbers_with_a_time_name_for_timestamps(tmp_path):
    """Epoch microseconds (Parquet) and seconds (CSV) under time-like names are timestamps, in
    UTC (no `timezone:` line); an integer id in the same range is not."""
    sample = SAMPLES / "checkout"
    exposures = pl.read_parquet(sample / "exposures.parquet")
    exposures.with_columns(
        pl.col("exposed_at").dt.epoch("us"), pl.lit(1_790_000_000).alias("account_id")
    ).write_parquet(tmp_path / "exposures.parquet")
    events = pl.read_parquet(sample / "events.parquet")
    events.with_columns(pl.col("ts").dt.epoch("s")).write_csv(tmp_path / "events.csv")
    plan = tmp_path / "plan.yaml"
    files = [str(tmp_path / "exposures.parquet"), str(tmp_path / "events.csv")]
    result = runner.invoke(app, ["init", *files, "--output", str(plan)])
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load(plan.read_text())
    assert document["exposures"]["timestamp"] == "exposed_at"
    assert document["sources"]["events"]["timestamp"] == "ts"
    assert "timezone" not in document
    kinds = profile_export(tmp_path / "exposures.parquet").kinds
    assert kinds["exposed_at"] == "timestamp" and kinds["account_id"] == "integer"
    assert runner.invoke(app, ["evaluate", str(plan), "-f", "json"]).exit_code in (0, 1, 4, 5)


@pytest.mark.parametrize(
    ("value", "naive"),
    [
        ("2026-10-02 00:00:00.123456 UTC", False),  # BigQuery's CSV export
        ("2026-10-02 00:00:00.000 +0000", False),  # Snowflake's
        ("2026-10-02T00:00:00Z", False),
        ("2026-10-02 00:00:00", True),
    ],
)
def test_init_reads_text_timestamps_as_the_readout_does(tmp_path, value, naive):
    write_csv(tmp_path / "e.csv", "user_id,variant,exposed_at", [f"u1,control,{value}"])
    profile = profile_export(tmp_path / "e.csv")
    assert profile.kinds["exposed_at"] == "timestamp"
    assert profile.naive_timestamps is naive


def test_init_reads_title_case_columns_integer_labels_and_quotes_in_names(tmp_path):
    """A BI tool's export: `User ID`, `Test Group` holding 0 and 1, `Event Name` with a value
    holding a quote. The plan named no variant column (`variant`), kept control/treatment as
    labels, and wrote filters that did not parse (`Event Name = 'it's ...'`)."""
    sample = SAMPLES / "checkout"
    exposures = pl.read_parquet(sample / "exposures.parquet").with_columns(
        (pl.col("variant") != "control").cast(pl.Int64)
    )
    exposures.rename({"user_id": "User ID", "variant": "Test Group"}).write_parquet(
        tmp_path / "exposures.parquet"
    )
    events = pl.read_parquet(sample / "events.parquet").with_columns(
        pl.col("event_name").replace("purchase", "it's a purchase")
    )
    events.rename({"user_id": "User ID", "event_name": "Event Name"}).write_parquet(
        tmp_path / "events.parquet"
    )
    plan = tmp_path / "plan.yaml"
    files = [str(tmp_path / "exposures.parquet"), str(tmp_path / "events.parquet")]
    assert runner.invoke(app, ["init", *files, "--output", str(plan)]).exit_code == 0
    document = yaml.safe_load(plan.read_text())
    assert document["exposures"]["variant"] == "Test Group"
    assert document["experiment"]["control"] == "0"
    assert set(document["experiment"]["variants"]) == {"0", "1"}
    (metric,) = document["metrics"].values()
    assert metric["filter"] == "\"Event Name\" = 'it''s a purchase'"
    assert runner.invoke(app, ["evaluate", str(plan), "-f", "json"]).exit_code in (0, 1, 4, 5)


def test_init_takes_no_other_id_column_for_the_event_id(tmp_path):
    """Only `event_id` or `id` is an event id: deduplicating on `session_id` would drop rows."""
    sample = SAMPLES / "checkout"
    events = pl.read_parquet(sample / "events.parquet").drop("event_id")
    events.with_columns(session_id=pl.col("user_id")).write_parquet(tmp_path / "events.parquet")
    files = [str(sample / "exposures.parquet"), str(tmp_path / "events.parquet")]
    result = runner.invoke(app, ["init", *files])
    assert result.exit_code == 0, result.stderr
    assert "id" not in yaml.safe_load(result.stdout)["sources"]["events"]


def test_init_names_pandas_unnamed_index_column_and_its_plan_reads_out(tmp_path):
    """pandas' `to_csv` writes its index first, under an empty name: shown, and harmless."""
    exposures = write_csv(
        tmp_path / "exposures.csv",
        ",user_id,variant,exposed_at",
        [f"{i},u{i},{'control' if i % 2 else 'treatment'},2026-10-02 12:00:00" for i in range(40)],
    )
    events = write_csv(
        tmp_path / "events.csv",
        ",user_id,event_name,ts",
        [f"{i},u{i},{'purchase' if i % 3 else 'page_view'},2026-10-03 08:00:00" for i in range(40)],
    )
    plan = tmp_path / "plan.yaml"
    result = runner.invoke(app, ["init", str(exposures), str(events), "-o", str(plan)])
    assert result.exit_code == 0, result.stderr
    assert "# columns: (unnamed) (integer), user_id (text)" in plan.read_text()
    readout = runner.invoke(app, ["evaluate", str(plan), "--format", "json"])
    assert readout.exit_code in (0, 1, 4), readout.stderr
