"""The command line: a thin Typer adapter over the library (parse, call, render, exit)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from croctl import __version__
from croctl.analysis.planning import power_to_dict
from croctl.errors import CroctlError, ExitCode, PlanError
from croctl.evaluate import evaluate as evaluate_plan
from croctl.plan import Plan, load_plan
from croctl.plan.fields import Invalid, timestamp, to_utc
from croctl.render import (
    OutputFormat,
    remove_stale_report,
    render_text,
    write_atomic,
    write_table,
)
from croctl.render.power import render_power
from croctl.report import Report
from croctl.schemas import load_schema

app = typer.Typer(
    name="croctl",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Trustworthy A/B test readouts: ship, do not ship, keep waiting, or the data is broken.",
)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    _err.print(f"croctl: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Map every failure to one stderr line and its exit code (SPEC §6); 1 is never used here."""
    try:
        yield
    except typer.Exit:
        raise
    except CroctlError as exc:
        if debug:
            traceback.print_exc()
        kind = "plan error" if isinstance(exc, PlanError) else "data error"
        _fail(f"{kind}: {' '.join(str(exc).split())}", int(exc.exit_code))
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `croctl schema ... | head`: the reader left, nothing went wrong
        _detach_stdout()
        raise typer.Exit(0) from None
    except Exception as exc:  # a bug: never let it look like a verdict
        if debug:
            traceback.print_exc()
        _fail(
            f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            " — please report it; rerun with --debug for the traceback",
            ExitCode.INTERNAL,
        )


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
    with _err.status(f"reading {len(paths)} exports ({size / 1e6:,.0f} MB) and aggregating…"):
        yield


