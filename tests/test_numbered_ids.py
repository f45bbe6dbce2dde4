"""Numbered text ids keyed by their numbers (`numbered_ids`): the same report as the text.

Each readout is held to the Polars query with the ids as text (`integer_keyed` off) and to the
DuckDB engine, which reads the ids as text.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from croctl.pipeline import bind_plan, collect, numbered_ids
from croctl.pipeline.numbered_ids import Numbering, integer_keyed, numbering_of
from croctl.pipeline.numbered_kernel import mark_numbered, numbers
from croctl.plan import load_plan
from tests.test_dense import _edge_export, _on_both
from tests.test_engines import _report
from tests.test_golden import _close


@pytest.mark.parametrize(
    ("sample", "numbering"),
    [
        (["1", "22", "-5", "0"], Numbering()),
        (["user_1", "user_22", "user_0"], Numbering("user_")),
        (["u001", "u120", "u999"], Numbering("u", 3)),
        (["000017", "123456"], Numbering("", 6)),
        (["order-7", "order-70"], Numbering("order-")),
        (["u1", "v2"], None),  # two prefixes
        (["u01", "u123"], None),  # a leading zero, and two widths
        (["8dc4db7e942a05441e92", "b6058184b36c4bb6db86"], None),  # hex: no common prefix
        (["alice", "bob"], None),
        ([], None),
    ],
)
def test_a_sample_tells_how_ids_are_numbered(sample, numbering):
    assert numbering_of(pl.Series(sample, dtype=pl.String)) == numbering


def _written(numbering: Numbering, number: int) -> str:
    digits = str(number) if numbering.width is None else str(number).zfill(numbering.width)
    return numbering.prefix + digits


def _numbers(
    numbering: Numbering, texts: list[str | None], compiled: bool = False
) -> list[int | None]:
    frame = pl.LazyFrame({"id": pl.Series(texts, dtype=pl.String)})
    return numbering.numbered(frame, "id", compiled).collect().get_column("id").to_list()


# Polars' conversion, and the compiled loop's (`numbered_kernel.numbers`)
both_ways = pytest.mark.parametrize("compiled", [False, True], ids=["polars", "compiled"])


@both_ways
@settings(deadline=None)  # the first example may compile the loop
@given(st.integers(-(2**63), 2**63 - 1))
def test_canonical_integer_text_converts_exactly(compiled, value):
    converted = _numbers(Numbering(), [str(value)], compiled)[0]
    assert converted == value


@both_ways
@pytest.mark.parametrize(
    "text", ["007", "+7", "-0", "00", "-007", "7.0", " 7", "1e3", "9223372036854775808"]
)
def test_other_integer_text_fails_the_conversion(compiled, text):
    with pytest.raises(pl.exceptions.PolarsError):
        _numbers(Numbering(), ["5", text], compiled)


numberings = st.builds(
    Numbering, st.sampled_from(["", "u", "user_", "ü-"]), st.none() | st.integers(1, 8)
)


@both_ways
@settings(deadline=None)  # the first example may compile the loop
@given(numberings, st.lists(st.integers(0, 10**8 - 1)))
def test_numbered_text_gives_its_number(compiled, numbering, numbers):
    if numbering.width is not None:
        numbers = [n % 10**numbering.width for n in numbers]
    texts = [_written(numbering, n) for n in numbers]
    assert _numbers(numbering, [*texts, None], compiled) == [*numbers, None]


@both_ways
@settings(deadline=None)  # the first example may compile the loop
@given(numberings, st.integers(0, 10**6), st.sampled_from(["0", "+", "-", "x", "00", " "]))
def test_text_written_otherwise_fails(compiled, numbering, number, extra):
    """A leading zero or sign, another width or prefix: never the number of another id."""
    number %= 10 ** (numbering.width or 7)
    text = _written(numbering, number)
    others = [
        numbering.prefix + extra + text[len(numbering.prefix) :],  # inserted after the prefix
        extra + text,  # before the prefix
    ]
    if numbering.width is not None:
        others.append(text[:-1])  # a digit short
    for other in others:
        if numbering.width is None and extra == "-" and other.startswith(numbering.prefix + "-"):
            continue  # a negative number, written canonically
        with pytest.raises(pl.exceptions.PolarsError):
            _numbers(numbering, [other], compiled)


@pytest.mark.parametrize(
    "unit_id",
    [lambda i: f"user_{i}", lambda i: f"u{i:04d}"],
    ids=["prefixed", "zero-padded"],
)
def test_numbered_ids_give_the_text_report_on_every_path(tmp_path, monkeypatch, unit_id):
    """Null ids, ids outside the exposures' range, repeated event ids `e<n>`, a window, a cap."""
    plan = _edge_export(tmp_path, lambda i: f"e{i}", unit_id=(unit_id, pl.String()))
    assert integer_keyed(bind_plan(load_plan(plan))).unit_dtype == pl.String  # a small Parquet
    monkeypatch.setattr(numbered_ids, "MIN_ROWS", 0)  # as if it were large
    keyed = integer_keyed(bind_plan(load_plan(plan)))
    assert keyed is not None and keyed.unit_dtype == pl.Int64
    assert keyed.sources["events"].scan.raw.collect_schema()["event_id"] == pl.Int64
    report = _on_both(plan, monkeypatch)  # the hash query and the dense arrays
    monkeypatch.setattr(collect, "integer_keyed", lambda bound: None)
    _close(report, _report(plan))
    _close(report, _report(plan, engine="duckdb"))


