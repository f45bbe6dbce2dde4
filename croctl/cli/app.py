"""The Typer app, and the one place that maps errors to stderr lines and exit codes."""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from croctl import __version__
from croctl.errors import CroctlError, DataError, ExitCode, PlanError

app = typer.Typer(
    name="croctl",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="Trustworthy A/B test readouts: ship, do not ship, keep waiting, or the data is broken.",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    err.print(f"croctl: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def errors(debug: bool) -> Iterator[None]:
    """Map every failure to one stderr line and its exit code (SPEC §6); 1 is never used here."""
    try:
        yield
    except typer.Exit:
        raise
    except CroctlError as exc:
        if debug:
            traceback.print_exc()
        kind = "plan error" if isinstance(exc, PlanError) else "data error"
        fail(f"{kind}: {' '.join(str(exc).split())}", int(exc.exit_code))
    except KeyboardInterrupt:
        fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `croctl schema ... | head`: the reader left, nothing went wrong
        detach_stdout()
        raise typer.Exit(0) from None
    except BaseException as exc:  # a bug: never let it look like a verdict
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        # A panic in Polars' Rust code (`PanicException`) derives from BaseException, not
        # Exception: left to Python, it would print a traceback and exit 1, a "do not ship".
        if debug:
            traceback.print_exc()
        fail(
            f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            " — please report it; rerun with --debug for the traceback",
            ExitCode.INTERNAL,
        )


@contextmanager
def to_stdout() -> Iterator[None]:
    """Write to stdout within; flushed at the end, a failed write is a data error (exit 3).

    Redirected to a file, stdout is written when its buffer is flushed: on a full disk that
    failed at the command's last flush, where it was lost (exit 0, no report), or in the
    readout's own flush, where it looked like a bug (exit 70). A reader that left (`| head`:
    `BrokenPipeError`) is the caller's to handle.
    """
    if sys.stdout is None:  # `croctl … >&-`: Python gives no stream at all
        raise DataError("stdout: cannot write (it is closed)", hint="redirect it to a file")
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        detach_stdout()  # the unwritten rest must not fail again at exit
        raise DataError(
            f"stdout: cannot write ({exc.strerror})",
            hint="check the disk or the file stdout is redirected to",
        ) from exc


def detach_stdout() -> None:
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


# click's base error, which Typer (vendoring click) exports only as the base of `BadParameter`
_CLICK_ERROR: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"
)


def _usage_error(exc: Exception) -> int:
    """One line for a usage error (a missing argument, an unknown option or choice)."""
    if type(exc).__name__ != "NoArgsIsHelpError":  # `croctl` alone: the help is printed
        ctx = getattr(exc, "ctx", None)
        hint = f" (hint: {ctx.command_path} --help)" if ctx is not None else ""
        message = " ".join(getattr(exc, "format_message", exc.__str__)().split())
        err.print(f"croctl: usage error: {message}{hint}", markup=False)
    return int(getattr(exc, "exit_code", ExitCode.USAGE))


def main() -> NoReturn:
    """Console-script entry point: run the command, flush its output, and leave at once.

    Python's own teardown frees every module's objects one by one: ~0.4 s after a readout that
    loaded numba and SciPy, in a process with nothing left to release (report files are
    written and renamed before the command returns; the Spark gateway exits with its parent).

    Python's full collections are put off past the command's end: each walks every object the
    imported libraries made (0.03-0.12 s, two a readout) and, in a readout, found nearly
    nothing (1,256 cyclic objects collected without them against 1,284 with); the young ones
    still collect the young cycles.
    """
    first, second, _ = gc.get_threshold()
    gc.set_threshold(first, second, 1000)
    try:
        code: object = app(standalone_mode=False)  # usage errors come here, not to Typer's box
    except SystemExit as done:
        code = done.code
    except _CLICK_ERROR as exc:
        code = _usage_error(exc)
    if code is not None and not isinstance(code, int):
        err.print(code, markup=False)  # what `sys.exit("message")` would have printed
        code = 1
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None: the descriptor was closed before the start (`>&-`)
            with suppress(OSError, ValueError):  # a reader that left, or a closed stream
                stream.flush()
    os._exit(code or 0)
