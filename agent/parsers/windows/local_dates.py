"""Dates as Windows prints them: in the machine's culture, in local time.

PowerShell and WMI format dates with the current culture: "6/4/2024 8:06:27 AM" (en-US),
"2025/10/16 15:07:35" (zh-CN), "27/09/2019 12:00:00 a. m." (es), "16.10.2025 15:07:35" (de).
A slash date "a/b/yyyy" can be month-first or day-first, and neither the 24-hour clock nor an
AM/PM marker settles it (es-ES prints day-first with "a. m."). So the order is inferred from all
dates of one output together: a first field above 12 means day-first, a second field above 12
means month-first. When no date decides it, an English AM/PM marker means en-US (month-first);
otherwise the order is unknown and the dates are not read (a ParseError), never guessed.

The times are local wall-clock times; Windows does not print the offset. They are returned
naive; callers treat them as UTC, as the Linux mdatp parser does (off by at most the machine's
UTC offset, which the host layer does not report).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from agent.parsers.errors import ParseError

_YEAR_FIRST = re.compile(r"^(?P<y>\d{4})[/-](?P<m>\d{1,2})[/-](?P<d>\d{1,2})(?P<time>.*)$")
_DOTTED = re.compile(r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})(?P<time>.*)$")
_SLASHED = re.compile(r"^(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})(?P<time>.*)$")
_TIME = re.compile(
    r"^\s*(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ampm>AM|PM|a\. ?m\.|p\. ?m\.)?\s*$",
    re.IGNORECASE,
)
_ENGLISH_MARKER = re.compile(r"\b(AM|PM)\s*$")


def _time(text: str) -> tuple[int, int, int]:
    if not text.strip():
        return 0, 0, 0
    match = _TIME.match(text)
    if match is None:
        raise ParseError("date: time of day not understood")
    hour, minute = int(match.group("h")), int(match.group("mi"))
    second = int(match.group("s") or 0)
    marker = (match.group("ampm") or "").lower().replace(" ", "")
    if marker:
        if not 1 <= hour <= 12:
            raise ParseError("date: 12-hour time out of range")
        hour = hour % 12 + (12 if marker in ("pm", "p.m.") else 0)
    return hour, minute, second


def slash_order(values: Iterable[str]) -> str | None:
    """ "dmy" or "mdy" for the slash dates among `values`, or None when they do not tell.
    Raises ParseError when they contradict each other."""
    day_first = month_first = english = False
    for value in values:
        match = _SLASHED.match(value.strip())
        if match is None:
            continue
        a, b = int(match.group("a")), int(match.group("b"))
        day_first |= a > 12
        month_first |= b > 12
        english |= _ENGLISH_MARKER.search(value.strip()) is not None
    if day_first and month_first:
        raise ParseError("dates: both day-first and month-first forms in one output")
    if day_first:
        return "dmy"
    if month_first or english:
        return "mdy"
    return None


def parse_local_datetime(value: str, order: str | None) -> datetime:
    """One date (with optional time) as a naive local datetime. `order` comes from
    `slash_order` over the whole output. Raises ParseError on anything else."""
    text = value.strip()
    year_first = _YEAR_FIRST.match(text)
    dotted = _DOTTED.match(text)
    slashed = _SLASHED.match(text)
    if year_first:
        y, m, d = (int(year_first.group(k)) for k in ("y", "m", "d"))
        rest = year_first.group("time")
    elif dotted:
        y, m, d = (int(dotted.group(k)) for k in ("y", "m", "d"))
        rest = dotted.group("time")
    elif slashed:
        if order is None:
            raise ParseError("date: cannot tell day-first from month-first")
        a, b, y = (int(slashed.group(k)) for k in ("a", "b", "y"))
        m, d = (b, a) if order == "dmy" else (a, b)
        rest = slashed.group("time")
    else:
        raise ParseError("date: format not understood")
    hour, minute, second = _time(rest)
    try:
        return datetime(y, m, d, hour, minute, second)
    except ValueError as exc:
        raise ParseError("date: not a calendar date") from exc
