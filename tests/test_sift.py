"""A CSV's unused lines dropped before Polars reads it (`sift`, `sift_kernel`).

The compiled loop is held to a plain-Python reading of the same lines, and to Polars: the
lines it keeps must include every line a literal filter keeps, and the ids of the lines it
drops must be marked as `held` marks them.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from croctl.pipeline import bind_plan, held, numbered_ids, sift
from croctl.pipeline.coverage import Span
from croctl.pipeline.keys import high_word
from croctl.pipeline.sift import Sieve, sieve_of, sift_csv
from croctl.plan import load_plan
from tests.conftest import ROOT
from tests.test_csv_once import _as_csv
from tests.test_dense import _edge_export, _on_both
from tests.test_engines import _report
from tests.test_golden import _close

HEADER = "event_id,user_id,ts,event_name,revenue\n"
NAMES = ("purchase", "refund")
SIEVE = Sieve("event_name", frozenset(NAMES), "user_id")
SPAN = Span(lo=-2, hi=1000, rows=10)  # ids -2..1000 have slots; others share the spare one
_PLAIN = re.compile(r"0|-?[1-9][0-9]{0,17}")

ids = st.sampled_from(
    ["", "0", "7", "-2", "-3", "1000", "1001", "007", "-0", "+5", "12a", "-", '"7"', '""', '"x"']
)
names = st.sampled_from(
    [
        *("purchase", "refund", "page_view", "", "purchase ", "Purchase", "refun", '"purchase"'),
        *('"page_view"', '"a,b"', '""', 'pur"chase', '"refund"x', '"a""b"', '"two\nlines"'),
    ]
)
lines = st.builds(
    lambda user, name, extra, end: (
        ",".join(["1", user, "2026-10-01T00:00:00Z", name, "2.5", "x"][: 5 + extra]) + end
    ),
    ids,
    names,
    st.sampled_from([0, 0, 0, -1, 1, -4]),  # now and then a line with fields missing or extra
    st.sampled_from(["\n", "\r\n"]),
)


def _fields(row: str) -> list[tuple[str, bool]] | None:
    """A line's fields and whether each was quoted; None where the loop gives up the file.

    A quote may only open a field, and close it before its separator or the line's end.
    """
    row = row.removesuffix("\r")
    fields, at = [], 0
    while True:
        if row.startswith('"', at):
            close = row.find('"', at + 1)
            if close < 0:  # the field goes on past the line break
                return None
            fields.append((row[at + 1 : close], True))
            at = close + 1
            if at < len(row) and row[at] != ",":
                return None
        else:
            comma = row.find(",", at)
            end = len(row) if comma < 0 else comma
            if '"' in row[at:end]:
                return None
            fields.append((row[at:end], False))
            at = end
        if at == len(row):
            return fields
        at += 1


def _number(user: str, sieve: Sieve) -> int | None:
    """The id's number as `numbered_ids` reads it, if it does."""
    digits = user.removeprefix(sieve.prefix) if user.startswith(sieve.prefix) else ""
    if sieve.padded:
        return int(digits) if re.fullmatch(f"[0-9]{{{sieve.padded}}}", digits) else None
    return int(digits) if _PLAIN.fullmatch(digits) else None


def _expected(text: str, span: Span, sieve: Sieve = SIEVE) -> tuple[str | None, np.ndarray]:
    """The kept lines and the dropped lines' marks, by splitting each line in Python.

    A last line without a line break is kept whatever it holds (Polars reads it).
    """
    seen = np.zeros(span.width + 1, np.bool_)
    header, *rows, tail = text.split("\n")
    kept = [header + "\n"]
    for row in rows:
        fields = _fields(row)
        if fields is None:
            return None, seen
        user, quoted = fields[1] if len(fields) == 5 else ("", True)
        if len(fields) != 5 or fields[3][0] in NAMES or (quoted and user == ""):
            kept.append(row + "\n")
        elif user == "":
            seen[span.width] = True
        elif (number := _number(user, sieve)) is not None:
            offset = number - span.lo
            seen[offset if 0 <= offset < span.width else span.width] = True
        else:
            kept.append(row + "\n")
    return "".join(kept) + (tail + "\n" if tail else ""), seen


def _joined(parts: list[bytes] | None) -> bytes | None:
    """`sift_csv`'s texts as one: the header once, then every text's lines in order."""
    if parts is None:
        return None
    assert all(part.startswith(parts[0][: parts[0].index(b"\n") + 1]) for part in parts)
    return parts[0] + b"".join(part[part.index(b"\n") + 1 :] for part in parts[1:])


