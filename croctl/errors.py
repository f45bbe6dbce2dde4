"""The error hierarchy: every user-caused problem, each carrying its exit code (SPEC §6)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; verdict codes come from `Verdict`, never from exceptions."""

    SHIP = 0
    DO_NOT_SHIP = 1
    USAGE = 2
    DATA = 3
    INCONCLUSIVE = 4
    INVALID = 5
    INTERNAL = 70
    INTERRUPTED = 130


class CroctlError(Exception):
    """Base of every error croctl raises for a problem the user can fix."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class PlanError(CroctlError):
    """The plan or the command line is wrong (exit 2)."""

    exit_code = ExitCode.USAGE


class PlanErrors(PlanError):
    """Several plan problems, all reported at once."""

    def __init__(self, problems: Sequence[PlanError]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.message, hint=first.hint)

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class DataError(CroctlError):
    """An input is missing, unreadable or malformed, or an output cannot be written (exit 3)."""

    exit_code = ExitCode.DATA


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a "did you mean 'x'?" hint for the closest choice, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
