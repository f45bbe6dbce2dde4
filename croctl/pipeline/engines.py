"""Aggregation engines besides Polars, and a precomputed statistics table.

The plan's SQL runs on DuckDB or Spark; each path returns the same `SufficientStats` as the
Polars engine.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import polars as pl

from croctl.errors import DataError, PlanError
from croctl.io import ExportFiles, FileFormat, partition_base
from croctl.pipeline.bound import BoundPlan
from croctl.pipeline.collect import stats_from_frames
from croctl.pipeline.table import frames_from_table, read_stats_table
from croctl.plan import Plan
from croctl.sufficient import SufficientStats

_SPARK_ERROR_CLASS = re.compile(r"\[[A-Z][A-Z0-9_.]*\] [^\n]*")
_SQLSTATE = re.compile(r" SQLSTATE: \w+$")
_SPARK_SESSION = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    # partition directories' values stay text, as in the other engines
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}


def collect_with_duckdb(bound: BoundPlan) -> SufficientStats:
    """Run the plan's DuckDB query in an embedded DuckDB (reading the plan's files).

    Raises:
        PlanError: DuckDB is not installed.
        DataError: DuckDB cannot read or aggregate the exports.
    """
    try:
        import duckdb
    except ImportError as exc:
        raise PlanError(
            "--engine duckdb needs the duckdb package", hint="pip install 'croctl[duckdb]'"
        ) from exc
    _refuse_case_twins(bound, "duckdb")
    sql = _sql(bound, "duckdb")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        try:
            table = pl.DataFrame(pl.from_arrow(con.sql(sql).to_arrow_table()))
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise DataError(
                f"duckdb: {first}", hint="try --engine polars for a located error"
            ) from exc
    return stats_from_table(table, bound.plan, "duckdb")


def collect_with_spark(bound: BoundPlan) -> SufficientStats:
    """Run the plan's Spark SQL on a Spark session over the plan's files.

    The session is `SPARK_REMOTE` (Spark Connect) when set, else a local one
    (`SPARK_MASTER`, default `local[*]`).

    Raises:
        PlanError: PySpark is not installed.
        DataError: Spark cannot read or aggregate the exports.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise PlanError(
            "--engine spark needs PySpark (and Java)", hint="pip install 'croctl[spark]'"
        ) from exc
    _refuse_case_twins(bound, "spark")
    builder = SparkSession.builder.appName("croctl")
    if os.environ.get("SPARK_REMOTE"):
        builder = builder.remote(os.environ["SPARK_REMOTE"])
    else:
        builder = builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
    spark = builder.getOrCreate()
    # Set on the session, not the builder: getOrCreate may return a session that already exists.
    # ANSI mode makes the query's guards (an epoch number in another unit) fail it; without it
    # the failing cast gives null and the row would be dropped in silence.
    for key, value in _SPARK_SESSION.items():
        spark.conf.set(key, value)
    try:  # a file Spark cannot read (nanosecond times) fails here, before the query
        for source in bound.scans():
            _spark_frame(spark, source.files).createOrReplaceTempView(source.name)
        result = spark.sql(_sql(bound, "spark").rstrip().rstrip(";"))
        table = pl.DataFrame(pl.from_arrow(result.toArrow()))
    except Exception as exc:  # Spark raises many unrelated types: report its reason
        raise DataError(
            f"spark: {spark_reason(str(exc))}", hint="try --engine polars for a located error"
        ) from exc
    return stats_from_table(table, bound.plan, "spark")


def _refuse_case_twins(bound: BoundPlan, engine: str) -> None:
    """Refuse a needed column whose name differs from another's only in case.

    DuckDB and Spark match column names without regard to case, quoted or not: `"event"` reads
    whichever of `Event` and `event` they choose (DuckDB's binder then fails on the type).

    Raises:
        DataError: such a column, naming both.
    """
    for source in bound.scans():
        for name in source.needs.all():
            twins = [c for c in source.files.columns if c != name and c.lower() == name.lower()]
            if twins:
                raise DataError(
                    f"{source.files.label}: columns '{name}' and '{twins[0]}' differ only in "
                    f"case, which {engine} does not tell apart",
                    hint="use --engine polars, or rename one of them",
                )


def _spark_frame(spark: Any, files: ExportFiles) -> Any:
    """A Spark frame over an export's files (columns matched by name across a glob's files)."""
    paths = [_SPARK_GLOB.sub(r"\\\g<0>", str(p)) for p in files.paths]  # files, not patterns
    reader = spark.read
    if files.partitions:  # Spark finds key=value directories below the base path
        reader = reader.option("basePath", str(partition_base(files.paths[0])))
    if files.format is FileFormat.PARQUET and not files.typed_apart:
        return reader.parquet(*paths)
    if files.format is FileFormat.PARQUET:  # typed apart: a union widens them file by file
        return functools.reduce(_union, (reader.parquet(path) for path in paths))
    if files.reordered:  # Spark reads a glob's CSV columns by place: match them by name
        return functools.reduce(_union, (reader.option("header", True).csv(p) for p in paths))
    return reader.option("header", True).csv(paths)


_SPARK_GLOB = re.compile(r"[\\\[\]{}*?]")  # characters Hadoop's path glob reads as a pattern


def _union(first: Any, other: Any) -> Any:
    """Two Spark frames' rows, columns matched by name (types widened as Spark's union does)."""
    return first.unionByName(other)


def spark_reason(message: str) -> str:
    """The root cause in a Spark error's text: its last `[ERROR_CLASS] ...` line.

    Through py4j the first line is only "An error occurred while calling o48.getResult."; the
    error classes follow, the outermost (a stage failure) first and the cause last.
    """
    causes = _SPARK_ERROR_CLASS.findall(message)
    if not causes:
        return (message.strip().splitlines() or ["unknown error"])[0]
    return _SQLSTATE.sub("", causes[-1]).strip()


def stats_from_table(table: pl.DataFrame, plan: Plan, label: str) -> SufficientStats:
    """Decode a statistics table computed by any engine.

    Raises:
        DataError: the table does not fit the plan.
    """
    return stats_from_frames(frames_from_table(table, plan, label), plan)


def collect_from_file(plan: Plan, path: Path) -> SufficientStats:
    """Finish from a statistics table saved as CSV or Parquet (`--stats FILE`).

    The plan's export files are not read: the data may live in a warehouse.

    Raises:
        DataError: missing, unreadable, or not computed for this plan.
    """
    return stats_from_table(read_stats_table(path), plan, path.name)


def _sql(bound: BoundPlan, dialect: str) -> str:
    from croctl.pipeline.sql import build_sql  # imports sqlglot, which only these engines need

    return build_sql(bound, dialect)
