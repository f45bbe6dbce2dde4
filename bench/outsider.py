"""An export as another tool might write it, for checking croctl on files its generator did not write.

    python bench/outsider.py USERS EVENTS DIR     # e.g. 10000000 150000000 /tmp/outsider

Built as someone writing their own generator from the issue's description might build it,
not from croctl's generator: one exposure row per user; events in **one** Parquet file written
by pyarrow in chunks of 5 M rows (snappy, row groups of 1 Mi rows), each event's user drawn at
random (a user's events are scattered through the file and their number varies), each chunk in
time order, sequential event ids, revenue on purchases.
Column names are the benchmark's, so `baselines.py` and `run.py`'s agreement check apply; the
plan is the benchmark's (`generate.PLAN`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from generate import PLAN  # bench/ is on sys.path when run as a script

DAY = 86_400 * 10**6  # microseconds
NAMES = np.array(["page_view", "add_to_cart", "purchase", "payment_error", "refund"])
SHARES = [0.92, 0.045, 0.02, 0.013, 0.002]
CHUNK = 5_000_000


def write(users: int, events: int, out: Path, seed: int = 2026) -> None:
    """Exposures, events and the plan under `out`."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-10-01T00:00:00", "us").astype(np.int64)
    (out / "events").mkdir(parents=True, exist_ok=True)
    exposures = {
        "user_id": np.arange(users, dtype=np.int64),
        "variant": np.where(rng.random(users) < 0.5, "control", "treatment"),
        "exposed_at": pa.array(start + rng.integers(0, 14 * DAY, users), pa.timestamp("us", "UTC")),
        "device": rng.choice(["mobile", "desktop", "tablet"], users, p=[0.6, 0.3, 0.1]),
        "channel": rng.choice(["paid", "organic", "email", "social"], users),
        "pre_revenue": np.where(rng.random(users) < 0.1, rng.lognormal(3, 1, users), 0.0),
    }
    pq.write_table(pa.table(exposures), out / "exposures.parquet")
    writer = None
    for first in range(0, events, CHUNK):
        rows = min(CHUNK, events - first)
        name = NAMES[rng.choice(len(NAMES), rows, p=SHARES)]
        revenue = np.where(name == "purchase", np.round(rng.lognormal(3.5, 0.8, rows), 2), np.nan)
        chunk = pa.table({
            "event_id": np.arange(first, first + rows, dtype=np.int64),
            "user_id": rng.integers(0, users, rows),
            "ts": pa.array(np.sort(start + rng.integers(0, 21 * DAY, rows)), pa.timestamp("us", "UTC")),
            "event_name": name,
            "revenue": pa.array(revenue, from_pandas=True),  # NaN: null
        })  # fmt: skip
        writer = writer or pq.ParquetWriter(out / "events" / "events.parquet", chunk.schema)
        writer.write_table(chunk)
    if writer is not None:
        writer.close()
    (out / "plan.yaml").write_text(PLAN.format(ext="parquet"))


if __name__ == "__main__":
    write(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
