"""`Get-HotFix`: the updates Windows has installed (Win32_QuickFixEngineering), as a table.

Columns are Source, Description, HotFixID, InstalledBy, InstalledOn; the dashed line under the
header gives each column's start, and long cells are cut with "..." so only positions are
reliable. InstalledOn is a date (Windows records no time of day) in the machine's culture;
the order of day and month is inferred from all rows together (see local_dates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from agent.parsers.errors import ParseError
from agent.parsers.windows.local_dates import parse_local_datetime, slash_order


@dataclass(frozen=True)
class HotFix:
    hotfix_id: str
    description: str
    installed_on: date | None  # None when Windows did not record it


def parse_hotfixes(text: str) -> list[HotFix]:
    """Every row; an empty output (PowerShell prints nothing for no objects) is no hotfix."""
    if not text.strip():
        return []
    lines = text.split("\n")
    header_at = next((i for i, line in enumerate(lines) if "HotFixID" in line), None)
    if header_at is None or header_at + 1 >= len(lines):
        raise ParseError("Get-HotFix: no table header")
    header = lines[header_at]
    starts = {name: header.find(name) for name in ("Description", "HotFixID", "InstalledBy")}
    installed_at = header.find("InstalledOn")
    if installed_at < 0 or min(starts.values()) < 0:
        raise ParseError("Get-HotFix: a column is missing")
    rows = [line for line in lines[header_at + 2 :] if line.strip()]
    dates = [row[installed_at:].strip() for row in rows]
    order = slash_order(dates)
    hotfixes = []
    for row, when in zip(rows, dates, strict=True):
        hotfix_id = row[starts["HotFixID"] : starts["InstalledBy"]].strip()
        if not hotfix_id:
            raise ParseError("Get-HotFix: a row without HotFixID")
        installed = parse_local_datetime(when, order).date() if when else None
        hotfixes.append(
            HotFix(hotfix_id, row[starts["Description"] : starts["HotFixID"]].strip(), installed)
        )
    return hotfixes
