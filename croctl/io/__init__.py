"""Reading exports: file discovery, header sniffing, lazy typed scans, failure diagnosis."""

from croctl.io.diagnose import FailedExport, diagnose_failure
from croctl.io.files import (
    ExportFiles,
    FileFormat,
    inspect_export,
    partition_base,
    stored_row_bytes,
)
from croctl.io.scan import ColumnNeeds, ExportScan, scan_export

__all__ = [
    "ColumnNeeds",
    "ExportFiles",
    "ExportScan",
    "FailedExport",
    "FileFormat",
    "diagnose_failure",
    "inspect_export",
    "partition_base",
    "scan_export",
    "stored_row_bytes",
]
