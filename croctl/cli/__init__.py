"""The command line: a thin Typer adapter over the library (parse, call, render, exit)."""

import os

# Before NumPy and SciPy load: their OpenBLAS worker threads spin beside the engine's (1.6 % of
# the CPU samples of a 1 M-user readout), and the statistics' matrices are tiny. Set for the
# command's own process only; a library caller keeps its own setting.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# isort: split
# Importing the command modules registers their commands, in this order in `--help`.
from croctl.cli import readout  # noqa: F401

# isort: split
from croctl.cli import planning  # noqa: F401
from croctl.cli.app import app, main

__all__ = ["app", "main"]
