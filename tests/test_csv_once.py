"""CSV exports: integer ids keyed as integers (`numbered_ids`), sources read once (`held`).

Each readout is held to an independent one: the DuckDB engine's (its own SQL over the same
files, ids as text) and the Polars query with both features turned off.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from croctl.pipeline import bind_plan, collect, held, numbered_ids
from croctl.pipeline.coverage import Bitmap, Keys
from croctl.plan import load_plan
from tests.conftest import BASE_PLAN
from tests.test_dense import _edge_export
from tests.test_engines import _report
from tests.test_golden import _close


def _as_csv(plan_path: Path) -> Path:
    """The plan over CSV copies of its Parquet exports (Polars writes integers canonically)."""
    plan = yaml.safe_load(plan_path.read_text())
    for export in [plan["exposures"], *plan["sources"].values()]:
        frame = pl.read_parquet(plan_path.parent / export["path"])
        export["path"] = export["path"].replace(".parquet", ".csv")
        frame.write_csv(plan_path.parent / export["path"])
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return plan_path


def _plain(plan: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The report with ids as text and every source read by the query itself."""
    with monkeypatch.context() as m:
        m.setattr(collect, "integer_keyed", lambda bound: None)
        m.setattr(collect, "hold_csv_exports", lambda bound, span: (bound, {}))
        m.setattr(collect, "hold_exposures", lambda bound: bound)
        return _report(plan)


def _spied(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Record what each `hold_csv_exports` call returned."""
    calls: list[dict[str, object]] = []

    def spy(bound, span):  # type: ignore[no-untyped-def]
        calls.append(found := held.hold_csv_exports(bound, span))  # type: ignore[arg-type]
        return found

    monkeypatch.setattr(collect, "hold_csv_exports", spy)
    return calls


@pytest.mark.parametrize("chunk", [1, 10**6], ids=["chunk-per-batch", "one-chunk-at-the-end"])
@pytest.mark.parametrize(
    "event_id", [lambda i: i, lambda i: f"e{i}"], ids=["integer-events", "text-events"]
)
def test_integer_csv_ids_read_once_give_the_plain_and_duckdb_reports(
    tmp_path, monkeypatch, chunk, event_id
):
    """Null ids, ids outside the exposures' range, repeated event ids, a window, a cap."""
    plan = _as_csv(_edge_export(tmp_path, event_id))
    assert numbered_ids.integer_keyed(bind_plan(load_plan(plan))).unit_dtype == pl.Int64
    monkeypatch.setattr(held, "CHUNK_ROWS", chunk)
    calls = _spied(monkeypatch)
    report = _report(plan)
    assert isinstance(calls[0][1]["events"], Bitmap)  # integer ids in a compact range
    assert calls[0][0].exposures.held
    _close(report, _plain(plan, monkeypatch))
    _close(report, _report(plan, engine="duckdb"))


def test_text_csv_ids_read_once_give_the_plain_report(tmp_path, monkeypatch):
    plan = _as_csv(_edge_export(tmp_path, int, unit_id=(lambda i: f"u{i}x", pl.String())))
    assert numbered_ids.integer_keyed(bind_plan(load_plan(plan))) is None
    calls = _spied(monkeypatch)
    report = _report(plan)
    assert isinstance(calls[0][1]["events"], Keys)
    _close(report, _plain(plan, monkeypatch))


@pytest.mark.parametrize("late", ["007", "+7", "-0", "u7", "9223372036854775808", " 7"])
def test_an_id_written_otherwise_after_the_sample_keeps_every_id_text(tmp_path, late):
    """`007` after 300 integers: `007` and `7` stay two units, as the DuckDB engine counts."""
    ids = [str(i) for i in range(1, 301)] + [late]
    arms = ["control" if i % 2 else "treatment" for i in range(len(ids))]
    pl.DataFrame({"user_id": ids, "variant": arms, "exposed_at": "2026-10-02T00:00:00Z"}).write_csv(
        tmp_path / "exposures.csv"
    )
    events = [*ids[::3], late, late.strip()]
    pl.DataFrame(
        {"user_id": events, "ts": "2026-10-03T00:00:00Z", "event_name": "purchase"}
    ).write_csv(tmp_path / "events.csv")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(BASE_PLAN))
    report = _report(plan)
    _close(report, _report(plan, engine="duckdb"))
    srm = next(c for c in report["checks"] if c["name"] == "srm")
    assert sum(srm["counts"].values()) == len(ids)  # `007` is a unit of its own


