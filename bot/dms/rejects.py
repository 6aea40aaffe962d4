"""The reject report: one CSV line per row the import refused, saying where and why."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HEADER = ("file", "line", "column", "code", "reason", "row")


def _as_csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


class RejectReport:
    """Writes rejects as they come, so a 100,000-row import never holds them all.

    UTF-8 with a BOM: Excel on a Chinese Windows opens it with the Chinese intact. The file is
    created on the first reject, or at the end when `always` (a run without rejects then leaves
    an empty report rather than last run's).
    """

    def __init__(self, path: Path | None, *, always: bool = False) -> None:
        self.path = path
        self.always = always
        self.count = 0
        self._handle: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    def add(self, *, file: str, line: int, columns: list[str], codes: list[str], reasons: list[str], cells: list[str]) -> None:
        """Records one refused row: all its problems, joined with "; "."""
        self.count += 1
        if self.path is None:
            return
        self._open()
        assert self._writer is not None
        self._writer.writerow({
            "file": file, "line": line, "column": "; ".join(columns), "code": "; ".join(codes),
            "reason": "; ".join(reasons), "row": _as_csv_line(cells),
        })

    def _open(self) -> None:
        if self._handle is None and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.DictWriter(self._handle, fieldnames=HEADER)
            self._writer.writeheader()

    def close(self) -> None:
        if self.always:
            self._open()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def written(self) -> bool:
        return self.path is not None and (self.count > 0 or self.always)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def read_rejects(path: Path) -> list[dict[str, str]]:
    """The report's lines as dicts (for tests, the bench and anyone checking a report)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))
