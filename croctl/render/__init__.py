"""Renderers of a Report: Rich table, JSON, Markdown, HTML; and atomic writing of the result."""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from enum import StrEnum
from pathlib import Path

from rich.console import Console

from croctl.errors import DataError
from croctl.render.html import render_html
from croctl.render.markdown import render_markdown
from croctl.render.table import render_table, write_table
from croctl.report import Report

__all__ = [
    "OutputFormat",
    "remove_stale_report",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
    "render_text",
    "write_atomic",
    "write_table",
]


class OutputFormat(StrEnum):
    """Formats of `croctl evaluate --format`."""

    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


def render_json(report: Report) -> str:
    """The JSON report (SPEC §8): indented, NaN/inf already turned into null."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_text(report: Report, fmt: OutputFormat, width: int = 120) -> str:
    """The report as text in `fmt`; tables are rendered without colour at `width`."""
    if fmt is OutputFormat.JSON:
        return render_json(report)
    if fmt is OutputFormat.MARKDOWN:
        return render_markdown(report)
    if fmt is OutputFormat.HTML:
        return render_html(report)
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        no_color=True,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
    )
    write_table(report, console)
    return buffer.getvalue()


MARKER = b"croctl"  # every rendered format names croctl (JSON key, Markdown and table footer)


def remove_stale_report(path: Path) -> None:
    """After a failed run, delete an earlier croctl report at `path`.

    It could otherwise pass for this run's. Any other file (an input named by mistake) is kept,
    and so is anything not a regular file (reading a pipe would wait for a writer).
    """
    if _kind(path) != "file":
        return
    real = Path(os.path.realpath(path))  # the report, not a link to it
    try:
        with real.open("rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return
    if MARKER in head:
        real.unlink(missing_ok=True)


def _kind(path: Path) -> str:
    """What `path` names, through links: "missing", "file", "folder" or "other".

    Other: a device or a pipe (`/dev/null`, `/dev/stdout`, a shell's process substitution).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    return "folder" if stat.S_ISDIR(mode) else "other"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename: all or nothing.

    A link to a file keeps its link: the file it names is replaced. A device or a pipe is written
    through: renamed over, `/dev/null` became a regular file (as root, CI's usual user).

    Raises:
        DataError: the folder does not exist or is not writable.
    """
    kind = _kind(path)
    if kind == "other":
        _write_through(path, text)
        return
    if kind == "file":
        path = Path(os.path.realpath(path))
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot write ({exc.strerror})",
            hint="check that the folder exists and is writable",
        ) from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it private; a report is not secret
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise DataError(
            f"{path}: cannot write ({exc.strerror})",
            hint="check the path and free disk space",
        ) from exc


def _write_through(path: Path, text: str) -> None:
    try:
        with path.open("w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror})", hint="check the path") from exc