def test_a_filter_reading_the_unit_column_keeps_the_ids_text(tmp_path, monkeypatch):
    """The filter compares the ids as text (`'2'`), so no export's become integers."""
    (tmp_path / "exposures.csv").write_text(
        "user_id,variant,exposed_at\n1,control,2026-10-02T00:00:00Z\n"
        "2,treatment,2026-10-02T00:00:00Z\n"
    )
    (tmp_path / "events.csv").write_text(
        "user_id,ts,event_name\n1,2026-10-03T00:00:00Z,purchase\n2,2026-10-03T00:00:00Z,purchase\n"
    )
    plan = {**BASE_PLAN, "metrics": {**BASE_PLAN["metrics"]}}
    plan["metrics"]["conv"] = {
        **BASE_PLAN["metrics"]["conv"],
        "filter": "event_name = 'purchase' AND user_id = '2'",
    }
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    assert numbered_ids.integer_keyed(bind_plan(load_plan(tmp_path / "plan.yaml"))) is None
    report = _report(tmp_path / "plan.yaml")
    _close(report, _plain(tmp_path / "plan.yaml", monkeypatch))
    _close(report, _report(tmp_path / "plan.yaml", engine="duckdb"))  # it failed to bind `user_id`


def test_an_unfiltered_source_is_left_to_the_query(tmp_path):
    plan = _as_csv(_edge_export(tmp_path, int))
    data = yaml.safe_load(plan.read_text())
    data["metrics"]["rows"] = {"role": "diagnostic", "type": "mean", "source": "events"}
    plan.write_text(yaml.safe_dump(data))
    bound = bind_plan(load_plan(plan))
    held_bound, covered = held.hold_csv_exports(bound, collect.exposure_span(bound))
    assert covered == {} and not held_bound.sources["events"].held


def test_a_source_no_metric_keeps_a_row_of_is_held_empty(tmp_path, monkeypatch):
    plan = _as_csv(_edge_export(tmp_path, int))
    events = pl.read_csv(tmp_path / "events.csv")
    events.with_columns(event_name=pl.lit("page_view")).write_csv(tmp_path / "events.csv")
    calls = _spied(monkeypatch)
    report = _report(plan)
    assert calls[0][0].sources["events"].held
    assert sum(calls[0][1]["events"].seen)  # coverage: the page views
    _close(report, _plain(plan, monkeypatch))


def _text_bytes(column: pl.Series) -> int:
    """Bytes of text buffers the column keeps alive (Arrow's view layout: buffers 2 onwards)."""
    buffers = column.to_arrow(compat_level=pl.CompatLevel.newest()).buffers()[2:]
    return sum(b.size for b in buffers if b is not None)


def test_kept_rows_own_their_text():
    batch = pl.DataFrame({"id": [f"{i:032x}" for i in range(50_000)], "name": ["buy"] * 50_000})
    every_tenth = pl.Series([i % 10 == 0 for i in range(50_000)])
    kept = pl.DataFrame([column.filter(every_tenth) for column in batch.iter_columns()])
    assert held._long_text(kept) == ["id"]  # event names fit in their views
    owned = held._own_text(kept, ["id"])
    assert owned.equals(kept)
    assert _text_bytes(kept["id"]) >= 50_000 * 32  # the whole batch's ids
    assert _text_bytes(owned["id"]) <= 5_000 * 32  # the kept ones only


def test_csv_exposures_are_held_before_the_id_check_and_range(tmp_path):
    bound = bind_plan(load_plan(_as_csv(_edge_export(tmp_path, int))))
    held_bound = held.hold_exposures(bound)
    assert held_bound.exposures.held and held.hold_exposures(held_bound) is held_bound
    integer = numbered_ids.integer_keyed(held_bound)
    assert integer is not None and integer.unit_dtype == pl.Int64
    unheld = numbered_ids.integer_keyed(bound)
    assert collect.exposure_span(integer) == collect.exposure_span(unheld)
