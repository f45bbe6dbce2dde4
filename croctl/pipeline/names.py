"""Column names shared by the Polars query, the SQL query and the statistics table."""

from __future__ import annotations

UNIT, VARIANT, START = "__unit", "__variant", "__start"
N_VARIANTS = "__n_variants"  # SQL: how many variants a unit saw
MISSING_SEGMENT = "(missing)"
MULTIPLE = "__multiple"  # a unit was exposed to more than one variant
FIRST_OF_ID = "__first_of_id"  # a source row is the first with its event id
EVENT_KEY = "__event_key"  # a source row's event id, as an integer key
CANDIDATE = "__candidate"  # a unit's own key when a capped value of it may pass the cap, else null


def seg_col(i: int) -> str:
    """Column of the i-th segment dimension in the unit table."""
    return f"__seg{i}"


def word_col(j: int) -> str:
    """Column of the j-th word of segment codes, two to a word (`keys.segment_words`)."""
    return f"__word{j}"


def check_col(source: str, count: str) -> str:
    """Per-unit column of a source's trust-check count (`rows`, `pre_exposure`, ...)."""
    return f"__{source}:{count}"


def metric_col(kind: str, i: int) -> str:
    """Per-unit column of metric i: y (value), d (denominator), x (covariate), r (uncapped)."""
    return f"{kind}{i}"


# Sums kept per metric: (name, left column kind, right column kind or None for a plain sum).
MOMENTS = (
    ("y", "y", None),
    ("yy", "y", "y"),
    ("d", "d", None),
    ("dd", "d", "d"),
    ("yd", "y", "d"),
    ("x", "x", None),
    ("xx", "x", "x"),
    ("xy", "x", "y"),
    ("r", "r", None),
    ("rr", "r", "r"),
)
