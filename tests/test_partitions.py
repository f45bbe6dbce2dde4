"""Hive-style partitioned exports: `key=value` directories are text columns on every engine."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from croctl.cli import app
from croctl.io import inspect_export
from croctl.io.files import partition_base, partition_values
from tests.test_engines import ON_SPARK, SAMPLE, _checkout_over, _report
from tests.test_golden import _close

ENGINES = ["polars", "duckdb", pytest.param("spark", marks=ON_SPARK)]


def _write(frame: pl.DataFrame, path: Path, suffix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)


def _write_partitioned(frame: pl.DataFrame, root: Path, key: str, suffix: str) -> str:
    """One directory per value of `key`, as Spark writes them (the key is not in the files)."""
    for (value,), part in frame.group_by(key):
        name = "__HIVE_DEFAULT_PARTITION__" if value is None else quote(str(value), safe="")
        _write(part.drop(key), root / f"{key}={name}" / f"part-0{suffix}", suffix)
    return f"{root.name}/*/*{suffix}"


def _plans(tmp_path: Path, suffix: str) -> tuple[Path, Path]:
    """The checkout plan over one flat export and over the same rows partitioned: events by
    event name, exposures by device (a segment), with a null device and one needing escapes."""
    exposures = pl.read_parquet(SAMPLE / "exposures.parquet")
    device = pl.col("device")
    exposures = exposures.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0)
        .then(None)
        .when(device == "tablet")
        .then(pl.lit("tablet/ipad=1 %"))
        .otherwise(device)
        .alias("device")
    )
    events = pl.read_parquet(SAMPLE / "events.parquet")
    plans = []
    for layout in ("flat", "partitioned"):
        folder = tmp_path / layout
        if layout == "flat":
            _write(exposures, folder / f"exposures{suffix}", suffix)
            _write(events, folder / f"events{suffix}", suffix)
            paths = (f"exposures{suffix}", f"events{suffix}")
        else:
            paths = (
                _write_partitioned(exposures, folder / "exposures", "device", suffix),
                _write_partitioned(events, folder / "events", "event_name", suffix),
            )
        plans.append(_checkout_over(folder, *paths))
    return plans[0], plans[1]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_partitioned_export_gives_the_report_of_the_same_rows_in_one_file(
    tmp_path, suffix, engine
):
    flat, partitioned = _plans(tmp_path, suffix)
    expected = _report(flat)
    assert any(s["value"] == "tablet/ipad=1 %" for s in expected["segments"])
    assert any(s["value"] == "(missing)" for s in expected["segments"])
    recoded = _report(partitioned, engine=engine)
    _close(recoded, expected | {"plan_sha256": recoded["plan_sha256"]})


def test_partition_values_are_decoded_as_hive_writes_them():
    path = Path("/data/run=3/events/kind=a%2Fb%3D1/day=__HIVE_DEFAULT_PARTITION__/part-0.parquet")
    assert partition_values(path) == {"run": "3", "kind": "a/b=1", "day": None}
    assert partition_base(path) == Path("/data")
    assert partition_values(Path("/data/events/part-0.parquet")) == {}


def test_a_key_the_files_also_hold_is_read_from_the_files(tmp_path):
    """Polars writes the key into each file as well: the file's column is then used."""
    for value in ("a", "b"):
        folder = tmp_path / f"kind={value}"
        folder.mkdir()
        pl.DataFrame({"kind": [value], "v": [1]}).write_parquet(folder / "part.parquet")
    files = inspect_export(tmp_path / "*" / "*.parquet")
    assert files.partitions == ()
    assert set(files.columns) == {"kind", "v"}


def test_init_over_a_partitioned_glob_keeps_the_glob_and_sees_the_keys(tmp_path):
    events = pl.read_parquet(SAMPLE / "events.parquet")
    glob = _write_partitioned(events, tmp_path / "events", "event_name", ".parquet")
    plan = tmp_path / "plan.yaml"
    exports = [str(SAMPLE / "exposures.parquet"), str(tmp_path / glob)]
    result = CliRunner().invoke(app, ["init", *exports, "--output", str(plan)])
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load(plan.read_text())
    assert document["sources"]["events"]["path"] == glob
    (metric,) = document["metrics"].values()
    assert metric["filter"] == "event_name = 'purchase'"
    result = CliRunner().invoke(app, ["evaluate", str(plan), "-f", "json"])
    assert result.exit_code in (0, 1, 4, 5), result.stderr
