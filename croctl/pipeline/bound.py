"""A plan bound to its export files: the columns each export must give, and its scans."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import polars as pl

from croctl.io import ColumnNeeds, ExportFiles, ExportScan, FileFormat, scan_export
from croctl.plan import Plan

if TYPE_CHECKING:
    from croctl.pipeline.numbered_ids import Numbering


@dataclass(slots=True)
class BoundSource:
    """One export with the columns the plan reads from it and its lazy scan."""

    name: str
    files: ExportFiles
    needs: ColumnNeeds = field(default_factory=ColumnNeeds)
    scan: ExportScan | None = None
    held: bool = False  # the scan reads the kept rows from memory (`held`), not the files
    unit_text: pl.LazyFrame | None = None  # its unit ids as written, when keyed by number

    @property
    def frame(self) -> pl.LazyFrame | None:
        """Every row of the export, typed (None until scanned)."""
        return self.scan.frame if self.scan is not None else None


@dataclass(slots=True)
class BoundPlan:
    """A plan whose every column and filter has been checked against the files' headers."""

    plan: Plan
    exposures: BoundSource
    sources: dict[str, BoundSource]
    filters: dict[tuple[str, str], pl.Expr]  # (metric, "num" | "den") -> predicate
    unit_dtype: pl.DataType = field(default_factory=pl.String)
    numbering: Numbering | None = None  # how text unit ids became numbers (`numbered_ids`)

    def scans(self) -> list[BoundSource]:
        """Exposures first, then each source the metrics use."""
        return [self.exposures, *self.sources.values()]

    def by_inference(self) -> BoundPlan | None:
        """The plan read with less taken from first rows, for a query that failed.

        Text timestamps are parsed value by value, not in their sample's layout; a CSV's
        filter columns are typed by every row, not the first ones (digits first, then text),
        and its numbers read from text (` 12.5`). None when no scan would change.
        """
        if not any(_infers(s) for s in self.scans()):
            return None

        def inferring(source: BoundSource) -> BoundSource:
            if not _infers(source):
                return source
            source = self.retyped(source)
            assert source.scan is not None
            return replace(source, scan=source.scan.by_inference())

        sources = {name: inferring(s) for name, s in self.sources.items()}
        return replace(self, exposures=inferring(self.exposures), sources=sources)

    def retyped(self, source: BoundSource) -> BoundSource:
        """The source as a CSV is read once its first read failed (`scan_export`'s `typed_from`)."""
        if not _typed_by_first_rows(source):
            return source
        scan = scan_export(source.files, source.needs, self.plan.timezone, typed_from=None)
        return replace(source, scan=scan)


def _infers(source: BoundSource) -> bool:
    """Does `BoundPlan.by_inference` change how the source is read?"""
    return source.scan is not None and (
        source.scan.inferred is not None or _typed_by_first_rows(source)
    )


def _typed_by_first_rows(source: BoundSource) -> bool:
    """A CSV whose filter columns were typed by its first rows, and numbers by Polars' reader."""
    return (
        source.files.format is not FileFormat.PARQUET
        and bool(source.needs.inferred or source.needs.numbers)
        and source.scan is not None
        and source.scan.typed_from is not None
    )
