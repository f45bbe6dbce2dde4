"""Shared helpers: write tiny exports and plans into a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# CI runs the property tests on a fixed sequence of examples: a red build is reproducible.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def integer_ids(plan_path: Path, folder: Path, first: int = 1) -> Path:
    """The plan over Parquet copies of its exports, unit ids recoded to integers from `first`."""
    plan = yaml.safe_load(plan_path.read_text())
    exports = [plan["exposures"], *plan["sources"].values()]
    frames = [_read_export(plan_path.parent / e["path"]) for e in exports]
    units = [f.get_column(e["unit"]).cast(pl.String) for f, e in zip(frames, exports, strict=True)]
    ids = pl.concat(units).drop_nulls().unique().sort()
    numbers = range(first, first + len(ids))
    for k, (frame, export) in enumerate(zip(frames, exports, strict=True)):
        number = pl.col(export["unit"]).cast(pl.String).replace_strict(ids, numbers)
        frame.with_columns(number).write_parquet(folder / f"export{k}.parquet")
        export["path"] = f"export{k}.parquet"
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _read_export(path: Path) -> pl.DataFrame:
    if ".parquet" in path.name:
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema_length=None)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


BASE_PLAN = {
    "experiment": {
        "name": "t",
        "control": "control",
        "variants": {"control": 0.5, "treatment": 0.5},
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-10-15T00:00:00Z",
    },
    "exposures": {
        "path": "exposures.csv",
        "unit": "user_id",
        "variant": "variant",
        "timestamp": "exposed_at",
    },
    "sources": {"events": {"path": "events.csv", "unit": "user_id", "timestamp": "ts"}},
    "metrics": {
        "conv": {
            "role": "primary",
            "type": "proportion",
            "source": "events",
            "filter": "event_name = 'purchase'",
        }
    },
    "checks": {"min_units": 1},
}


@pytest.fixture
def make_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write a plan (BASE_PLAN with top-level overrides) into tmp_path and return its path."""

    def make(**overrides: object) -> Path:
        plan = {**BASE_PLAN, **overrides}
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
        return path

    return make


@pytest.fixture(autouse=True)
def every_csv_is_sifted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sift the tests' small CSV sources too (`sift.MIN_BYTES`): every CSV readout in the suite
    then also checks the sift against what its test expects."""
    from croctl.pipeline import sift

    monkeypatch.setattr(sift, "MIN_BYTES", 0)


@pytest.fixture(autouse=True)
def every_json_report_matches_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whenever a test builds a JSON report (CLI or library), validate it against the schema."""
    import json

    import jsonschema

    from croctl.report import Report
    from croctl.schemas import load_schema

    schema = load_schema("report")
    to_dict = Report.to_dict

    def checked(self: Report) -> dict:
        body = to_dict(self)
        jsonschema.validate(json.loads(json.dumps(body)), schema)
        return body

    monkeypatch.setattr(Report, "to_dict", checked)