def _sift(tmp_path: Path, *texts: str, sieve: Sieve = SIEVE) -> tuple[bytes | None, np.ndarray]:
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"part-{i}.csv")
        paths[-1].write_bytes(text.encode())
    seen = np.zeros(SPAN.width + 1, np.bool_)
    return _joined(sift_csv(paths, sieve, SPAN, seen)), seen


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(lines, max_size=40), last_break=st.booleans())
def test_lines_kept_and_ids_marked_as_python_reads_them(tmp_path_factory, rows, last_break):
    text = HEADER + "".join(rows)
    if not last_break and rows:
        text = text.removesuffix("\r\n").removesuffix("\n")
    kept, seen = _sift(tmp_path_factory.mktemp("sift"), text)
    expected, marks = _expected(text, SPAN)
    assert (kept.decode() if kept is not None else None) == expected
    if kept is not None:
        assert (seen == marks).all()


@pytest.mark.parametrize("padded", [0, 3], ids=["canonical", "padded"])
@settings(max_examples=60, deadline=None)
@given(users=st.lists(st.sampled_from(["u007", "u7", "u0", "u1000", "x007", "u-7", "u-07", "u"])))
def test_numbered_ids_are_read_after_their_prefix(tmp_path_factory, padded, users):
    sieve = Sieve("event_name", frozenset(NAMES), "user_id", prefix="u", padded=padded)
    text = HEADER + "".join(f"1,{user},t,view,\n" for user in users)
    kept, seen = _sift(tmp_path_factory.mktemp("sift"), text, sieve=sieve)
    expected, marks = _expected(text, SPAN, sieve)
    assert kept is not None and kept.decode() == expected
    assert (seen == marks).all()


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(
        lines.filter(lambda line: line.count("\n") == 1 and len(_fields(line[:-1]) or ()) == 5),
        max_size=40,
    )
)
def test_a_literal_filter_keeps_the_same_rows_of_the_sifted_text(tmp_path_factory, rows):
    text = HEADER + "".join(rows)
    kept, _ = _sift(tmp_path_factory.mktemp("sift"), text)
    assert kept is not None

    def filtered(data: bytes) -> pl.DataFrame:
        frame = pl.read_csv(data, infer_schema=False)
        return frame.filter(pl.col("event_name").is_in(NAMES))

    assert filtered(kept).equals(filtered(text.encode()))


def _expected_texts(text: str) -> tuple[str | None, list[str]]:
    """`_expected` for ids kept as text: the kept lines, and the dropped lines' ids in order.

    An id with a byte past ASCII is left to Polars (its line kept); an empty field is a null.
    """
    header, *rows, tail = text.split("\n")
    kept, handed = [header + "\n"], []
    for row in rows:
        fields = _fields(row)
        if fields is None:
            return None, []
        user, quoted = fields[1] if len(fields) == 5 else ("", True)
        unsure = (quoted and user == "") or not user.isascii()
        if len(fields) != 5 or fields[3][0] in NAMES or unsure:
            kept.append(row + "\n")
        elif user:
            handed.append(user)
    return "".join(kept) + (tail + "\n" if tail else ""), handed


text_ids = st.sampled_from(["", "a1", "7", "x" * 40, "käse", '"q"', '""', " sp ", '"a,b"', "0x"])


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.builds(
            lambda user, name, end: f"1,{user},t,{name},2.5{end}",
            text_ids,
            names,
            st.sampled_from(["\n", "\r\n"]),
        ),
        max_size=40,
    ),
    small=st.booleans(),
)
def test_text_ids_of_dropped_lines_are_keyed_as_polars_reads_them(tmp_path_factory, rows, small):
    text = HEADER + "".join(rows)
    path = tmp_path_factory.mktemp("sift") / "part.csv"
    path.write_bytes(text.encode())
    handed: list[int] = []  # coverage keys (`high_word`)
    with pytest.MonkeyPatch.context() as m:
        if small:
            m.setattr(sift, "WINDOW", 4096)  # several windows, each handing its keys on
        sieve = Sieve("event_name", frozenset(NAMES), "user_id", text=True)
        kept = _joined(sift_csv([path], sieve, None, np.zeros(0, np.bool_), handed.extend))
    expected, ids = _expected_texts(text)
    assert (kept.decode() if kept is not None else None) == expected
    if kept is not None:
        assert sorted(handed) == sorted(_keys(ids))  # each half-window's as it is sifted
        # each as Polars reads it from a line no filter keeps (text, not a number)
        rows_read = pl.read_csv(text.encode(), infer_schema=False)
        dropped = rows_read.filter(~pl.col("event_name").is_in(NAMES).fill_null(False))
        assert Counter(handed) <= Counter(_keys(dropped.get_column("user_id").drop_nulls()))


def _keys(ids: list[str] | pl.Series) -> list[int]:
    """Text ids' coverage keys (`keys.high_word`)."""
    return high_word(pl.Series(ids, dtype=pl.String)).to_list()


