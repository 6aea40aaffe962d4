"""`dealercare import`: owners, vehicles and service history from a dealer's DMS CSV exports (docs/import.md)."""
from __future__ import annotations

from bot.dms.importer import FileReport, ImportReport, import_files, summary
from bot.dms.mapping import Mapping, MappingError
from bot.dms.rejects import RejectReport, read_rejects
from bot.dms.source import Source, UnusableFile, open_source

__all__ = [
    "FileReport", "ImportReport", "Mapping", "MappingError", "RejectReport", "Source", "UnusableFile",
    "import_files", "open_source", "read_rejects", "summary",
]
