"""Unit ids stored long are read apart from the kept rows (`dense_rows.read_apart`): one read of
every row's id marks coverage and finds the kept rows' slots, and the kept rows come without ids.
The readout is the hash query's, whichever sources are read so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from croctl.errors import DataError
from croctl.io import ExportFiles, FileFormat, stored_row_bytes
from croctl.pipeline import bind_plan, dense, dense_rows
from croctl.pipeline import slots as slots_module
from croctl.pipeline.slots import KeyedSlots
from croctl.plan import load_plan
from tests.conftest import ROOT
from tests.test_dense import _edge_export, _on_both


def _spy_read_apart(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What `read_apart` returns, per source, as the dense arrays run."""
    found: list[object] = []
    original = dense.read_apart

    def spy(*args: object) -> object:
        found.append(original(*args))  # type: ignore[arg-type]
        return found[-1]

    monkeypatch.setattr(dense, "read_apart", spy)
    return found


@pytest.mark.parametrize(
    "unit_id",
    [(lambda i: f"u{i:03d}x", pl.String()), (lambda i: f"u{i:03d}".encode(), pl.Binary())],
    ids=["text", "binary"],
)
def test_ids_read_apart_give_the_hash_query_report(tmp_path, monkeypatch, unit_id):
    """Null ids, ids no exposure has, repeated rows, text event ids: as the hash query."""
    monkeypatch.setattr(slots_module, "LONG_ID_BYTES", 0)  # every Parquet id column is long
    found = _spy_read_apart(monkeypatch)
    plan = _edge_export(tmp_path, lambda i: f"e{i}", unit_id=unit_id)
    report = _on_both(plan, monkeypatch)
    assert found and all(isinstance(kept, np.ndarray) for kept in found)
    assert report["verdict"] != "invalid"


def _leadgen_in_parquet(folder: Path) -> Path:
    """The leadgen plan over Parquet copies of its exports (text ids stay text), every metric
    filtered (a source some measure reads whole is not read apart)."""
    plan_path = ROOT / "plans" / "leadgen.yaml"
    plan = yaml.safe_load(plan_path.read_text())
    plan["metrics"]["pipeline_value_per_visitor"]["filter"] = "lead_status = 'accepted'"
    plan["metrics"]["spam_lead_share"]["denominator"]["filter"] = "lead_status IS NOT NULL"
    for k, export in enumerate([plan["exposures"], *plan["sources"].values()]):
        frame = pl.read_csv(plan_path.parent / export["path"], infer_schema_length=None)
        frame.write_parquet(folder / f"export{k}.parquet")
        export["path"] = f"export{k}.parquet"
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


@pytest.mark.parametrize("apart", [["events", "crm"], ["events"], ["crm"]])
def test_some_sources_read_apart_give_the_hash_query_report(tmp_path, monkeypatch, apart):
    """Every source read apart lets the table of keys go early; else the others use it after."""
    monkeypatch.setattr(dense_rows, "long_ids", lambda bound, source: source.name in apart)
    found = _spy_read_apart(monkeypatch)
    released = []
    original = KeyedSlots.release
    monkeypatch.setattr(KeyedSlots, "release", lambda self: released.append(1) or original(self))
    report = _on_both(_leadgen_in_parquet(tmp_path), monkeypatch)
    assert [kept is not None for kept in found] == [n in apart for n in ("events", "crm")]
    # early when every source is read apart, after the rows, and as the readout ends
    assert len(released) == (3 if len(apart) == 2 else 2)
    assert report["verdict"] != "invalid"


def test_ids_stored_plainly_are_long_and_dictionary_ones_not(tmp_path):
    plan = load_plan(_edge_export(tmp_path, int, unit_id=(lambda i: f"u{i:03d}x", pl.String())))
    bound = bind_plan(plan)
    assert not slots_module.long_ids(bound, bound.sources["events"])  # Polars: a dictionary
    events = tmp_path / "events.parquet"
    uuids = pl.read_parquet(events).with_columns(pl.col("user_id") + "-0000-0000-0000-000000000000")
    pq.write_table(uuids.to_arrow(), events, use_dictionary=False)  # as pyarrow's overflow
    assert slots_module.long_ids(bind_plan(plan), bound.sources["events"])
    (tmp_path / "int").mkdir()
    integers = bind_plan(load_plan(_edge_export(tmp_path / "int", int)))
    assert not slots_module.long_ids(integers, integers.sources["events"])  # cheap to decode


def test_a_footer_that_cannot_be_read_says_nothing_of_the_ids(tmp_path):
    """The scan's own read reports a broken file; the guess at the ids' width does not fail."""
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file")
    assert stored_row_bytes(ExportFiles("b", (broken,), FileFormat.PARQUET, ("u",)), "u") is None
    assert stored_row_bytes(ExportFiles("c", (broken,), FileFormat.CSV, ("u",)), "u") is None


@pytest.mark.parametrize("rows", [[3, 2], [3, 2, 2]], ids=["fewer", "more"])
def test_kept_rows_unlike_the_first_reads_are_a_data_error(tmp_path, rows):
    """Two reads of an export disagree only if it was written to in between."""
    bound = bind_plan(load_plan(_edge_export(tmp_path, int)))
    source, slots = bound.sources["events"], KeyedSlots(bound)
    batches = [pl.DataFrame({"x": range(n)}) for n in rows]
    kept = np.arange(6, dtype=np.int32) * 10
    with pytest.raises(DataError, match="changed while it was read"):
        list(dense_rows._with_units(batches, slots, kept, source))
    units = list(dense_rows._with_units(batches[:2], slots, kept[:5], source))
    assert [u.tolist() for _, u in units] == [[0, 10, 20], [30, 40]]


def test_an_export_rewritten_between_its_two_reads_is_a_data_error(tmp_path, monkeypatch):
    """No readout from an export swapped for another between the read of every id and the
    kept rows' read: the kept rows would be paired with the wrong units. The count of kept rows
    tells (`_with_units`), unless Polars, reading the new file by the old one's footer, fails
    first."""
    from croctl.pipeline import collect_stats

    monkeypatch.setattr(slots_module, "LONG_ID_BYTES", 0)
    monkeypatch.setattr(dense, "MIN_ROWS", 0)
    plan = load_plan(_edge_export(tmp_path, int, unit_id=(lambda i: f"u{i:03d}x", pl.String())))
    original = KeyedSlots.kept_slots

    def then_rewritten(self: KeyedSlots, source: object, keep: pl.Expr) -> np.ndarray:
        kept = original(self, source, keep)  # type: ignore[arg-type]
        (path,) = source.files.paths  # type: ignore[attr-defined]
        rows = pl.read_parquet(path)
        pl.concat([rows, rows]).write_parquet(path.with_suffix(".new"))
        path.with_suffix(".new").replace(path)  # another writer swaps in a longer export
        return kept

    monkeypatch.setattr(KeyedSlots, "kept_slots", then_rewritten)
    with pytest.raises(DataError, match=r"changed while it was read|cannot read the exports"):
        collect_stats(plan)
