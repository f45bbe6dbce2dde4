"""Commands before the readout: power and init."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from croctl.cli.app import DebugOpt, app, err, errors, to_stdout
from croctl.errors import PlanError
from croctl.render import write_atomic


class PowerFormat(StrEnum):
    """Formats of `croctl power --format`: the readout's markdown and html are not offered."""

    TABLE = "table"
    JSON = "json"


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
    arms: Annotated[
        int | None,
        typer.Option("--arms", help="Arms including control [2, or as --allocation lists].", min=2),
    ] = None,
    daily_units: Annotated[
        float | None,
        typer.Option("--daily-units", help="New units per day, for the duration [plan: observed]."),
    ] = None,
    primary_only: Annotated[
        bool, typer.Option("--primary-only", help="With a plan: do not power the guardrails.")
    ] = False,
    fmt: Annotated[
        PowerFormat, typer.Option("--format", "-f", help="A table, or JSON for scripts.")
    ] = PowerFormat.TABLE,
    debug: DebugOpt = False,
) -> None:
    """Sample size, minimum detectable effect or power, and the days it takes.

    Give --mde for the units needed, --units for the MDE, both for the power. The baseline comes
    from --baseline-rate, from --baseline-mean and --sd, or from a plan's exports (control arm;
    alpha, power and allocation from the plan, guardrails powered to clear their margins).

    Examples:
    ```
    croctl power --baseline-rate 0.04 --mde 0.05 --daily-units 12000
    croctl power --baseline-mean 52.0 --sd 140 --units 40000
    croctl power plans/checkout.yaml --mde 0.05
    ```
    """
    from croctl.analysis.planning import power_to_dict
    from croctl.power import answer_power
    from croctl.render.power import render_power

    with errors(debug):
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
        with to_stdout():
            if fmt is PowerFormat.JSON:
                print(json.dumps(power_to_dict(answer), indent=2, allow_nan=False))
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
    ```
    croctl init sample_data/leadgen/*.csv -o plans/my-test.yaml
    ```
    """
    from croctl.io.sniff import profile_exports
    from croctl.scaffold import scaffold_plan

    with errors(debug):
        if output is not None and output.exists() and not force:
            raise PlanError(f"--output {output}: already exists", hint="pass --force to overwrite")
        folder = output.parent if output is not None else Path.cwd()
        text = scaffold_plan(profile_exports(exports), folder)
        if output is None:
            with to_stdout():
                sys.stdout.write(text)
        else:
            write_atomic(output, text)
            err.print(f"wrote {output}; next: croctl validate {output}", markup=False)