def _detach_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _version(value: bool) -> None:
    if value:
        print(f"croctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Croctl reads a measurement plan and exports and gives a verdict a CI job can gate on."""


PlanArg = Annotated[Path, typer.Argument(help="The measurement plan (YAML).", show_default=False)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]


def _with_as_of(plan: Plan, as_of: str | None) -> Plan:
    if as_of is None:
        return plan
    try:
        moment = to_utc(timestamp(as_of), plan.timezone or "UTC")
    except Invalid as exc:
        raise PlanError(f"--as-of: {exc}", hint=exc.hint) from exc
    return replace(plan, as_of=moment)


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
        bool, typer.Option("--no-segments", help="Skip the segment breakdown.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Read out an experiment: verdict, metrics, trust checks and segments.

    Exit codes: 0 ship, 1 do not ship, 4 inconclusive, 5 invalid (a trust check failed),
    2 plan or usage error, 3 data error, 70 internal error.

    Example:
        croctl evaluate plans/checkout.yaml --format json --output readout.json
    """
    with _errors(debug):
        try:
            plan = _with_as_of(load_plan(plan_path), as_of)
            if output is not None:
                _refuse_output_over_input(output, plan)
            with _progress(plan):
                report = evaluate_plan(plan, segments=not no_segments)
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
        if fmt is OutputFormat.TABLE:
            write_table(report, Console(highlight=False))
        else:
            sys.stdout.write(render_text(report, fmt))
            sys.stdout.flush()
    except BrokenPipeError:  # `croctl evaluate ... | head`: the exit code is still the verdict's
        _detach_stdout()


@app.command()
def validate(plan_path: PlanArg, debug: DebugOpt = False) -> None:
    """Check the plan and that every export exists with the columns and types it needs.

    Reads headers, a few rows and the distinct variant labels; computes nothing heavy.
    Exit 0 valid, 2 plan error, 3 data error.

    Example:
        croctl validate plans/checkout.yaml
    """
    from croctl.pipeline import validate_plan

    with _errors(debug):
        plan = load_plan(plan_path)
        bound = validate_plan(plan)
        files = sum(len(s.files.paths) for s in bound.scans())
        print(
            f"ok: {plan.experiment.name}: {len(plan.metrics)} metrics, "
            f"{len(bound.sources) + 1} exports ({files} files)"
        )


@app.command()
def power(
    plan_path: Annotated[
        Path | None,
        typer.Argument(
            help="A plan whose exports give the baselines (optional).", show_default=False
        ),
    ] = None,
    baseline_rate: Annotated[
        float | None, typer.Option("--baseline-rate", help="Baseline conversion rate, e.g. 0.04.")
    ] = None,
    baseline_mean: Annotated[
        float | None, typer.Option("--baseline-mean", help="Baseline mean of a mean metric.")
    ] = None,
    sd: Annotated[
        float | None,
        typer.Option("--sd", help="Per-unit standard deviation (with --baseline-mean)."),
    ] = None,
    mde: Annotated[
        float | None, typer.Option("--mde", help="Relative effect to detect, e.g. 0.03 for 3 %.")
    ] = None,
    units: Annotated[
        float | None, typer.Option("--units", help="Units available in total (all arms).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Two-sided significance level [plan or 0.05].")
    ] = None,
    target_power: Annotated[
        float | None, typer.Option("--power", help="Power to reach [plan or 0.8].")
    ] = None,
    allocation: Annotated[
        str | None,
        typer.Option(
            "--allocation", help="Shares per arm, control first, e.g. 50,25,25 [equal split]."
        ),
    ] = None,
    arms: Annotated[int, typer.Option("--arms", help="Arms including control.", min=2)] = 2,
    daily_units: Annotated[
        float | None,
        typer.Option("--daily-units", help="New units per day, for the duration [plan: observed]."),
    ] = None,
    primary_only: Annotated[
        bool, typer.Option("--primary-only", help="With a plan: do not power the guardrails.")
    ] = False,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json.")
    ] = OutputFormat.TABLE,
    debug: DebugOpt = False,
) -> None:
    """Sample size, minimum detectable effect or power, and the days it takes.

    Give --mde for the units needed, --units for the MDE, both for the power. The baseline comes
    from --baseline-rate, from --baseline-mean and --sd, or from a plan's exports (control arm;
    alpha, power and allocation from the plan, guardrails powered to clear their margins).

    Examples:
        croctl power --baseline-rate 0.04 --mde 0.05 --daily-units 12000
        croctl power --baseline-mean 52.0 --sd 140 --units 40000
        croctl power plans/checkout.yaml --mde 0.05
    """
    from croctl.power import answer_power

    with _errors(debug):
        answer = answer_power(
            plan_path,
            baseline_rate=baseline_rate,
            baseline_mean=baseline_mean,
            sd=sd,
            mde=mde,
            units=units,
            alpha=alpha,
            power=target_power,
            allocation=allocation,
            arms=arms,
            daily_units=daily_units,
            guardrails=not primary_only,
        )
        if fmt is OutputFormat.JSON:
            print(json.dumps(power_to_dict(answer), indent=2))
        else:
            Console(highlight=False).print(render_power(answer))


@app.command()
def init(
    exports: Annotated[
        list[Path],
        typer.Argument(help="Export files: exposures first or detected.", show_default=False),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the plan here instead of stdout.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Scaffold a starter plan from export files: columns, variants, event names, templates.

    Example:
        croctl init sample_data/leadgen/*.csv -o plans/my-test.yaml
    """
    from croctl.io.sniff import profile_exports
    from croctl.scaffold import scaffold_plan

    with _errors(debug):
        if output is not None and output.exists() and not force:
            raise PlanError(f"--output {output}: already exists", hint="pass --force to overwrite")
        folder = output.parent if output is not None else Path.cwd()
        text = scaffold_plan(profile_exports(exports), folder)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomic(output, text)
            _err.print(f"wrote {output}; next: croctl validate {output}", markup=False)


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="plan or report")],
) -> None:
    """Print the JSON Schema of the plan or of the JSON report.

    Example:
        croctl schema report > report.schema.json
    """
    if kind not in ("plan", "report"):
        _fail(
            f"usage error: unknown schema {kind!r} (hint: use 'plan' or 'report')", ExitCode.USAGE
        )
    print(json.dumps(load_schema(kind), indent=2))


def main() -> None:
    """Console-script entry point."""
    app()