def test_an_error_on_the_second_thread_is_raised_not_lost(tmp_path):
    path = tmp_path / "part.csv"
    path.write_text(HEADER + "".join(f"{i},u{i},t,view,\n" for i in range(2000)))

    def text_keys(words: pl.Series) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("lost")

    sieve = Sieve("event_name", frozenset(NAMES), "user_id", text=True)
    with pytest.raises(RuntimeError, match="lost"):
        sift_csv([path], sieve, None, np.zeros(0, np.bool_), text_keys)


def test_windows_split_lines_anywhere(tmp_path, monkeypatch):
    rows = [f"{i},{i % 997},t,{('purchase', 'view', 'refund')[i % 3]},{i}\n" for i in range(9000)]
    text = HEADER + "".join(rows)
    whole = _sift(tmp_path, text)
    monkeypatch.setattr(sift, "WINDOW", 4096)  # ~50 windows, lines across their edges
    windowed = _sift(tmp_path, text)
    assert whole[0] == windowed[0] == _expected(text, SPAN)[0].encode()
    assert (whole[1] == windowed[1]).all()


def test_polars_reads_the_texts_as_the_files_kept_rows(tmp_path, monkeypatch):
    header = "\ufeff" + HEADER.replace("revenue", '"revenue"')  # a BOM, a quoted name
    rows = [f"{i},{i % 997},t,{('purchase', 'view', 'refund')[i % 3]},{i}\n" for i in range(9000)]
    (tmp_path / "part-0.csv").write_text(header + "".join(rows[:5000]))
    (tmp_path / "part-1.csv").write_text(header + "".join(rows[5000:]))
    monkeypatch.setattr(sift, "WINDOW", 4096)  # many texts, each under the header
    paths = [tmp_path / "part-0.csv", tmp_path / "part-1.csv"]
    parts = sift_csv(paths, SIEVE, SPAN, np.zeros(SPAN.width + 1, np.bool_))
    assert parts is not None and len(parts) > 10
    whole = pl.read_csv(paths, infer_schema=False).filter(pl.col("event_name").is_in(NAMES))
    assert pl.scan_csv(parts, infer_schema=False).collect().equals(whole)


def test_files_are_joined_under_one_header(tmp_path):
    first, second = HEADER + "1,3,t,view,\n", HEADER + "2,4,t,refund,\n3,5,t,view,\n"
    kept, seen = _sift(tmp_path, first, second)
    assert kept == (HEADER + "2,4,t,refund,\n").encode()
    assert np.flatnonzero(seen).tolist() == [3 - SPAN.lo, 5 - SPAN.lo]


def test_a_byte_order_mark_and_quoted_names_are_read_in_the_header(tmp_path):
    header = "\ufeff" + ",".join(f'"{name}"' for name in HEADER.strip().split(",")) + "\n"
    kept, seen = _sift(tmp_path, header + "1,3,t,view,\n2,4,t,refund,\n")
    assert kept == (header + "2,4,t,refund,\n").encode()
    assert np.flatnonzero(seen).tolist() == [3 - SPAN.lo]


@pytest.mark.parametrize(
    "texts",
    [
        [HEADER + '1,3,t,"vi\new",\n'],  # a line break in a field: lines are not rows
        [HEADER + '1,3,t,vi"ew,\n'],  # a quote inside a field: Polars reads it its own way
        [HEADER + "1,3,t,view,\n", "user_id,event_id,ts,event_name,revenue\n"],  # headers differ
        [""],  # an empty file: Polars says so
        ["event_id,user_id,ts\n1,3,t\n"],  # no key column
        [HEADER + "1,3,t,view," + "x" * 5000 + "\n"],  # a line longer than a window
    ],
    ids=["line-break-quoted", "quote-inside", "headers", "empty", "columns", "long-line"],
)
def test_what_the_loop_does_not_read_goes_to_polars_whole(tmp_path, monkeypatch, texts):
    monkeypatch.setattr(sift, "WINDOW", 4096)
    assert _sift(tmp_path, *texts)[0] is None


