"""Benchmark `croctl evaluate` against a hand-written DuckDB query and a plain scan, same run.

    python bench/run.py --users 1000000 3000000 10000000 --format parquet

For each size: generate the exports once (bench/data/, seeded), then time each contender in its
own process; wall time on Python's monotonic clock, peak resident memory from `/usr/bin/time -v`:

    croctl          croctl evaluate plan.yaml --format json (all metrics, segments, checks)
    croctl-duckdb   the same with --engine duckdb (the plan's generated SQL)
    duckdb          bench/baselines.py duckdb: the same statistics, written by hand
    scan            bench/baselines.py scan: read the needed columns, nothing else (the floor)

Each contender runs `--repeat` times (default 3), the rounds interleaved; the median wall time
(with the fastest and slowest round, so a disturbed run shows) and the highest peak are reported,
with ratios between contenders of this run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from generate import (  # bench/ is on sys.path when run as a script
    SHAPES,
    WRITERS,
    default_writer,
    generate,
)

HERE = Path(__file__).resolve().parent
CROCTL = Path(sys.executable).with_name("croctl")


@dataclass
class Timing:
    name: str
    seconds: float
    peak_mib: float
    spread: tuple[float, float] = (0.0, 0.0)  # fastest and slowest round


def _timed(name: str, command: list[str]) -> Timing:
    # `time -v` times with the system clock, which can be stepped (on this VM a run was reported
    # as 40 minutes while `date` moved under 30 s); the monotonic clock cannot be.
    start = time.monotonic()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - start
    verdicts = (0, 1, 4, 5) if name.startswith("croctl") else (0,)  # croctl's exit is a verdict
    if result.returncode not in verdicts:
        raise SystemExit(f"{name} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    assert peak, result.stderr
    return Timing(name, seconds, int(peak.group(1)) / 1024)


def _data(
    users: int, events_per_user: float, fmt: str, shape: str, writer: str | None
) -> tuple[Path, int]:
    suffix = "" if shape == "tidy" else f"-{shape}"
    if fmt == "parquet" and writer not in (None, default_writer(shape)):
        suffix += f"-{writer}"
    folder = HERE / "data" / f"{users}x{events_per_user:g}-{fmt}{suffix}"
    marker = folder / "rows.txt"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        marker.parent.mkdir(parents=True, exist_ok=True)
        rows = generate(users, events_per_user, fmt, folder, shape=shape, writer=writer)
        marker.write_text(str(rows))
    return folder, int(marker.read_text())


def _median(runs: list[Timing]) -> Timing:
    """Median wall time (the VM's timings vary by ±20 % run to run), highest peak memory."""
    seconds = [t.seconds for t in runs]
    spread = (min(seconds), max(seconds))
    return Timing(runs[0].name, statistics.median(seconds), max(t.peak_mib for t in runs), spread)


def run(
    users: int,
    events_per_user: float,
    fmt: str,
    engines: list[str],
    repeat: int,
    shape: str,
    writer: str | None = None,
) -> list[Timing]:
    folder, rows = _data(users, events_per_user, fmt, shape, writer)
    plan = str(folder / "plan.yaml")
    python = sys.executable
    commands = {
        "croctl": [str(CROCTL), "evaluate", plan, "-f", "json", "-o", str(folder / "report.json")],
        "croctl-duckdb": [str(CROCTL), "evaluate", plan, "-f", "json", "--engine", "duckdb",
                          "-o", str(folder / "report-duckdb.json")],
        "duckdb": [python, str(HERE / "baselines.py"), "duckdb", str(folder)],
        "scan": [python, str(HERE / "baselines.py"), "scan", str(folder)],
    }  # fmt: skip
    # rounds interleave the contenders, so a slow spell of the machine hits them alike
    rounds = [[_timed(name, commands[name]) for name in engines] for _ in range(repeat)]
    timings = [_median([r[i] for r in rounds]) for i in range(len(engines))]
    written = f", written by {writer}" if fmt == "parquet" and writer else ""
    print(f"\n{users:,} users, {rows:,} events ({fmt}, {shape}{written}), median of {repeat}")
    by_name = {t.name: t for t in timings}
    for t in timings:
        ratios = "  ".join(
            f"{t.seconds / by_name[base].seconds:.2f}× {base}"
            for base in ("duckdb", "scan")
            if base in by_name and base != t.name
        )
        print(
            f"  {t.name:<14} {t.seconds:7.1f} s ({t.spread[0]:.1f}–{t.spread[1]:.1f})  "
            f"{rows / t.seconds / 1e6:6.1f} M events/s  "
            f"peak {t.peak_mib:7.0f} MiB  {ratios}"
        )
    if {"croctl", "duckdb"} <= set(engines):
        _check_agreement(folder)
    return timings


def _check_agreement(folder: Path) -> None:
    """The hand-written query must compute what croctl computes, or the ratio means nothing.

    Compared: units and conversion per arm, and the capped revenue difference before CUPED
    (croctl's per-arm revenue values are CUPED-adjusted; the baseline's are plain means).
    """
    from baselines import ARMS_FILE  # bench/ is on sys.path when run as a script

    arms = json.loads((folder / ARMS_FILE).read_text())
    metrics = {m["name"]: m for m in json.loads((folder / "report.json").read_text())["metrics"]}
    conversion, revenue = metrics["conversion"], metrics["revenue_per_user"]
    pairs = [("revenue difference", _unadjusted_difference(revenue, arms))]
    for arm, values in arms.items():
        pairs.append((f"{arm} units", (values["units"], conversion["variants"][arm]["units"])))
        pairs.append(
            (f"{arm} conversion", (values["conversion"], conversion["variants"][arm]["value"]))
        )
    for what, (baseline, croctl) in pairs:
        if abs(baseline - croctl) > 1e-9 * max(1.0, abs(croctl)):
            raise SystemExit(
                f"{folder.name}: {what}: DuckDB baseline {baseline} != croctl {croctl}"
            )
    print("  (the DuckDB baseline and croctl agree on units, conversion and capped revenue)")


def _unadjusted_difference(metric: dict, arms: dict) -> tuple[float, float]:
    comparison = metric["comparisons"][0]
    control = next(arm for arm in arms if arm != comparison["variant"])
    baseline = arms[comparison["variant"]]["revenue_per_user"] - arms[control]["revenue_per_user"]
    return baseline, comparison["unadjusted"]["absolute"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--events-per-user", type=float, default=15.0)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument(
        "--engines", nargs="+", default=["croctl", "croctl-duckdb", "duckdb", "scan"]
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--shape", choices=SHAPES, default="tidy")
    parser.add_argument("--writer", choices=WRITERS, help="who writes Parquet (default: by shape)")
    args = parser.parse_args()
    for users in args.users:
        run(
            users,
            args.events_per_user,
            args.format,
            args.engines,
            args.repeat,
            args.shape,
            args.writer,
        )


if __name__ == "__main__":
    main()
