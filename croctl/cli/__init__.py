"""The command line: a thin Typer adapter over the library (parse, call, render, exit)."""

import os

# Before NumPy and SciPy load: their OpenBLAS worker threads spin beside the engine's (1.6 % of
# the CPU samples of a 1 M-user readout), and the statistics' matrices are tiny. Set for the
# command's own process only; a library caller keeps its own setting.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Before Polars loads: its allocator hands memory freed for 0.5 s (dirty) or 1 s (muzzy) back to
# the system, and a readout of a few seconds faults it straight back in (a 1 M-user CSV readout:
# ~1.5 s of system time). Kept 2 s, a third fewer faults, ~5 % off the wall time; peak memory
# +0.1 GiB at 10 M users. Polars appends this to its own setting, so it wins; a caller's wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:2000,muzzy_decay_ms:2000")

# isort: split
# Importing the command modules registers their commands, in this order in `--help`.
from croctl.cli import readout  # noqa: F401

# isort: split
from croctl.cli import planning  # noqa: F401
from croctl.cli.app import app, main

__all__ = ["app", "main"]
