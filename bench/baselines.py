"""The two baselines the benchmark compares croctl with, each run in its own process.

    python bench/baselines.py duckdb DIR   # a hand-written DuckDB query: same statistics
    python bench/baselines.py scan DIR     # read the columns the plan needs, nothing else

The DuckDB query is what an analyst would write by hand: first in-window exposure per user,
the event types a metric reads (page views dropped before anything else, as croctl does),
deduplicated by id, a left join, per-user sums with FILTER clauses, then per-(variant, segment)
sums, squares and cross-products of the same metrics croctl computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import polars as pl

EXPOSURE_COLUMNS = ["user_id", "variant", "exposed_at", "device", "channel", "pre_revenue"]
EVENT_COLUMNS = ["event_id", "user_id", "ts", "event_name", "revenue"]
ARMS_FILE = "duckdb-arms.json"  # per-arm figures that run.py compares with croctl's report

DUCKDB_SQL = """
WITH exposures AS (
    SELECT user_id, variant, exposed_at, device, channel, pre_revenue,
           count(DISTINCT variant) OVER (PARTITION BY user_id) AS n_variants,
           row_number() OVER (PARTITION BY user_id ORDER BY exposed_at) AS rn
    FROM {exposures}
    WHERE exposed_at >= TIMESTAMPTZ '2026-10-01 00:00:00+00' AND exposed_at < TIMESTAMPTZ '2026-10-15 00:00:00+00'
), units AS (
    SELECT * FROM exposures WHERE rn = 1 AND n_variants = 1
), events AS (
    SELECT DISTINCT ON (event_id) event_id, user_id, ts, event_name, revenue FROM {events}
    WHERE event_name IN ('purchase', 'refund', 'add_to_cart', 'payment_error')
), per_user AS (
    SELECT u.user_id, u.variant, u.device, u.channel, coalesce(u.pre_revenue, 0) AS x,
        count(e.user_id) FILTER (e.event_name = 'purchase' AND e.ts >= u.exposed_at
                                 AND e.ts < u.exposed_at + INTERVAL 7 DAY) AS conv,
        coalesce(sum(e.revenue) FILTER (e.event_name = 'purchase' AND e.ts >= u.exposed_at), 0) AS revenue,
        count(e.user_id) FILTER (e.event_name = 'purchase' AND e.ts >= u.exposed_at) AS purchases,
        count(e.user_id) FILTER (e.event_name = 'refund' AND e.ts >= u.exposed_at) AS refunds,
        count(e.user_id) FILTER (e.event_name = 'add_to_cart' AND e.ts >= u.exposed_at) AS carts,
        count(e.user_id) FILTER (e.event_name = 'payment_error' AND e.ts >= u.exposed_at) AS errors
    FROM units u LEFT JOIN events e ON e.user_id = u.user_id
    GROUP BY ALL
), capped AS (
    SELECT *, least(revenue, (SELECT quantile_cont(revenue, 0.999) FROM per_user)) AS revenue_capped
    FROM per_user
)
SELECT variant, device, channel, count(*) AS n,
    sum((conv > 0)::INT) AS conv,
    sum(revenue_capped) AS rev, sum(revenue_capped ^ 2) AS rev2, sum(x) AS x, sum(x ^ 2) AS x2,
    sum(x * revenue_capped) AS xrev, sum(revenue) AS rev_raw, sum(revenue ^ 2) AS rev_raw2,
    sum(purchases) AS purchases, sum(purchases ^ 2) AS purchases2, sum(revenue * purchases) AS rev_purch,
    sum(refunds) AS refunds, sum(refunds ^ 2) AS refunds2, sum(refunds * purchases) AS ref_purch,
    sum((carts > 0)::INT) AS carts, sum(errors) AS errors, sum(errors ^ 2) AS errors2
FROM capped GROUP BY ALL
"""


def _relation(folder: Path, name: str) -> str:
    parquet = sorted(folder.glob(f"{name}*.parquet")) or sorted((folder / name).glob("*.parquet"))
    if parquet:
        return "read_parquet([" + ", ".join(f"'{p}'" for p in parquet) + "])"
    csv = sorted(folder.glob(f"{name}*.csv")) or sorted((folder / name).glob("*.csv"))
    return "read_csv([" + ", ".join(f"'{p}'" for p in csv) + "])"


def run_duckdb(folder: Path) -> int:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        sql = DUCKDB_SQL.format(
            exposures=_relation(folder, "exposures"), events=_relation(folder, "events")
        )
        cells = con.sql(sql).pl()
    _write_arms(cells, folder / ARMS_FILE)
    return cells.height


def _write_arms(cells: pl.DataFrame, path: Path) -> None:
    """Per-arm units and two metric means, for run.py to compare with croctl's report."""
    arms = cells.group_by("variant").agg(
        pl.col("n").sum().cast(pl.Int64).alias("units"),
        (pl.col("conv").sum().cast(pl.Float64) / pl.col("n").sum()).alias("conversion"),
        (pl.col("rev").sum() / pl.col("n").sum()).alias("revenue_per_user"),
    )
    path.write_text(json.dumps({row.pop("variant"): row for row in arms.to_dicts()}))


def run_scan(folder: Path) -> int:
    frames = []
    for name, columns in (("exposures", EXPOSURE_COLUMNS), ("events", EVENT_COLUMNS)):
        parquet = sorted(folder.glob(f"{name}*.parquet")) + sorted(
            (folder / name).glob("*.parquet")
        )
        csv = sorted(folder.glob(f"{name}*.csv")) + sorted((folder / name).glob("*.csv"))
        scan = pl.scan_parquet(parquet) if parquet else pl.scan_csv(csv)
        schema = scan.collect_schema()
        frames.append(scan.select([_touch(c, schema[c]).alias(f"{name}.{c}") for c in columns]))
    results = pl.collect_all(frames, engine="streaming")
    return sum(int(v or 0) for frame in results for v in frame.row(0))


def _touch(name: str, dtype: pl.DataType) -> pl.Expr:
    """An aggregate that must decode every value (null counts come from Parquet metadata)."""
    if dtype == pl.String:
        return pl.col(name).str.len_bytes().sum()
    if dtype.is_float():
        return pl.col(name).fill_nan(0).sum()
    return pl.col(name).cast(pl.Int64).sum()


if __name__ == "__main__":
    kind, folder = sys.argv[1], Path(sys.argv[2])
    print({"duckdb": run_duckdb, "scan": run_scan}[kind](folder))
