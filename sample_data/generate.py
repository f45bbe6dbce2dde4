"""Generate the sample exports of the three reference scenarios (seeded, reproducible).

    python sample_data/generate.py            # rewrites sample_data/{checkout,leadgen,saas}/

Each scenario is shaped like a real export: repeat exposures, events before exposure, a few units
exposed to two variants, segment columns, a pre-period covariate, and mostly page views.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 14


def _exposures(rng: np.random.Generator, n: int, arms: list[str], prefix: str) -> pl.DataFrame:
    """One or more exposure rows per user; ~0.3 % of users also see a second arm."""
    users = np.array([f"{prefix}{i:06d}" for i in range(n)])
    arm = rng.choice(arms, size=n)
    seconds = rng.uniform(0, DAYS * 86400, size=n)
    device = rng.choice(["mobile", "desktop", "tablet"], size=n, p=[0.55, 0.38, 0.07])
    channel = rng.choice(["organic", "paid", "email", "direct"], size=n, p=[0.4, 0.3, 0.1, 0.2])
    first = pl.DataFrame(
        {"user_id": users, "variant": arm, "offset": seconds, "device": device, "channel": channel}
    )
    repeats = first.sample(fraction=0.35, seed=int(rng.integers(1 << 30)))
    repeats = repeats.with_columns(pl.col("offset") + rng.uniform(60, 3 * 86400, repeats.height))
    crossed = first.sample(fraction=0.003, seed=int(rng.integers(1 << 30))).with_columns(
        pl.col("variant").map_elements(
            lambda v: arms[(arms.index(v) + 1) % len(arms)], return_dtype=pl.String
        ),
        pl.col("offset") + 3600.0,
    )
    early = first.sample(n=40, seed=int(rng.integers(1 << 30))).with_columns(
        pl.col("offset") - 20 * 86400.0, pl.col("user_id") + "x"
    )  # before the test window
    rows = pl.concat([first, repeats, crossed, early])
    return rows.with_columns(
        (pl.lit(START) + pl.duration(seconds=pl.col("offset"))).alias("exposed_at")
    ).sort("exposed_at")


def _first_exposure(exposures: pl.DataFrame) -> pl.DataFrame:
    return exposures.group_by("user_id").agg(pl.all().sort_by("exposed_at").first()).sort("user_id")


def _events(
    rng: np.random.Generator,
    users: pl.DataFrame,
    name: str,
    prob: np.ndarray,
    delay_days: float,
    value: np.ndarray | None = None,
) -> pl.DataFrame:
    """At most one `name` event per user with probability `prob`, `delay_days` after exposure."""
    hit = rng.random(users.height) < prob
    chosen = users.filter(pl.Series(hit))
    delay = rng.exponential(delay_days * 86400, chosen.height)
    frame = chosen.select(
        "user_id", (pl.col("exposed_at") + pl.duration(seconds=pl.Series(delay))).alias("ts")
    ).with_columns(pl.lit(name).alias("event_name"))
    if value is not None:
        frame = frame.with_columns(pl.Series("revenue", value[hit]))
    return frame


def _page_views(rng: np.random.Generator, users: pl.DataFrame, mean: float) -> pl.DataFrame:
    counts = rng.poisson(mean, users.height)
    repeated = users.select("user_id", "exposed_at").select(
        pl.all().repeat_by(pl.Series(counts)).explode()
    )
    offsets = rng.uniform(-2 * 86400, 10 * 86400, repeated.height)  # some before exposure
    return repeated.select(
        "user_id",
        (pl.col("exposed_at") + pl.duration(seconds=pl.Series(offsets))).alias("ts"),
        pl.lit("page_view").alias("event_name"),
    )


def _lift(users: pl.DataFrame, base: float, lifts: dict[str, float]) -> np.ndarray:
    return np.array([base * (1 + lifts.get(v, 0.0)) for v in users["variant"]])


def _then(
    rng: np.random.Generator, done: pl.DataFrame, name: str, prob: np.ndarray, delay_days: float
) -> pl.DataFrame:
    """The next funnel event for users who did `done` (anchored on its timestamp)."""
    return _events(rng, done.rename({"ts": "exposed_at"}), name, prob, delay_days)


def checkout(rng: np.random.Generator) -> None:
    """3 arms: one_click lifts conversion safely; express_pay lifts it but doubles refunds.

    Funnel add_to_cart → begin_checkout → purchase: one_click helps the last step, mostly on
    mobile; returning customers (pre_revenue > 0) convert more and spend more (CUPED helps).
    """
    out = HERE / "checkout"
    out.mkdir(exist_ok=True)
    exposures = _exposures(rng, 45_000, ["control", "one_click", "express_pay"], "c")
    pre_revenue = np.round(
        rng.gamma(0.6, 40, exposures.height) * (rng.random(exposures.height) < 0.3), 2
    )
    exposures = exposures.with_columns(pl.Series("pre_revenue", pre_revenue))
    users = _first_exposure(exposures)
    returning = np.where(users["pre_revenue"].to_numpy() > 0, 1.5, 0.8)
    cart_p = _lift(users, 0.24, {"one_click": 0.04, "express_pay": 0.04}) * returning
    carts = _events(rng, users, "add_to_cart", cart_p, 0.5).join(
        users.select("user_id", "variant", "device"), on="user_id"
    )
    starts = _then(rng, carts, "begin_checkout", np.full(carts.height, 0.62), 0.3).join(
        users.select("user_id", "variant", "device", "pre_revenue"), on="user_id"
    )
    mobile_boost = np.where(starts["device"].to_numpy() == "mobile", 0.30, 0.03)
    pay_p = 0.68 * np.array(
        [
            1 + (boost if v == "one_click" else 0.10 if v == "express_pay" else 0.0)
            for v, boost in zip(starts["variant"], mobile_boost, strict=True)
        ]
    )
    purchases = _then(rng, starts, "purchase", pay_p.clip(0, 1), 0.5)
    spend = purchases.join(starts.select("user_id", "pre_revenue"), on="user_id")["pre_revenue"]
    revenue = np.round(rng.lognormal(3.8, 0.6, purchases.height) + 0.8 * spend.to_numpy(), 2)
    purchases = purchases.with_columns(pl.Series("revenue", revenue))
    buyers = users.join(purchases.select("user_id", pl.col("ts").alias("bought")), on="user_id")
    refund_p = _lift(buyers, 0.05, {"express_pay": 1.0})
    refunds = _events(
        rng, buyers.with_columns(pl.col("bought").alias("exposed_at")), "refund", refund_p, 3
    )
    errors = _events(rng, users, "payment_error", _lift(users, 0.03, {"one_click": -0.2}), 1)
    events = pl.concat(
        [
            _page_views(rng, users, 4),
            carts.select("user_id", "ts", "event_name"),
            starts.select("user_id", "ts", "event_name"),
            purchases,
            refunds,
            errors,
        ],
        how="diagonal",
    ).sort("ts")
    events = events.with_row_index("event_id").with_columns(pl.format("e{}", "event_id"))
    exposures.select(
        "user_id", "variant", "exposed_at", "device", "channel", "pre_revenue"
    ).write_parquet(out / "exposures.parquet")
    events.select("event_id", "user_id", "ts", "event_name", "revenue").write_parquet(
        out / "events.parquet"
    )


def leadgen(rng: np.random.Generator) -> None:
    """A shorter form raises submissions, but sales accept fewer leads and spam rises."""
    out = HERE / "leadgen"
    out.mkdir(exist_ok=True)
    exposures = _exposures(rng, 16_000, ["control", "short_form"], "l")
    users = _first_exposure(exposures)
    submits = _events(rng, users, "form_submit", _lift(users, 0.12, {"short_form": 0.15}), 0.5)
    events = pl.concat([_page_views(rng, users, 2), submits]).sort("ts")
    leads = users.join(submits.select("user_id"), on="user_id")
    short = (leads["variant"] == "short_form").to_numpy()
    spam = rng.random(leads.height) < np.where(short, 0.14, 0.06)
    accepted = ~spam & (rng.random(leads.height) < np.where(short, 0.42, 0.55))
    status = np.where(spam, "spam", np.where(accepted, "accepted", "rejected"))
    value = np.where(accepted, np.round(rng.lognormal(7.5, 0.8, leads.height), 0), 0.0)
    crm = pl.DataFrame(
        {"user_id": leads["user_id"], "lead_status": status, "pipeline_value": value}
    )
    _write_csv(
        exposures.select("user_id", "variant", "exposed_at", "device", "channel"),
        out / "exposures.csv",
    )
    _write_csv(events, out / "events.csv")
    _write_csv(crm.sort("user_id"), out / "crm.csv")


def saas(rng: np.random.Generator) -> None:
    """A guided tour with a small, not yet significant, lift: keep waiting."""
    out = HERE / "saas"
    out.mkdir(exist_ok=True)
    exposures = _exposures(rng, 12_000, ["control", "guided_tour"], "s")
    users = _first_exposure(exposures)
    signups = _events(rng, users, "trial_signup", _lift(users, 0.20, {"guided_tour": 0.01}), 0.3)
    signed = users.join(signups.select("user_id", pl.col("ts").alias("signed")), on="user_id")
    activated = _events(
        rng,
        signed.with_columns(pl.col("signed").alias("exposed_at")),
        "activated",
        _lift(signed, 0.45, {"guided_tour": 0.05}),
        5,
    )
    unsub = _events(rng, users, "unsubscribe", _lift(users, 0.02, {}), 4)
    tickets = _events(rng, users, "support_ticket", _lift(users, 0.03, {"guided_tour": -0.05}), 3)
    events = pl.concat([_page_views(rng, users, 3), signups, activated, unsub, tickets]).sort("ts")
    _write_csv(
        exposures.select("user_id", "variant", "exposed_at", "device", "channel"),
        out / "exposures.csv.gz",
        gzip=True,
    )
    events.write_parquet(out / "events.parquet")


def _write_csv(frame: pl.DataFrame, path: Path, gzip: bool = False) -> None:
    frame = frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if gzip:
        import gzip as gz

        path.write_bytes(gz.compress(frame.write_csv().encode(), mtime=0))
    else:
        frame.write_csv(path)


def main() -> None:
    """Write every scenario."""
    for seed, scenario in enumerate((checkout, leadgen, saas), start=20261001):
        scenario(np.random.default_rng(seed))


if __name__ == "__main__":
    main()
