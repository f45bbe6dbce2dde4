"""The bad-input corpus (tests/bad_inputs): every case exits 2 or 3 with one located line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from croctl.cli import app

CORPUS = Path(__file__).parent / "bad_inputs"

# case -> (exit code, text the one-line message must contain)
CASES = {
    "data_empty": (3, "empty.csv: file is empty"),
    "data_header_only": (3, "header_only.csv: has a header but no rows"),
    "data_semicolon": (3, "';'-separated"),
    "data_ragged": (3, "ragged.csv:9: row has 5 fields, header has 4"),
    "data_unterminated_quote": (3, "unterminated_quote.csv"),
    "data_spaced_header": (3, "spaced_header.csv:1: column name ' ts' has spaces around it"),
    "data_quote_in_name": (3, "quote_in_name.csv:1: column name 'event \"name\"' holds a double"),
    "data_duplicate_columns": (3, "duplicate column name(s): event_name"),
    "data_mixed_types": (3, "mixed_types.csv:9: column 'revenue': 'twelve' is not a number"),
    "data_nan_value": (3, "'revenue' has 1 NaN or infinite value(s)"),
    "data_inf_value": (3, "'revenue' has 1 NaN or infinite value(s)"),
    "data_huge_value": (3, "metric 'rev': its sums are not finite"),
    "data_bad_timestamp": (3, "bad_timestamp.csv:9: column 'ts': 'yesterday' is not a timestamp"),
    "data_empty_timestamps": (3, "empty_timestamps.csv: column 'ts' has no timestamps"),
    "data_naive_timestamps": (3, "timestamps without a time zone"),
    "data_epoch_bad_value": (3, "epoch_bad_value.csv:9: column 'ts': 'yesterday' is not a"),
    "data_not_epoch": (3, "'ts' holds numbers ('0', ...) that are not epoch seconds"),
    "data_mixed_epoch_units": (3, "'ts' holds numbers from 1791003600 to 1791003540000: no one"),
    "data_mixed_epoch_units_csv": (
        3,
        "mixed_epoch_units.csv:232: column 'ts': '1790985830' is not in milliseconds since 1970",
    ),
    "data_unknown_variant": (3, "treatmnet (hint: did you mean 'treatment'?)"),
    "data_one_variant": (3, "planned variant(s) with no exposed units: treatment"),
    "data_null_variant": (3, "no variant label"),
    "data_out_of_window": (3, "no exposures inside the experiment window"),
    "data_latin1": (3, "latin1.csv:9: not valid UTF-8"),
    "data_utf16": (3, "utf16.csv: file is UTF-16"),
    "data_truncated_parquet": (3, "truncated.parquet: not a readable Parquet file"),
    "data_not_parquet": (3, "not_parquet.parquet: not a readable Parquet file"),
    "data_no_rows_parquet": (3, "no_rows.parquet: has no rows"),
    "data_missing_file": (3, "nope.csv: file not found"),
    "data_directory": (3, "dir.csv: is a directory"),
    "data_empty_glob": (3, "glob matches no file"),
    "data_fifo": (3, "not a regular file"),
    "data_partition_keys": (3, "partition directories kind=... differ from event_name=... in"),
    "plan_yaml_syntax": (2, "plan_yaml_syntax.yaml:4:"),
    "plan_duplicate_key": (2, "duplicate key 'metrics'"),
    "plan_alias_bomb": (2, "aliases (*name) are not allowed"),
    "plan_unknown_key": (2, "decison: unknown key (hint: did you mean 'decision'?)"),
    "plan_wrong_type": (2, "decision.alpha: must be a number"),
    "plan_out_of_range": (2, "decision.alpha: must be in (0, 0.5)"),
    "plan_undefined_source": (2, "unknown source 'evnts' (hint: did you mean 'events'?)"),
    "plan_undefined_column": (2, "metrics.rev.value: column 'revnue' is not in"),
    "plan_value_timestamp": (2, f"rev.value: column 'ts' of {CORPUS / 'events.csv'} holds times"),
    # the filter on the same column failed first, on every metric: "cannot compare string with f64"
    "plan_value_text": (
        2,
        "rev.value: column 'event_name' of {} holds text such as 'purchase'".format(
            CORPUS / "events.csv"
        ),
    ),
    "plan_filter_subquery": (2, "metrics.conv.filter: filter 'user_id IN (SELECT user_id FROM"),
    "plan_bad_filter": (2, "metrics.rev.filter: cannot parse filter"),
    "plan_filter_types": (2, "metrics.conv.filter: \"event_name = 'purchase' AND ts >= TIMESTAMP"),
    "plan_filter_values": (2, "metrics.conv.filter: 'CAST(event_name AS INTEGER) > 3' cannot run"),
    "plan_two_primaries": (2, "2 metrics have role: primary"),
    "plan_no_primary": (2, "no metric has role: primary"),
    "plan_unknown_role": (2, "did you mean 'primary'?"),
    "plan_negative_margin": (2, "margin: must be above 0"),
    "plan_capped_proportion": (2, "proportion.yaml:5: metrics.conv.cap: cap applies to mean"),
    "plan_ratio_covariate": (2, "covariate.yaml:8: metrics.aov.covariate: covariate applies to"),
    "plan_control_not_variant": (2, "'baseline' is not one of the variants"),
    "plan_empty": (2, "the plan is empty"),
    "plan_version": (2, "plan_version.yaml:1: version: this croctl reads plans of version 1"),
    "plan_not_mapping": (2, "must be a mapping"),
}


def test_every_corpus_plan_has_a_case():
    assert {p.stem for p in CORPUS.glob("*.yaml")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_located_line_and_no_output(case, tmp_path):
    code, expected = CASES[case]
    output = tmp_path / "report.json"
    output.write_text('{"croctl_version": "0.0.1", "verdict": "ship"}')  # an earlier run's
    result = CliRunner().invoke(
        app, ["evaluate", str(CORPUS / f"{case}.yaml"), "--format", "json", "--output", str(output)]
    )
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not output.exists()  # neither a partial nor a stale report survives


def test_a_failed_run_never_deletes_a_file_that_is_not_a_report(tmp_path):
    data = tmp_path / "precious.csv"
    data.write_text("user_id,value\nu1,3\n")
    result = CliRunner().invoke(
        app, ["evaluate", str(CORPUS / "plan_no_primary.yaml"), "--output", str(data)]
    )
    assert result.exit_code == 2
    assert data.read_text() == "user_id,value\nu1,3\n"


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_no_exposure_in_the_window_reads_the_same_on_every_engine(engine):
    """DuckDB's statistics table had an empty `cells` section, reported as a table problem."""
    result = CliRunner().invoke(
        app, ["evaluate", str(CORPUS / "data_out_of_window.yaml"), "--engine", engine]
    )
    assert result.exit_code == 3
    assert "no exposures inside the experiment window" in result.stderr
    assert "--as-of" in result.stderr  # the hint names both ways of narrowing the window


@pytest.mark.parametrize("case", ["data_inf_value", "data_huge_value"])
def test_values_past_floats_read_the_same_on_duckdb(case):
    """DuckDB's statistics held NaN sums, reported as a table edited since it was computed."""
    result = CliRunner().invoke(
        app, ["evaluate", str(CORPUS / f"{case}.yaml"), "--engine", "duckdb"]
    )
    assert result.exit_code == 3
    assert CASES[case][1] in result.stderr