@pytest.mark.parametrize("column", ["user_id", "event_id"])
def test_an_id_written_otherwise_after_the_sample_keeps_the_text_report(
    tmp_path, monkeypatch, column
):
    """`user_007` or `e01000` late in the file: a unit or an event of its own, as in the text."""
    monkeypatch.setattr(numbered_ids, "MIN_ROWS", 0)
    ids = [f"user_{i}" for i in range(1, 301)]
    exposures = pl.DataFrame(
        {
            "user_id": [*ids, "user_007"] if column == "user_id" else ids,
            "variant": (["control", "treatment"] * len(ids))[: len(ids) + (column == "user_id")],
            "exposed_at": "2026-10-02T00:00:00Z",
        }
    )
    exposures.write_parquet(tmp_path / "exposures.parquet")
    late = ["user_007", "user_7", "user_7"] if column == "user_id" else ["user_7"] * 3
    event_ids = [f"e{i}" for i in range(len(ids))]
    event_ids += ["e1000", "e01000", "e01000"] if column == "event_id" else ["x1", "x2", "x3"]
    pl.DataFrame(
        {
            "user_id": [*ids, *late],
            "event_id": event_ids,
            "ts": "2026-10-03T00:00:00Z",
            "event_name": "purchase",
        }
    ).write_parquet(tmp_path / "events.parquet")
    plan = tmp_path / "plan.yaml"
    plan.write_text(_PLAN)
    report = _report(plan)
    _close(report, _report(plan, engine="duckdb"))
    monkeypatch.setattr(collect, "integer_keyed", lambda bound: None)
    _close(report, _report(plan))


def test_text_ids_do_not_join_integer_ones_by_number(tmp_path):
    """`u7` is no unit of an export storing 7: the unit ids stay text."""
    plan = _edge_export(tmp_path, int, unit_id=(lambda i: f"u{i}", pl.String()))
    events = pl.read_parquet(tmp_path / "events.parquet")
    events.with_columns(pl.col("user_id").str.strip_prefix("u").cast(pl.Int64)).write_parquet(
        tmp_path / "events.parquet"
    )
    keyed = integer_keyed(bind_plan(load_plan(plan)))
    assert keyed is None or keyed.unit_dtype == pl.String


_PLAN = """
version: 1
experiment:
  name: late ids
  control: control
  variants: {control: 0.5, treatment: 0.5}
  start: 2026-10-01T00:00:00Z
  end: 2026-10-15T00:00:00Z
exposures: {path: exposures.parquet, unit: user_id, variant: variant, timestamp: exposed_at}
sources:
  events: {path: events.parquet, unit: user_id, timestamp: ts, id: event_id}
metrics:
  purchases: {role: primary, type: mean, source: events, filter: "event_name = 'purchase'"}
"""


