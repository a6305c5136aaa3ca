"""`softwareupdate --history`: what Software Update installed, and when.

The tool prints a fixed-width table ("%-50s %-10s %-22s"), header in English on every locale:
    Display Name                                       Version    Date
    ------------                                       -------    ----
    macOS Sequoia 15.6.1                               15.6.1     28/08/2025, 02:01:08
The date is in the Mac's region format and local time, with no offset: "09/02/2023, 13:37:52"
(month first, US), "28/08/2025, 02:01:08" (day first, UK), "2026/05/04 21:09:44" (zh-CN).
macOS prints no pattern beside the table, so the day/month order of a slash date is deduced from
all rows together (agent.parsers.windows.local_dates, its reading without a printed pattern): a
first field above 12 means day first, a second field above 12 means month first. When no row
decides it, the newest install is still known if both orders give the same newest date and time
(they do when that row reads e.g. "09/09/2023"); otherwise it is a ParseError, never a guess.
The local time is taken as UTC (off by at most the Mac's UTC offset, which the host layer does
not report).

Which rows count for "last installed" (the newest Apple OS or security install): a name that
starts with "macOS", "Mac OS X" or "OS X" (point updates, upgrades, Rapid Security Responses
such as "macOS Ventura 13.3.1 (a)"), a name containing "Security" (Security Update 2021-001,
Security Response, Background Security Improvement) and XProtect data ("XProtectPlistConfigData",
listed with --all). Command Line Tools, Safari and other apps do not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.local_dates import parse_local_datetime, slash_order

_HEADER = re.compile(r"^Display Name\s+Version\s+Date\s*$")
_RULE = re.compile(r"^-+\s+-+\s+-+\s*$")
_DATE_AT_END = re.compile(
    r"(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4},?\s+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:\s*(?:AM|PM|[ap]\. ?m\.))?)\s*$",
    re.IGNORECASE,
)
_OS_PREFIXES = ("macOS", "Mac OS X", "OS X", "XProtect")
_SLASHED = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}\b")


@dataclass(frozen=True)
class HistoryEntry:
    name: str
    version: str
    date_text: str  # as printed: local time in the Mac's region format


def parse_history(text: str) -> list[HistoryEntry]:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not _HEADER.match(lines[0]) or not _RULE.match(lines[1]):
        raise ParseError("softwareupdate --history: no 'Display Name  Version  Date' header")
    version_column = lines[0].index("Version")
    entries = []
    for line in lines[2:]:
        match = _DATE_AT_END.search(line)
        if match is None:
            raise ParseError("softwareupdate --history: row without a date and time")
        rest = line[: match.start()].rstrip()
        if len(rest) > version_column and rest[version_column - 1] == " ":
            name, version = rest[:version_column].rstrip(), rest[version_column:].strip()
        else:  # a name of 50 characters or more pushes the version right
            name, version = rest, ""
        if not name:
            raise ParseError("softwareupdate --history: row without a name")
        entries.append(HistoryEntry(name, version, match["date"]))
    return entries


def is_os_or_security(entry: HistoryEntry) -> bool:
    """The module's rule for rows that count as an Apple OS or security install."""
    return entry.name.startswith(_OS_PREFIXES) or "Security" in entry.name


def _normalized(date_text: str) -> str:
    return re.sub(r",\s*", " ", date_text.strip(), count=1)


def _newest(texts: Iterable[str], order: str | None) -> datetime:
    return max(parse_local_datetime(text, order) for text in texts)


def newest_os_install(entries: list[HistoryEntry]) -> datetime | None:
    """When the newest counted row was installed (local time taken as UTC), None when no row
    counts. Raises ParseError when the day/month order is unknown and changes the answer."""
    counted = [_normalized(e.date_text) for e in entries if is_os_or_security(e)]
    if not counted:
        return None
    order = slash_order(_normalized(e.date_text) for e in entries)
    if order is None and any(_SLASHED.match(text) for text in counted):
        candidates = {_newest(counted, "dmy"), _newest(counted, "mdy")}
        if len(candidates) != 1:
            raise ParseError(
                "softwareupdate --history: dates could be day-first or month-first and the "
                "newest install differs between the two"
            )
        (newest,) = candidates
    else:
        newest = _newest(counted, order)
    return newest.replace(tzinfo=UTC)
