"""A DMS export on disk: its encoding, its delimiter, its header row, and its rows one at a time.

Chinese DMS systems export GBK (or GB18030) as often as UTF-8, with or without a BOM, and some
put a title line or two above the header. The file is checked whole before anything is imported
(so an unreadable file stops the import instead of half-loading it), then streamed row by row.
"""
from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.dms.mapping import FIELDS, Mapping

HEADER_SEARCH_LINES = 10  # title lines a DMS may write above the header
DELIMITERS = (",", "\t", ";", "|")
_CHUNK = 1 << 20


class UnusableFile(ValueError):
    """A file the import cannot read at all (exit code 2); the message says why."""


@dataclass(frozen=True)
class Row:
    line: int  # the line the row starts on, counting the header's and any title lines
    end_line: int
    cells: list[str]
    values: dict[str, str]  # field name -> the cell's text, for the fields the header has
    error: str | None = None  # the CSV reader's complaint about a line it could not split


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # owners, vehicles, services
    encoding: str
    delimiter: str
    header_line: int
    header: list[str]
    columns: dict[str, int]  # field name -> column index
    lines: int  # lines in the file, for the progress bar

    @property
    def name(self) -> str:
        return self.path.name

    def label(self, field: str) -> str:
        """The column's header as the file spells it, for the reject report."""
        index = self.columns.get(field)
        return self.header[index].strip().lstrip("\ufeff") if index is not None else field

    def rows(self) -> Iterator[Row]:
        """Yields every non-empty row after the header, with the line it starts on."""
        with self.path.open(encoding=self.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            last = 0
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    # a NUL byte or a broken quote: reject that line and read on
                    if reader.line_num == last:
                        return
                    yield Row(last + 1, reader.line_num, [], {}, error=str(exc))
                    last = reader.line_num
                    continue
                start, last = last + 1, reader.line_num
                if start <= self.header_line or not any(cell.strip() for cell in cells):
                    continue
                values = {name: cells[index] if index < len(cells) else "" for name, index in self.columns.items()}
                yield Row(start, last, cells, values)


def open_source(path: Path, kind: str, mapping: Mapping) -> Source:
    """Checks the file whole (readable, decodable, a header with the required fields) and describes it."""
    if not path.is_file():
        raise UnusableFile(f"{path}: no such file")
    encoding, lines = _encoding(path, mapping.encoding)
    with path.open(encoding=encoding, newline="") as handle:
        head = [line for _, line in zip(range(HEADER_SEARCH_LINES), handle, strict=False)]
    if not any(line.strip() for line in head):
        raise UnusableFile(f"{path.name}: the file is empty")
    delimiter = max(DELIMITERS, key=lambda d: sum(line.count(d) for line in head))
    records = list(csv.reader(head, delimiter=delimiter))
    header_line, header, columns = _header(records, kind, mapping)
    if header is None:
        expected = ", ".join(f.label for f in FIELDS[kind] if f.required or f.name in ("phone", "vin"))
        raise UnusableFile(
            f"{path.name}: no recognisable header in the first {HEADER_SEARCH_LINES} lines for {kind} "
            f"(expected columns such as {expected}; a mapping file can name the dealer's own headers)"
        )
    missing = [f for f in FIELDS[kind] if f.required and f.name not in columns]
    if kind == "services" and "plate" not in columns and "vin" not in columns:
        missing.append(next(f for f in FIELDS[kind] if f.name == "plate"))
    if missing:
        names = ", ".join(f"{f.label} ({f.name})" for f in missing)
        raise UnusableFile(f"{path.name}: no column for {names}; the header has: {', '.join(h.strip() for h in header)}")
    return Source(path, kind, encoding, delimiter, header_line, header, columns, lines)


def _header(records: list[list[str]], kind: str, mapping: Mapping) -> tuple[int, list[str] | None, dict[str, int]]:
    """The header: the first of the leading records in which at least two fields are recognised."""
    line = 0
    for record in records:
        # csv.reader over a list of lines: one record per line unless a quoted cell spans lines
        line += 1 + sum(cell.count("\n") for cell in record)
        columns = mapping.columns(kind, record)
        if len(columns) >= 2:
            return line, record, columns
    return 0, None, {}


def _encoding(path: Path, forced: str | None) -> tuple[str, int]:
    """The encoding the whole file decodes with (BOM, else UTF-8, else GB18030) and its line count."""
    with path.open("rb") as handle:
        start = handle.read(4)
    if forced:
        candidates = [forced]
    elif start.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]  # Excel's "Unicode text"
    else:
        # GB18030 is a superset of GBK and GB2312, so it reads all three
        candidates = ["utf-8", "gb18030"]
    for encoding in candidates:
        lines = _decodes(path, encoding)
        if lines is not None:
            return encoding, lines
    tried = " or ".join(c.upper() for c in candidates)
    raise UnusableFile(f"{path.name}: not readable as {tried} (set encoding: in the mapping file)")


def _decodes(path: Path, encoding: str) -> int | None:
    """The number of lines when the whole file decodes, else None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 0
    last = ""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                text = decoder.decode(chunk)
                lines += text.count("\n")
                last = text[-1:] or last
            text = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    lines += text.count("\n")
    last = text[-1:] or last
    return lines + (1 if last and last != "\n" else 0)
