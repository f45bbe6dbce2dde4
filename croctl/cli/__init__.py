"""The command line: a thin Typer adapter over the library (parse, call, render, exit)."""

# Importing the command modules registers their commands, in this order in `--help`.
from croctl.cli import readout  # noqa: F401

# isort: split
from croctl.cli import planning  # noqa: F401
from croctl.cli.app import app, main

__all__ = ["app", "main"]
