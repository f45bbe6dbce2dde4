"""Typed field readers for plan validation that collect every problem with its dotted path."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from croctl.errors import PlanError, did_you_mean
from croctl.plan.yaml_loader import LineDict

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class Invalid(ValueError):
    """A field's value is wrong; the message says why and may carry a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


_MISSING: Any = object()


class Fields:
    """Reads the keys of one plan mapping, recording problems instead of stopping at the first."""

    def __init__(self, data: Any, key_path: str, errors: list[PlanError], file: Path) -> None:
        self.key_path = key_path
        self.errors = errors
        self.file = file
        self.ok = isinstance(data, dict)
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self._seen: set[str] = set()
        if not self.ok and data is not None:
            self.error(f"must be a mapping (got {_kind(data)})")

    def child_path(self, key: str) -> str:
        """Dotted path of a key below this mapping."""
        return f"{self.key_path}.{key}" if self.key_path else key

    def line_of(self, key: str | None = None) -> int | None:
        """Line number of `key` (or of this mapping) in the plan file, when known."""
        if isinstance(self.data, LineDict):
            return self.data.lines.get(key) if key else getattr(self.data, "line", None)
        return None

    def error(self, message: str, key: str | None = None, hint: str | None = None) -> None:
        """Record a problem at `key` (or at this mapping)."""
        where = self.child_path(key) if key else (self.key_path or "plan")
        line = self.line_of(key)
        location = f"{self.file.name}:{line}" if line else self.file.name
        self.errors.append(PlanError(f"{location}: {where}: {message}", hint=hint))

    def get(self, key: str, parse: Callable[[Any], T], default: T | Any = _MISSING) -> T | None:
        """Parse `key` with `parse`; record a problem and return None when missing or invalid."""
        self._seen.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                if self.ok:
                    self.error("is required", key)
                return None
            return default
        try:
            return parse(self.data[key])
        except Invalid as exc:
            self.error(str(exc), key, exc.hint)
            return None

    def sub(self, key: str, required: bool = True) -> Fields:
        """Fields of a nested mapping."""
        self._seen.add(key)
        value = self.data.get(key)
        if value is None and required and self.ok:
            self.error("is required", key)
        return Fields(value, self.child_path(key), self.errors, self.file)

    def finish(self, allowed: set[str] | None = None) -> None:
        """Report keys that no reader asked for, with a "did you mean"."""
        known = self._seen if allowed is None else allowed
        for key in self.data:
            if key not in known:
                self.error("unknown key", key, did_you_mean(key, known) or _list(known))


_KINDS: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _list(names: set[str]) -> str:
    return "allowed keys: " + ", ".join(sorted(names))


def text(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be non-empty text (got {value!r})")
    return value


def label(value: Any) -> str:
    """A variant label: text, or an integer read as its text (labels stored as 0 and 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value)


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Callable[[Any], float]:
    """A float within bounds; booleans and strings are refused."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"must be a number (got {value!r})")
        number = float(value)
        too_low = low is not None and (number <= low if open_low else number < low)
        too_high = high is not None and (number >= high if open_high else number > high)
        if math.isnan(number) or too_low or too_high:
            raise Invalid(f"must be {_bounds(low, high, open_low, open_high)} (got {number})")
        return number

    return parse


def _bounds(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if high is None:
        return f"above {low}" if open_low else f"at least {low}"
    if low is None:
        return f"below {high}" if open_high else f"at most {high}"
    return f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"


def integer(low: int) -> Callable[[Any], int]:
    """An integer at least `low`."""

    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise Invalid(f"must be a whole number ≥ {low} (got {value!r})")
        return value

    return parse


def choice(enum: type[E]) -> Callable[[Any], E]:
    """A member of a closed vocabulary."""

    def parse(value: Any) -> E:
        try:
            return enum(value)
        except ValueError:
            options = [m.value for m in enum]
            hint = did_you_mean(str(value), options) or "one of: " + ", ".join(options)
            raise Invalid(f"unknown value {value!r}", hint) from None

    return parse


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: Any) -> timedelta:
    """A positive duration such as `7d`, `12h`, `30m`, `2w`."""
    match = _DURATION.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise Invalid(f"must be a positive duration like 7d, 12h or 30m (got {value!r})")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def timestamp(value: Any) -> datetime:
    """An ISO 8601 timestamp; naive values are resolved later against the plan's timezone."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            f"must be an ISO 8601 timestamp (got {value!r})", "e.g. 2026-10-01T00:00:00Z"
        ) from None


def to_utc(moment: datetime, timezone: str | None) -> datetime | None:
    """Express a plan timestamp in UTC; None when it is naive and no timezone is given.

    A local time that a daylight-saving change repeats or skips has two readings (Python's
    `fold`); the later instant is taken, as the exports' local times are read (methods.md).
    """
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    if timezone is None:
        return None
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    return max(moment.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))


def relative_path(base: Path) -> Callable[[Any], Path]:
    """A path (or glob) relative to the plan's folder."""

    def parse(value: Any) -> Path:
        return base / text(value)

    return parse