@pytest.mark.parametrize(
    ("filters", "sieve"),
    [
        (["event_name = 'purchase'"], {"purchase"}),
        (
            ["event_name = 'purchase'", "\"event_name\" in ('cart', 'a,b')"],
            {"purchase", "cart", "a,b"},
        ),
        (["event_name = 'purchase'", "revenue > 1"], None),
        (["event_name = 'purchase' AND revenue > 1"], None),
        (["event_name = 'it''s'"], None),
        (["event_name = 'purchase'", "other = 'purchase'"], None),
    ],
)
def test_sieves_are_taken_from_literal_filters_on_one_text_column(tmp_path, filters, sieve):
    plan_path = _as_csv(_edge_export(tmp_path, int))
    events = plan_path.parent / "events.csv"
    pl.read_csv(events).with_columns(other=pl.col("event_name")).write_csv(events)
    plan = yaml.safe_load(plan_path.read_text())
    del plan["funnels"]
    plan["metrics"] = {
        f"m{i}": {"role": "diagnostic", "type": "proportion", "source": "events", "filter": f}
        for i, f in enumerate(filters)
    }
    plan["metrics"]["m0"]["role"] = "primary"
    plan_path.write_text(yaml.safe_dump(plan))
    keyed = numbered_ids.integer_keyed(held.hold_exposures(bind_plan(load_plan(plan_path))))
    assert keyed is not None
    found = sieve_of(keyed, keyed.sources["events"], Span(lo=1, hi=63, rows=66))
    assert (found.values if found else None) == (frozenset(sieve) if sieve else None)


def test_sources_smaller_than_numbas_start_up_are_left_to_polars(tmp_path, monkeypatch):
    plan = _as_csv(_edge_export(tmp_path, int))
    keyed = numbered_ids.integer_keyed(held.hold_exposures(bind_plan(load_plan(plan))))
    assert keyed is not None
    span, size = Span(lo=1, hi=63, rows=66), (plan.parent / "events.csv").stat().st_size
    monkeypatch.setattr(sift, "MIN_BYTES", size + 1)
    assert sieve_of(keyed, keyed.sources["events"], span) is None
    monkeypatch.setattr(sift, "MIN_BYTES", size)
    assert sieve_of(keyed, keyed.sources["events"], span) is not None


def test_a_sifted_source_takes_the_dense_arrays_from_a_quarter_as_many_exposure_rows(
    tmp_path, monkeypatch
):
    from croctl.pipeline import dense

    plan = _as_csv(_edge_export(tmp_path, int))
    bound = held.hold_exposures(bind_plan(load_plan(plan)))
    monkeypatch.setattr(dense, "MIN_ROWS", 4 * 66)
    assert dense.applies(bound, 66)  # numba loads for the sift anyway
    monkeypatch.setattr(sift, "MIN_BYTES", 1 << 40)  # not sifted: the usual threshold
    assert not dense.applies(bound, 66)
    monkeypatch.setattr(dense, "MIN_ROWS", 66)
    assert dense.applies(bound, 66)


# non_numeric, read untyped: every value quoted, nulls left empty, as R's write.csv writes text
@pytest.mark.parametrize("quotes", ["necessary", "non_numeric"])
@pytest.mark.parametrize(
    "unit",
    [str, lambda i: f"user_{i}", lambda i: f"u{i:04d}", lambda i: f"{i * 7919:x}-{i}"],
    ids=["integer", "prefixed", "padded", "text"],
)
def test_an_edge_export_read_sifted_gives_the_unsifted_and_duckdb_reports(
    tmp_path, monkeypatch, quotes, unit
):
    plan = _as_csv(_edge_export(tmp_path, int, unit_id=(unit, pl.String())))
    events = plan.parent / "events.csv"
    pl.read_csv(events, infer_schema=False).write_csv(events, quote_style=quotes)
    texts: list[list[bytes] | None] = []

    def spy(*args):  # type: ignore[no-untyped-def]
        texts.append(found := sift_csv(*args))
        return found

    monkeypatch.setattr(sift, "sift_csv", spy)
    report = _report(plan)
    assert (
        texts
        and texts[0] is not None
        and sum(map(len, texts[0])) < (plan.parent / "events.csv").stat().st_size
    )
    with monkeypatch.context() as m:
        m.setattr(sift, "sieve_of", lambda *args: None)
        _close(report, _report(plan))
    _close(report, _report(plan, engine="duckdb"))


# tidy: integer ids, slots by range (`RangeSlots`); realistic: hex text ids, by key (`KeyedSlots`)
@pytest.mark.parametrize("shape", ["tidy", "realistic"])
def test_the_dense_arrays_read_a_sifted_csv_as_unsifted_and_as_the_hash_query(
    tmp_path, monkeypatch, shape
):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import generate  # type: ignore[import-not-found]

    generate.generate(3000, 15, "csv", tmp_path, shape=shape)
    plan = tmp_path / "plan.yaml"
    texts: list[list[bytes] | None] = []
    original = sift.sift_csv
    monkeypatch.setattr(sift, "sift_csv", lambda *args: texts.append(original(*args)) or texts[-1])
    report = _on_both(plan, monkeypatch)  # the hash query, then the dense arrays
    assert len(texts) == 2 and None not in texts
    monkeypatch.setattr(sift, "sieve_of", lambda *args: None)
    _close(_report(plan), report)  # the dense arrays, unsifted
