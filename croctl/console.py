"""The `croctl` console script and `python -m croctl`: the command line, imported under a guard.

Importing the command line loads Polars, SciPy and numba (~0.4 s). A Ctrl-C in that time would
print the import's traceback; it gets the one line and exit code any interrupted command gets.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from croctl.errors import ExitCode


def main() -> NoReturn:
    """Import the command line, then run it (`croctl.cli.main` exits the process)."""
    try:
        from croctl.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("croctl: interrupted\n")
        sys.stderr.flush()
        os._exit(ExitCode.INTERRUPTED)
    run()
