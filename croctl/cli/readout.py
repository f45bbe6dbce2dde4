"""Commands that read out a plan: evaluate, validate, sql, schema."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from croctl.cli.app import DebugOpt, PlanArg, app, detach_stdout, err, errors, fail, to_stdout
from croctl.errors import CroctlError, ExitCode, PlanError
from croctl.evaluate import evaluate as evaluate_plan
from croctl.pipeline import Engine
from croctl.plan import Plan, load_plan
from croctl.plan.fields import Invalid, timestamp, to_utc
from croctl.render import (
    OutputFormat,
    remove_stale_report,
    render_text,
    write_atomic,
    write_table,
)
from croctl.report import Report
from croctl.schemas import load_schema


@contextmanager
def _progress(plan: Plan) -> Iterator[None]:
    """A spinner with elapsed time on stderr while the exports load; only on a terminal.

    The aggregation is one streaming query, so there is no honest percentage to show: the
    spinner names what is read and how much.
    """
    if not sys.stderr.isatty():
        yield
        return
    paths = [plan.exposures.path, *(s.path for s in plan.sources.values())]
    size = sum(p.stat().st_size for p in paths if p.is_file())
    with err.status(f"reading {len(paths)} exports ({size / 1e6:,.0f} MB) and aggregating…"):
        yield


def _with_as_of(plan: Plan, as_of: str | None) -> Plan:
    if as_of is None:
        return plan
    try:
        moment = to_utc(timestamp(as_of), plan.timezone or "UTC")
    except Invalid as exc:
        raise PlanError(f"--as-of: {exc}", hint=exc.hint) from exc
    return replace(plan, as_of=moment)


def _refuse_with_stats(stats: Path | None, *, as_of: str | None, engine: Engine) -> None:
    """Options that act on the exports mean nothing when a statistics table stands for them."""
    if stats is None:
        return
    if as_of is not None:  # the table was computed over every row: a readout would ignore it
        raise PlanError(
            "--as-of reads the exports as of a time, and --stats does not read them",
            hint="compute the table on the data up to that time, or drop --as-of",
        )
    if engine is not Engine.POLARS:
        raise PlanError(
            f"--engine {engine.value} aggregates the exports, and --stats does not read them",
            hint="drop --engine, or --stats",
        )


def _refuse_output_over_input(output: Path, plan: Plan) -> None:
    inputs = {plan.path, plan.exposures.path, *(s.path for s in plan.sources.values())}
    if output.absolute().resolve() in {p.resolve() for p in inputs}:
        raise PlanError(
            f"--output {output}: would overwrite an input file", hint="choose another output path"
        )


@app.command()
def evaluate(
    plan_path: PlanArg,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file (atomically)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Read the data as of this ISO 8601 time: later exposures and rows are ignored.",
        ),
    ] = None,
    no_segments: Annotated[
        bool,
        typer.Option(
            "--no-segments", help="Skip the segment breakdown and per-segment SRM checks."
        ),
    ] = False,
    engine: Annotated[
        Engine, typer.Option("--engine", help="Where to aggregate the exports.")
    ] = Engine.POLARS,
    stats: Annotated[
        Path | None,
        typer.Option(
            "--stats",
            help="Finish from the statistics table `croctl sql` computes (CSV/Parquet); "
            "the exports are not read.",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Read out an experiment: verdict, metrics, trust checks and segments.

    Exit codes: 0 ship, 1 do not ship, 4 inconclusive, 5 invalid (a trust check failed),
    2 plan or usage error, 3 data error, 70 internal error.

    Example:
    ```
    croctl evaluate plans/checkout.yaml --format json --output readout.json
    ```
    """
    with errors(debug):
        try:
            _refuse_with_stats(stats, as_of=as_of, engine=engine)
            plan = _with_as_of(load_plan(plan_path), as_of)
            if output is not None:
                _refuse_output_over_input(output, plan)
            with _progress(plan):
                report = evaluate_plan(plan, segments=not no_segments, engine=engine, stats=stats)
            _emit(report, fmt, output)
        except CroctlError:
            if output is not None:
                remove_stale_report(output)
            raise
    raise typer.Exit(report.exit_code)


def _emit(report: Report, fmt: OutputFormat, output: Path | None) -> None:
    if output is not None:
        write_atomic(output, render_text(report, fmt))
        return
    try:
        with to_stdout():
            if fmt is OutputFormat.TABLE:
                write_table(report, Console(highlight=False))
            else:
                sys.stdout.write(render_text(report, fmt))
    except BrokenPipeError:  # `croctl evaluate ... | head`: the exit code is still the verdict's
        detach_stdout()


@app.command()
def validate(plan_path: PlanArg, debug: DebugOpt = False) -> None:
    """Check the plan and that every export exists with the columns and types it needs.

    Reads headers, a few rows and the distinct variant labels; computes nothing heavy.
    Exit 0 valid, 2 plan error, 3 data error.

    Example:
    ```
    croctl validate plans/checkout.yaml
    ```
    """
    from croctl.pipeline import validate_plan

    with errors(debug):
        plan = load_plan(plan_path)
        bound = validate_plan(plan)
        files = sum(len(s.files.paths) for s in bound.scans())
        with to_stdout():
            print(
                f"ok: {plan.experiment.name}: {len(plan.metrics)} metrics, "
                f"{len(bound.sources) + 1} exports ({files} files)"
            )


@app.command()
def sql(
    plan_path: PlanArg,
    dialect: Annotated[
        str, typer.Option("--dialect", help="duckdb, spark, bigquery, snowflake or postgres.")
    ] = "duckdb",
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="Read a source from this table: NAME=IDENT, e.g. events=analytics.events "
            "(default: a table named after the source; duckdb reads the plan's files).",
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the SQL that computes the plan's statistics table where the data lives.

    Run it on the engine, save the result as CSV or Parquet, then finish the readout with
    `croctl evaluate PLAN --stats FILE`.

    Example:
    ```
    croctl sql plans/checkout.yaml --dialect bigquery --table events=shop.events
    ```
    """
    from croctl.pipeline import bind_plan
    from croctl.pipeline.sql import build_sql

    with errors(debug):
        plan = load_plan(plan_path)
        tables = _table_map(table or [], plan)
        files = dialect == "duckdb" and not tables
        text = build_sql(bind_plan(plan), dialect, tables, files=files)
        with to_stdout():
            sys.stdout.write(text)


def _table_map(items: list[str], plan: Plan) -> dict[str, str]:
    known = ["exposures", *plan.sources]
    mapping = {}
    for item in items:
        name, _, ident = item.partition("=")
        if not ident or name not in known:
            raise PlanError(
                f"--table {item!r}: expected NAME=IDENT with NAME one of {', '.join(known)}",
                hint="e.g. --table events=analytics.events",
            )
        mapping[name] = ident
    return mapping


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="plan or report")],
) -> None:
    """Print the JSON Schema of the plan or of the JSON report.

    Example:
    ```
    croctl schema report > report.schema.json
    ```
    """
    if kind not in ("plan", "report"):
        fail(f"usage error: unknown schema {kind!r} (hint: use 'plan' or 'report')", ExitCode.USAGE)
    with errors(debug=False), to_stdout():
        print(json.dumps(load_schema(kind), indent=2))
