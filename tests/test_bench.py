"""The benchmark's hand-written DuckDB query must compute what croctl computes.

A ratio against a baseline that does different work means nothing; `bench/run.py` checks the
agreement after every run, and this test checks it on a small generated export.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from croctl.cli import app
from tests.conftest import ROOT

pytest.importorskip("duckdb")


def _bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _readout(
    tmp_path: Path,
    fmt: str,
    monkeypatch: pytest.MonkeyPatch,
    shape: str = "tidy",
    writer: str | None = None,
) -> tuple[ModuleType, ModuleType]:
    """Generate a small export, read it out with croctl; returns the baselines and run modules."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # the scripts import each other
    generate, baselines, run = (_bench_module(n) for n in ("generate", "baselines", "run"))
    generate.generate(4000, 15, fmt, tmp_path, shape=shape, writer=writer)
    _evaluate(tmp_path)
    return baselines, run


def _evaluate(folder: Path) -> None:
    """`croctl evaluate` of the folder's plan, its JSON report written to `report.json`."""
    report = str(folder / "report.json")
    result = CliRunner().invoke(
        app, ["evaluate", str(folder / "plan.yaml"), "-f", "json", "-o", report]
    )
    assert result.exit_code in (0, 1, 4), result.output


@pytest.mark.parametrize(
    ("fmt", "shape", "writer"),
    [
        ("parquet", "tidy", None),
        ("csv", "tidy", None),
        ("parquet", "numbered", None),
        ("parquet", "scattered", None),
        ("parquet", "realistic", None),
        ("parquet", "uuid", None),
        ("parquet", "uuids", None),
        ("parquet", "scattered", "pyarrow"),
        ("parquet", "tidy", "duckdb"),
    ],
)
def test_duckdb_baseline_agrees_with_croctl(
    tmp_path: Path, fmt: str, shape: str, writer: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    baselines, run = _readout(tmp_path, fmt, monkeypatch, shape, writer)
    baselines.run_duckdb(tmp_path)
    run._check_agreement(tmp_path)  # raises SystemExit naming the first disagreement


@pytest.mark.parametrize("dense_arrays", [False, True], ids=["hash-query", "dense"])
def test_an_outsiders_export_reads_out_as_the_baseline_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dense_arrays: bool
) -> None:
    """`outsider.py`: one events file, each event's user at random, chunks in time order."""
    from croctl.pipeline import dense

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    baselines, run, outsider = (_bench_module(n) for n in ("baselines", "run", "outsider"))
    monkeypatch.setattr(outsider, "CHUNK", 25_000)  # several chunks, each in time order
    outsider.write(4000, 60_000, tmp_path)
    runs: list[object] = []
    original = dense.dense_results
    monkeypatch.setattr(dense, "dense_results", lambda *a: runs.append(a) or original(*a))
    if dense_arrays:
        monkeypatch.setattr(dense, "MIN_ROWS", 0)
    _evaluate(tmp_path)
    assert bool(runs) == dense_arrays
    baselines.run_duckdb(tmp_path)
    run._check_agreement(tmp_path)


def test_agreement_check_catches_a_baseline_doing_other_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baselines, run = _readout(tmp_path, "parquet", monkeypatch)
    window = " AND e.ts < u.exposed_at + INTERVAL 7 DAY"
    assert window in baselines.DUCKDB_SQL.replace("\n                                 ", " ")
    # conversion without its 7-day window: the query now counts other rows
    baselines.DUCKDB_SQL = baselines.DUCKDB_SQL.replace(
        "\n                                 AND e.ts < u.exposed_at + INTERVAL 7 DAY", ""
    )
    baselines.run_duckdb(tmp_path)
    with pytest.raises(SystemExit, match="conversion"):
        run._check_agreement(tmp_path)


@pytest.mark.parametrize(
    ("writer", "maker"),
    [("polars", "Polars"), ("pyarrow", "parquet-cpp-arrow"), ("duckdb", "DuckDB")],
)
def test_each_writer_writes_the_parquet_files(
    tmp_path: Path, writer: str, maker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    _bench_module("generate").generate(500, 5, "parquet", tmp_path, writer=writer)
    for path in [tmp_path / "exposures.parquet", *(tmp_path / "events").glob("*.parquet")]:
        assert pq.ParquetFile(path).metadata.created_by.startswith(maker)
