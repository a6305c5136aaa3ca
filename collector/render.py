"""Render rows of a report as an aligned text table, JSON or CSV.

Every report view goes through here, so each offers the same formats with the same columns:
what a person reads on a terminal is what a spreadsheet gets, except the long texts of
`FILE_ONLY_COLUMNS` (a clause's full wording), which only the files (JSON, CSV, XLSX) carry.
CSV starts with a UTF-8 byte order mark: without it, Excel on a Chinese Windows reads the file
as GBK and shows every Chinese text garbled; each text cell is written so that Excel reads it
back as that text (`_csv_cell`). JSON keeps numbers as numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from devposture.collector.column_words import heading
from devposture.collector.table_fit import GAP, column_widths, cut, escaped_controls
from devposture.collector.table_fit import display_width as _width
from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import Said, Told

Row = dict[str, str | int | float | None]
FORMATS = ("table", "json", "csv")
BOM = "\ufeff"
# The policy's texts for a row's clause and check: a spreadsheet needs them, a terminal
# table would wrap on them.
FILE_ONLY_COLUMNS: tuple[str, ...] = (
    "clause_title_zh", "clause_title_en", "clause_text_zh", "clause_text_en",
    "check_title_zh", "check_title_en",
)  # fmt: skip
# Columns a table leaves out when the column named beside them is there: the stored reason
# code, for programs, when its words (`reports.py`) are shown.
SHOWN_INSTEAD: dict[str, str] = {"reason": "reason_text"}
# How wide a table may be (None: as wide as its cells). The CLI sets it from the terminal
# (`fitting`); a context variable, because `admin.commands.present`, shared by the local and
# the remote path, renders without knowing where its text goes.
_TABLE_WIDTH: ContextVar[int | None] = ContextVar("table_width", default=None)
# The language of a table's headings (`column_words`); the CLI sets it (`headed`).
_HEADINGS: ContextVar[Lang] = ContextVar("headings", default="en")


@contextmanager
def headed(lang: Lang) -> Iterator[None]:
    """Tables rendered within this block head their columns in `lang`."""
    token = _HEADINGS.set(lang)
    try:
        yield
    finally:
        _HEADINGS.reset(token)


def current_heading(name: str) -> str:
    """Column `name`'s heading in the language of the tables rendered now (`headed`)."""
    return heading(name, _HEADINGS.get())


@contextmanager
def fitting(width: int | None) -> Iterator[None]:
    """Tables rendered within this block fit `width` display columns (None: no limit)."""
    token = _TABLE_WIDTH.set(width)
    try:
        yield
    finally:
        _TABLE_WIDTH.reset(token)


def code_cell(code: str, words: Mapping[str, Said]) -> str:
    """A cell holding a code ("active", "expired", an audit entry's "ok", a state's end "now"):
    its `str` is the code, which JSON, CSV and an English table keep byte for byte in every
    language (scripts compare it); a person's table words it in their language
    (`admin.worded_cells`), on the collector machine and over the admin port alike. As it is
    when `words` has none for it (a later version's code)."""
    word = words.get(code)
    if word is None:
        return code
    return Told(Said(word.english, word.params, plain=code))


def _cell(value: object) -> str:
    return "" if value is None else str(value)


# What Excel and WPS read as the start of a formula in a CSV cell: OWASP's list (=, +, -, @,
# tab, carriage return), NUL (ASVS 5.0, 1.2.10) and a line feed, also after spaces.
_FORMULA = re.compile(r" *[=+\-@\t\r\n\x00]")
# What Excel reads as a number whatever the quotes around it (then keeps 15 significant
# digits and drops leading zeros): digits, grouped or not, a decimal part, an exponent, a
# percent sign. "1.2.3", a date or an id with other letters stays text in Excel.
_NUMBER = re.compile(r" *(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%? *")
# The longest text Excel takes inside a formula.
_FORMULA_TEXT = 255


def _csv_cell(value: object) -> str:
    """A cell that Excel and WPS read back as the text it holds. A CSV has no types, so
    Excel guesses each cell's: a text that would start a formula gets a leading apostrophe
    (OWASP): a device names itself (its hostname, its products), and "=HYPERLINK(…)" or
    "+cmd|…" must not run in the spreadsheet IT or an auditor opens. A text that Excel would
    take for a number (a hostname or group of digits, a version "2.10", an id "12e45") is
    written `="…"`, which Excel shows as that text. Numbers are written as they are."""
    text = _cell(value)
    if not isinstance(value, str):
        return text
    if _FORMULA.match(text):
        return "'" + text
    if _NUMBER.fullmatch(text):
        return f'="{text}"' if len(text) <= _FORMULA_TEXT else "'" + text
    return text


def csv_text(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """The rows as CSV, with the byte order mark that tells Excel it is UTF-8. Lines end
    in CRLF (RFC 4180, what Excel writes): with "\n" alone, a cell holding a carriage return
    was left unquoted, and Excel began a new row there, whose first cell could be a formula."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return out.getvalue()


def render(rows: Sequence[Mapping[str, object]], columns: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return (
            json.dumps(
                [{c: row.get(c) for c in columns} for row in rows], ensure_ascii=False, indent=2
            )
            + "\n"
        )
    if fmt == "csv":
        return csv_text(rows, columns)
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    shown = [
        c
        for c in columns
        if c not in FILE_ONLY_COLUMNS and SHOWN_INSTEAD.get(c, "\0") not in columns
    ]
    return _table(rows, shown, _TABLE_WIDTH.get())


def _table(rows: Sequence[Mapping[str, object]], columns: Sequence[str], room: int | None) -> str:
    lang = _HEADINGS.get()
    cells = [[heading(c, lang) for c in columns]] + [
        [escaped_controls(_cell(row.get(c))) for c in columns] for row in rows
    ]
    if room is not None:  # on a terminal: one line a row
        cells = [[" ".join(text.split("\n")) for text in line] for line in cells]
    widths = [max(_width(line[i]) for line in cells) for i in range(len(columns))]
    if room is not None:
        widths = column_widths(widths, room)
        cells = [[cut(text, widths[i]) for i, text in enumerate(line)] for line in cells]
    lines = []
    for line in cells:
        padded = [text + " " * (widths[i] - _width(text)) for i, text in enumerate(line)]
        lines.append((" " * GAP).join(padded).rstrip())
    return "\n".join(lines) + "\n"
