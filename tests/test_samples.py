"""Samples: a CSV column's read off the head of its first file (`files.head_sample`), a scan's
first rows (`scan.first_values`).

Held to the sample the export's own scan gives: its first 200 non-null values.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from croctl.io import files
from croctl.io.files import head_sample, inspect_export
from croctl.io.scan import first_values


def _full_sample(path: Path, name: str) -> pl.Series:
    frame = pl.scan_csv(path, infer_schema=False).select(pl.col(name)).drop_nulls()
    return frame.head(200).collect().to_series()


def _write(path: Path, values: list[str | None]) -> Path:
    pl.DataFrame({"id": values, "other": ["x"] * len(values)}).write_csv(path)
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_the_head_gives_the_first_values_the_scan_gives(tmp_path, gzipped):
    values = [None if i % 7 == 0 else f"u{i:05d}" for i in range(5_000)]
    path = _write(tmp_path / "e.csv", values)
    if gzipped:
        path = tmp_path / "e.csv.gz"
        path.write_bytes(gzip.compress((tmp_path / "e.csv").read_bytes()))
    sample = head_sample(inspect_export(path), "id", 200)
    assert sample is not None and sample.equals(_full_sample(tmp_path / "e.csv", "id"))


def test_a_head_with_too_few_values_leaves_the_sample_to_the_scan(tmp_path):
    path = _write(tmp_path / "e.csv", ["7"] * 150 + [None] * 100)
    assert head_sample(inspect_export(path), "id", 200) is None


def test_parquet_and_a_missing_column_are_left_to_the_scan(tmp_path):
    pl.DataFrame({"id": ["1"] * 300}).write_parquet(tmp_path / "e.parquet")
    assert head_sample(inspect_export(tmp_path / "e.parquet"), "id", 200) is None
    path = _write(tmp_path / "e.csv", ["1"] * 300)
    assert head_sample(inspect_export(path), "missing", 200) is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text('ab,"\n 0', min_size=1, max_size=30)), min_size=200),
    st.integers(40, 20_000),
)
def test_whatever_the_cut_the_head_never_gives_other_values(tmp_path_factory, values, size):
    """Quoted commas and line breaks, and a cut anywhere: the scan's values, or none."""
    path = _write(tmp_path_factory.mktemp("s") / "e.csv", values)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files, "_SAMPLE_BYTES", size)
        sample = head_sample(inspect_export(path), "id", 200)
    assert sample is None or sample.equals(_full_sample(path, "id"))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.none() | st.integers(0, 9), min_size=1, max_size=300), max_size=3))
def test_a_scanned_sample_is_the_first_non_null_values_of_the_files_in_order(
    tmp_path_factory, parts
):
    parts = parts or [[None]]
    """Parquet parts, nulls anywhere or nowhere: the rows read first, else the nulls dropped."""
    folder = tmp_path_factory.mktemp("p")
    for k, values in enumerate(parts):
        pl.DataFrame({"id": values}, schema={"id": pl.Int64}).write_parquet(folder / f"{k}.parquet")
    export = inspect_export(folder / "*.parquet")
    sample = first_values(export, pl.scan_parquet(folder / "*.parquet"), "id")
    every = [v for values in parts for v in values if v is not None]
    assert sample.to_list() == every[:200]
