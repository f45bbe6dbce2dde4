"""The PostgreSQL dialect run on a real PostgreSQL, not only parsed: every shipped plan's
`croctl sql --dialect postgres`, over tables loaded from its exports, gives the statistics
table of the Polars engine (the same report). Runs when PostgreSQL's server programs are
installed; a throwaway cluster lives in the test's temporary directory."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import polars as pl
import pytest

from croctl.evaluate import evaluate
from croctl.io import FileFormat
from croctl.pipeline import bind_plan
from croctl.pipeline.sql import build_sql
from croctl.plan import load_plan
from tests.conftest import ROOT
from tests.test_filter_sql import write_filters
from tests.test_golden import _close
from tests.test_local_times import write_local_times

PLANS = sorted((ROOT / "plans").glob("*.yaml"))
PROGRAMS = ("initdb", "pg_ctl", "psql")


def _server_user() -> list[str] | None:
    """The prefix that runs the server: PostgreSQL refuses root, so as root it is `postgres`."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return ["runuser", "-u", "postgres", "--"]


AS_SERVER = _server_user()
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        AS_SERVER is None or not all(shutil.which(p) for p in PROGRAMS),
        reason="needs PostgreSQL's initdb, pg_ctl and psql (and a postgres user when root)",
    ),
]


@pytest.fixture(scope="module")
def psql():
    """A psql command line for a fresh cluster on a Unix socket (no TCP), removed afterwards.

    Its directory is a new one under the system's temporary directory: pytest's own is private
    to root, and the server (user postgres) must reach it.
    """
    assert AS_SERVER is not None
    home = Path(tempfile.mkdtemp(prefix="croctl-pg-"))
    if AS_SERVER:
        shutil.chown(home, "postgres")
    data = home / "data"
    run = [*AS_SERVER]
    subprocess.run(
        [*run, "initdb", "-D", str(data), "-A", "trust", "-U", "croctl", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-k {home} -c listen_addresses='' -c fsync=off"
    start = [*run, "pg_ctl", "-D", str(data), "-o", options, "-l", str(home / "log"), "-w"]
    subprocess.run([*start, "start"], check=True, capture_output=True)
    try:
        yield ["psql", "-h", str(home), "-U", "croctl", "-d", "postgres", "-q", "-X"]
    finally:
        subprocess.run([*run, "pg_ctl", "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(home, ignore_errors=True)


def _sql_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if dtype.is_integer():
        return "BIGINT"
    if dtype.is_float():
        return "DOUBLE PRECISION"
    return "BOOLEAN" if dtype == pl.Boolean else "TEXT"


def _run(psql: list[str], sql: str, data: bytes | None = None) -> bytes:
    command = [*psql, "-v", "ON_ERROR_STOP=1", "-c", sql]
    result = subprocess.run(command, input=data, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def _load(psql: list[str], table: str, frame: pl.DataFrame) -> None:
    """A table as a warehouse would hold the export: Parquet's types, or a CSV's text."""
    columns = ", ".join(f'"{name}" {_sql_type(t)}' for name, t in frame.schema.items())
    _run(psql, f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({columns})")
    _run(psql, f"\\copy {table} FROM STDIN WITH (FORMAT csv, HEADER)", frame.write_csv().encode())
    _run(psql, f"ANALYZE {table}")


def _read(path: Path, fmt: FileFormat) -> pl.DataFrame:
    if fmt is FileFormat.PARQUET:
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema=False)


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.stem)
def test_postgres_runs_the_plan_sql_to_the_same_report(plan, psql, tmp_path):
    _assert_same_report(plan, psql, tmp_path)


def test_postgres_reads_local_times_around_daylight_saving_changes_alike(psql, tmp_path):
    _assert_same_report(write_local_times(tmp_path), psql, tmp_path)


def test_postgres_reads_filters_as_polars_does(psql, tmp_path):
    _assert_same_report(write_filters(tmp_path), psql, tmp_path)


def _assert_same_report(plan: Path, psql: list[str], tmp_path: Path) -> None:
    bound = bind_plan(load_plan(plan))
    for source in bound.scans():
        frames = [_read(path, source.files.format) for path in source.files.paths]
        _load(psql, source.name, pl.concat(frames))
    query = build_sql(bound, "postgres").rstrip().rstrip(";")
    stats = tmp_path / "stats.csv"
    stats.write_bytes(
        _run(psql, f"SET enable_nestloop = off; COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)")
    )
    expected = json.loads(json.dumps(evaluate(plan).to_dict()))
    _close(json.loads(json.dumps(evaluate(plan, stats=stats).to_dict())), expected)
