"""Seeded generator of realistic A/B exports at a chosen size, for the benchmark.

    python bench/generate.py --users 1000000 --events-per-user 15 --format parquet --out bench/data/1m

Writes `exposures.<fmt>` (two arms, device and channel segments, a pre-period covariate) and
`events/part-NNN.<fmt>` (about 92 % page views no metric uses, then add_to_cart, purchase with
revenue, refund, payment_error), in chunks of users so memory stays flat whatever the size, plus
`plan.yaml` reading them. Six shapes:

- `tidy` (the default): integer user and event ids, one exposure row per user, each user's
  events together.
- `numbered`: the same rows, the ids written as text (`user_<n>`, `evt_<n>`).
- `scattered`: the same rows, each part's events in time order (a user's events are scattered
  through the file).
- `realistic`: ids are 32-character hex strings (as UUIDs are), each user is exposed one to
  several times (later rows may come from another device), and each part's events are in time
  order, so a user's events are scattered through the file.
- `uuid`: user ids are UUIDs as text (36 characters with dashes), each part's events in no
  order, and the Parquet files written by pyarrow with its defaults (snappy, row groups of 1 Mi
  rows, a dictionary page that falls back to plain encoding for such ids), as an export from
  another tool might be.
- `uuids`: the uuid shape with the event ids UUIDs as text too.

`--writer polars|pyarrow|duckdb` writes any shape's Parquet files with that tool's defaults
instead (row groups, compression and encodings differ; the rows do not).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 14
CHUNK = 500_000
KINDS = np.array(["page_view", "add_to_cart", "purchase", "refund", "payment_error"])
KIND_P = np.array([0.92, 0.045, 0.02, 0.002, 0.013])

PLAN = """\
# Benchmark plan: every metric role, two segments, every trust check.
version: 1
experiment:
  name: bench
  control: control
  variants: {{control: 0.5, treatment: 0.5}}
  start: 2026-10-01T00:00:00Z
  end: 2026-10-15T00:00:00Z
exposures: {{path: exposures.{ext}, unit: user_id, variant: variant, timestamp: exposed_at}}
sources:
  events: {{path: "events/*.{ext}", unit: user_id, timestamp: ts, id: event_id}}
segments: {{device: device, channel: channel}}
metrics:
  conversion:
    {{role: primary, type: proportion, source: events, filter: "event_name = 'purchase'", window: 7d}}
  revenue_per_user:
    role: quality
    type: mean
    source: events
    filter: "event_name = 'purchase'"
    value: revenue
    covariate: pre_revenue
    cap: 0.999
  average_order_value:
    role: quality
    type: ratio
    numerator: {{source: events, filter: "event_name = 'purchase'", value: revenue}}
    denominator: {{source: events, filter: "event_name = 'purchase'"}}
  refund_rate:
    role: guardrail
    type: ratio
    numerator: {{source: events, filter: "event_name = 'refund'"}}
    denominator: {{source: events, filter: "event_name = 'purchase'"}}
    goal: decrease
    margin: 0.2
  cart_rate: {{role: diagnostic, type: proportion, source: events, filter: "event_name = 'add_to_cart'"}}
  payment_errors:
    {{role: guardrail, type: mean, source: events, filter: "event_name = 'payment_error'", goal: decrease}}
"""


def _write(frame: pl.DataFrame, path: Path, fmt: str, writer: str) -> None:
    """One file, written by `writer` with its defaults (Polars: row groups of 1 M rows)."""
    if fmt == "csv":
        frame.write_csv(path)
    elif writer == "pyarrow":  # snappy, row groups of 1 Mi rows, dictionaries that fall back
        import pyarrow.parquet as pq

        pq.write_table(frame.to_arrow(), path)
    elif writer == "duckdb":  # snappy, row groups of 122,880 rows
        import duckdb

        with duckdb.connect() as con:
            con.register("frame", frame.to_arrow())
            con.execute(f"COPY frame TO '{path}' (FORMAT parquet)")
    else:
        frame.write_parquet(path, row_group_size=1_000_000)


UUID_SHAPES = ("uuid", "uuids")  # UUID user ids, events in no order, written by pyarrow
SHAPES = ("tidy", "numbered", "scattered", "realistic", *UUID_SHAPES)
WRITERS = ("polars", "pyarrow", "duckdb")  # who writes the Parquet files


def default_writer(shape: str) -> str:
    """The UUID shapes are written by pyarrow, the others by Polars."""
    return "pyarrow" if shape in UUID_SHAPES else "polars"


DEVICES, DEVICE_P = ["mobile", "desktop", "tablet"], [0.6, 0.33, 0.07]


def _hex_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """n random 32-character lowercase hex strings."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    return pl.Series(digits[nibbles].view("S32").ravel()).cast(pl.String)


