"""Report rows as the files people download and open: CSV, XLSX and JSON, as bytes.

The CLI (`--format csv|json|xlsx`, `--output FILE`) and the dashboard's download buttons
both come here, so a file downloaded from a dashboard table and one written by `report …`
are the same file. XLSX is binary: the CLI writes it to a file, never to a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from devposture.collector.render import FORMATS as TEXT_FORMATS
from devposture.collector.render import render

FILE_FORMATS = ("csv", "json", "xlsx")
FORMATS = (*TEXT_FORMATS, "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def export(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], fmt: str, *, title: str
) -> bytes:
    """The rows in `fmt` (csv, json, xlsx; also table), every column; `title` names the
    XLSX sheet."""
    if fmt == "xlsx":
        # Imported here: openpyxl takes a tenth of a second to load, which every other
        # command would pay (tests/collector/test_cli_imports.py).
        from devposture.collector.xlsx import workbook  # noqa: PLC0415

        return workbook(rows, columns, title=title)
    return render(rows, columns, fmt).encode("utf-8")


def file_name(stem: str, fmt: str) -> str:
    """A download's file name: `stem` in letters, digits and dashes, and the format's."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in stem)
    return f"{safe.strip('-') or 'report'}.{fmt}"
