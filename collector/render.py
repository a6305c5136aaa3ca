"""Render rows of a report as an aligned text table, JSON or CSV.

Every report view goes through here, so each offers the same three formats with the same
columns: what a person reads on a terminal is what a spreadsheet gets, except the long texts
of `FILE_ONLY_COLUMNS` (a clause's full wording), which only JSON and CSV carry.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Mapping, Sequence

Row = dict[str, str | int | float | None]
FORMATS = ("table", "json", "csv")
# The policy's texts for a row's clause and check: a spreadsheet needs them, a terminal
# table would wrap on them.
FILE_ONLY_COLUMNS: tuple[str, ...] = (
    "clause_title_zh", "clause_title_en", "clause_text_zh", "clause_text_en",
    "check_title_zh", "check_title_en",
)  # fmt: skip


def _width(text: str) -> int:
    """Display width: Chinese characters take two terminal columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def render(rows: Sequence[Mapping[str, object]], columns: Sequence[str], fmt: str) -> str:
    if fmt == "json":
        return (
            json.dumps(
                [{c: row.get(c) for c in columns} for row in rows], ensure_ascii=False, indent=2
            )
            + "\n"
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        return out.getvalue()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    columns = [c for c in columns if c not in FILE_ONLY_COLUMNS]
    cells = [[c.upper() for c in columns]] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(_width(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        padded = [text + " " * (widths[i] - _width(text)) for i, text in enumerate(line)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"
