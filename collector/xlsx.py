"""Report rows as an Excel workbook (XLSX) that people can read as it opens.

IT and auditors open exports in Excel or WPS: a CSV there has no column widths, loses
leading zeros and reads dates as text. The sheet here has a bold, frozen header row with a
filter, columns as wide as their contents (Chinese characters counted twice, long texts
wrapped), numbers as numbers and times as Excel dates, so sorting by "failing since" or
summing "days" works. A time keeps the offset the rows were written with (the company's time
zone, `company_time.stamp`): Excel's dates have no zone, so each cell's date format names its
offset ("UTC+08:00"), which a DST zone changes with the date.

Written with openpyxl's write-only workbook: it streams rows to the file instead of keeping a
cell object for each, so a 20,000-device `report failing` is written in seconds.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Mapping, Sequence
from typing import cast

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.worksheet import Worksheet

from devposture.collector.company_time import offset_label
from devposture.collector.table_fit import display_width

WIDEST = 60  # characters; a longer cell wraps within the column
# What the reports write for a moment: `isoformat(timespec="seconds")` of an aware time.
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)")
_SHEET_NAME_BANNED = re.compile(r"[\[\]:*?/\\]")


def _moment(value: str) -> dt.datetime | None:
    """An ISO time with its offset (None: not a time)."""
    return dt.datetime.fromisoformat(value) if _MOMENT.fullmatch(value) else None


Cell = str | float | dt.datetime | None


def _value(value: object) -> Cell:
    """A cell's value: numbers stay numbers, times become dates (aware, in the offset they
    were written in), anything else text."""
    if value is None or isinstance(value, bool | int | float | dt.datetime):
        return value
    text = str(value)
    moment = _moment(text)
    return text if moment is None else moment


def _date_format(moment: dt.datetime) -> str:
    """Excel's date format naming the moment's offset: "UTC+08:00"."""
    tz = moment.tzinfo or dt.UTC
    return f'yyyy-mm-dd hh:mm:ss "{offset_label(moment, tz)}"'


def _width(value: object) -> int:
    if isinstance(value, dt.datetime):
        return 30  # 2026-11-01 09:30:00 UTC+08:00
    return max((display_width(line) for line in str(value).splitlines()), default=0)


def sheet_name(title: str) -> str:
    """A sheet name Excel accepts: at most 31 characters, none of []:*?/\\."""
    return _SHEET_NAME_BANNED.sub(" ", title).strip()[:31] or "report"


def workbook(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], *, title: str
) -> bytes:
    """The rows as one sheet named `title`, every column (the clause texts too)."""
    values = [[_value(row.get(c)) for c in columns] for row in rows]
    widths = [
        min(WIDEST, max([display_width(c), *(_width(line[i]) for line in values if
                                              line[i] is not None)]) + 2)
        for i, c in enumerate(columns)
    ]  # fmt: skip
    book = Workbook(write_only=True)
    sheet: WriteOnlyWorksheet = book.create_sheet(sheet_name(title))
    # A write-only sheet has a worksheet's column widths and filter (openpyxl's stubs leave
    # them out); they are written before the first row, as they must be.
    layout = cast(Worksheet, sheet)
    for i, width in enumerate(widths, start=1):
        layout.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"
    if columns:
        layout.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(values) + 1}"
    bold = Font(bold=True)
    header = []
    for name in columns:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    wrap = Alignment(wrap_text=True, vertical="top")
    for line in values:
        cells = []
        for i, value in enumerate(line):
            if isinstance(value, dt.datetime):
                cell = WriteOnlyCell(sheet, value=value.replace(tzinfo=None))
                cell.number_format = _date_format(value)
            else:
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    # Text stays text: openpyxl makes "=…" a formula, and a device names
                    # itself (hostname, product names): "=HYPERLINK(…)" must not run in Excel.
                    cell.data_type = "s"
                    if _width(value) > widths[i] - 2:
                        cell.alignment = wrap
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