def _reference(numbering: Numbering, text: str | None) -> int | None:
    """The number a text writes, by Python's own reading."""
    if text is None or not text.startswith(numbering.prefix):
        return None
    digits = text[len(numbering.prefix) :]
    if numbering.width is not None:
        return int(digits) if re.fullmatch(f"[0-9]{{{numbering.width}}}", digits) else None
    if not re.fullmatch(r"0|-?[1-9][0-9]*", digits) or not -(2**63) <= int(digits) < 2**63:
        return None
    return int(digits)


def _texts(numbering: Numbering) -> st.SearchStrategy[str | None]:
    small = st.integers(-5, 400).map(lambda n: _written(numbering, n))
    large = st.integers(-(2**64), 2**64).map(lambda n: _written(numbering, n))
    other = st.sampled_from(["0", "+", "-", "00", "x", "-0"]).map(
        lambda extra: numbering.prefix + extra + "12"
    )
    return st.none() | small | large | other | st.text(max_size=30)


@settings(deadline=None)  # the first example compiles the loop
@given(st.data(), st.sampled_from(["", "u", "customer-account-"]), st.none() | st.integers(1, 4))
def test_the_compiled_reading_marks_the_numbers_the_conversion_reads(data, prefix, width):
    """Short ids lie in their views, long ones (past 12 bytes) in data buffers; nulls; runs of
    one id; a slice. Marked for coverage, and converted strictly."""
    numbering = Numbering(prefix, width)
    drawn = data.draw(st.lists(st.tuples(_texts(numbering), st.integers(1, 3)), max_size=40))
    texts = [text for text, times in drawn for _ in range(times)]  # runs: parsed once each
    start = data.draw(st.integers(0, len(texts)))
    parts = [pl.Series(texts[:start], dtype=pl.String), pl.Series(texts[start:], dtype=pl.String)]
    ids = pl.concat(parts, rechunk=False).slice(1)  # two chunks, an offset
    expected = [_reference(numbering, t) for t in ids.to_list()]
    for text, number in zip(ids.to_list(), expected, strict=True):  # as the conversion reads
        if number is not None:
            assert _numbers(numbering, [text]) == [number]
    seen = np.zeros(300, np.bool_)
    mark_numbered(seen, ids, numbering, lo=-5)
    assert set(np.flatnonzero(seen) - 5) == {n for n in expected if n is not None and -5 <= n < 295}
    numbered = [t is None or n is not None for t, n in zip(ids.to_list(), expected, strict=True)]
    if all(numbered):  # the strict conversion: every number, or an error
        assert numbers(ids, numbering).to_list() == expected
    else:
        with pytest.raises(pl.exceptions.ComputeError):
            numbers(ids, numbering)


def test_the_compiled_reading_shares_long_series_among_threads():
    """Runs of one id (parsed once) cross the pieces the threads take; the first id written
    otherwise is the one named, whichever piece finds it first."""
    values = [*np.repeat(np.arange(0, 30_000, 3), 7).tolist(), *[30_001] * 5000]  # many pieces
    texts = pl.Series("id", [f"u{n}" for n in values])
    seen = np.zeros(40_000, np.bool_)
    mark_numbered(seen, texts, Numbering("u"), lo=0)
    assert set(np.flatnonzero(seen)) == {*range(0, 30_000, 3), 30_001}
    assert numbers(texts, Numbering("u")).to_list() == values
    written_otherwise = texts.scatter([40_000, 70_000], ["u040", "u070"])
    with pytest.raises(pl.exceptions.ComputeError, match="'u040'"):
        numbers(written_otherwise, Numbering("u"))


@pytest.mark.parametrize("lo", [2**63 - 10, -(2**63)], ids=["top", "bottom"])
def test_the_compiled_reading_knows_the_ends_of_int64(lo):
    numbers = [lo + k for k in range(10)]
    texts = [f"u{n}" for n in numbers] + ["u9223372036854775808", "u-9223372036854775809"]
    seen = np.zeros(10, np.bool_)
    mark_numbered(seen, pl.Series(texts), Numbering("u"), lo)
    assert seen.all()  # the last and first Int64 included; the two past them skipped