def _uuid_ids(rng: np.random.Generator, n: int) -> pl.Series:
    """n random UUIDs as text: 8-4-4-4-12 lowercase hex digits."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = digits[rng.integers(0, 16, size=(n, 32), dtype=np.uint8)]
    text = np.insert(text, [8, 12, 16, 20], ord("-"), axis=1)
    return pl.Series(np.ascontiguousarray(text).view("S36").ravel()).cast(pl.String)


def _event_ids(rng: np.random.Generator, shape: str, first: int, m: int) -> pl.Series:
    """The next m event ids: numbers from `first`, or random text by shape."""
    if shape == "uuids":
        return _uuid_ids(rng, m)
    if shape == "realistic":
        return _hex_ids(rng, m)
    return pl.Series(np.arange(first, first + m))


def _exposure_rows(rng: np.random.Generator, frame: pl.DataFrame, realistic: bool) -> pl.DataFrame:
    """The realistic shape logs 0-4 more exposures per user, up to 3 days after the first."""
    if not realistic:
        return frame
    repeats = np.minimum(rng.poisson(0.6, frame.height), 4)
    again = frame.select(pl.all().gather(np.repeat(np.arange(frame.height), repeats)))
    later = rng.uniform(1, 3 * 86400, again.height) * 1e6
    again = again.with_columns(
        pl.col("exposed_at") + pl.Series(later.astype(np.int64)).cast(pl.Duration("us")),
        pl.Series("device", rng.choice(DEVICES, again.height, p=DEVICE_P)),
    )
    return pl.concat([frame, again])


def _written(frame: pl.DataFrame, shape: str) -> pl.DataFrame:
    """The numbered shape writes the ids as text with a prefix."""
    if shape != "numbered":
        return frame
    prefixes = {"user_id": "user_", "event_id": "evt_"}
    return frame.with_columns(
        pl.format(f"{prefixes[c]}{{}}", c).alias(c) for c in prefixes if c in frame.columns
    )


def generate(
    users: int,
    events_per_user: float,
    fmt: str,
    out: Path,
    seed: int = 7,
    shape: str = "tidy",
    writer: str | None = None,
) -> int:
    """Write the exports and the plan; returns the number of event rows.

    `writer`: who writes the Parquet files (`WRITERS`; None: the shape's `default_writer`).
    """
    writer = writer or default_writer(shape)
    rng = np.random.default_rng(seed)
    realistic = shape == "realistic"
    (out / "events").mkdir(parents=True, exist_ok=True)
    ext = "parquet" if fmt == "parquet" else "csv"
    exposures, total = [], 0
    for part, first in enumerate(range(0, users, CHUNK)):
        n = min(CHUNK, users - first)
        if shape in UUID_SHAPES:
            ids = _uuid_ids(rng, n)
        else:
            ids = _hex_ids(rng, n) if realistic else pl.Series(np.arange(first, first + n))
        treated = rng.random(n) < 0.5
        start = rng.uniform(0, DAYS * 86400, n)
        first_exposures = pl.DataFrame(
            {
                "user_id": ids,
                "variant": np.where(treated, "treatment", "control"),
                "exposed_at": ((START.timestamp() + start) * 1e6).astype(np.int64),
                "device": rng.choice(DEVICES, n, p=DEVICE_P),
                "channel": rng.choice(["organic", "paid", "email", "direct"], n),
                "pre_revenue": np.round(rng.gamma(0.5, 30, n) * (rng.random(n) < 0.3), 2),
            }
        ).with_columns(pl.col("exposed_at").cast(pl.Datetime("us", "UTC")))
        exposures.append(_exposure_rows(rng, first_exposures, realistic))
        counts = rng.poisson(events_per_user, n)
        owner = np.repeat(np.arange(n), counts)
        m = owner.size
        kind = rng.choice(len(KINDS), m, p=KIND_P)
        # the treatment effect: 5 % of control purchases do not happen (they stay page views)
        kind[(kind == 2) & ~treated[owner] & (rng.random(m) < 0.05)] = 0
        offset = start[owner] + rng.uniform(-86400, 10 * 86400, m)
        revenue = np.where(kind == 2, np.round(rng.lognormal(3.7, 0.8, m), 2), np.nan)
        events = pl.DataFrame(
            {
                "event_id": _event_ids(rng, shape, total, m),
                "user_id": ids.gather(owner),
                "ts": ((START.timestamp() + offset) * 1e6).astype(np.int64),
                "event_name": KINDS[kind],
                "revenue": revenue,
            }
        ).with_columns(
            pl.col("ts").cast(pl.Datetime("us", "UTC")),
            pl.col("revenue").fill_nan(None),
        )
        if shape in ("realistic", "scattered"):
            events = events.sort("ts")
        elif shape in UUID_SHAPES:
            events = events.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(2**32)))
        _write(_written(events, shape), out / "events" / f"part-{part:03d}.{ext}", fmt, writer)
        total += m
    _write(_written(pl.concat(exposures), shape), out / f"exposures.{ext}", fmt, writer)
    (out / "plan.yaml").write_text(PLAN.format(ext=ext))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events-per-user", type=float, default=15.0)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shape", choices=SHAPES, default="tidy")
    parser.add_argument("--writer", choices=WRITERS, help="who writes Parquet (default: by shape)")
    args = parser.parse_args()
    rows = generate(
        args.users, args.events_per_user, args.format, args.out, args.seed, args.shape, args.writer
    )
    print(f"{args.out}: {args.users:,} users, {rows:,} events ({args.format}, {args.shape})")


if __name__ == "__main__":
    main()
