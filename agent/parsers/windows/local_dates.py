"""Dates as Windows prints them: in the machine's culture, in local time.

PowerShell formats a DateTime with the current culture's ShortDatePattern and LongTimePattern:
"6/4/2024 8:06:27 AM" (en-US), "18-10-2022 09:18:29 AM" (en-IN), "16.10.2025 15:07:35" (de-DE),
"2025/10/16 15:07:35" (zh-CN), "27/09/2019 12:00:00 a. m." (es). "02-10-2023 12:11:37 PM" is
2 October on an en-IN machine and would be 10 February read the US way; no rule over the digits
tells which. So the probe prints the machine's own patterns in the same PowerShell run as the
data ((Get-Culture).DateTimeFormat, read here by `date_format`) and every date is read with them
(agent.parsers.windows.dotnet_pattern). Without the patterns a Windows date is not read.

The times are local wall-clock times. `Get-TimeZone`, printed in the same run, gives the zone's
standard offset (BaseUtcOffset) and whether it keeps daylight saving time. `to_utc` subtracts
that offset: exact where the zone has no daylight saving time (China, India, Japan); in a zone
that has it, a time in the summer period comes out one DST shift (usually an hour) late, because
the printout does not say when the shift applies. Without the zone the local time is taken as
UTC, as before, off by at most the machine's UTC offset.

`slash_order` and `parse_local_datetime` read numeric dates where no pattern is printed at all
(macOS `softwareupdate --history`): the order of day and month is deduced from the dates of one
output together (a first field above 12 means day first, a second above 12 month first), and
a date is refused (ParseError) when nothing decides it, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from devposture.agent.parsers.errors import ParseError
from devposture.agent.parsers.windows.dotnet_pattern import Designators, compile_pattern
from devposture.agent.parsers.windows.listformat import Record, parse_bool

# --- the machine's own patterns ------------------------------------------------------------


@dataclass(frozen=True)
class DateFormat:
    """What (Get-Culture).DateTimeFormat says about printing a DateTime."""

    short_date: str
    long_time: str
    designators: Designators
    date_separator: str
    time_separator: str

    def read(self, value: str) -> datetime:
        """A DateTime as PowerShell prints it ("G": short date, a space, long time), as a naive
        local datetime. Raises ParseError when `value` does not fit the machine's patterns."""
        pattern = f"{self.short_date} {self.long_time}"
        separators = (self.date_separator, self.time_separator)
        return compile_pattern(pattern, self.designators, *separators).read(value)


def is_date_format(record: Record) -> bool:
    return "ShortDatePattern" in record and "LongTimePattern" in record


def date_format(records: Sequence[Record]) -> DateFormat | None:
    """The culture's patterns from a `(Get-Culture).DateTimeFormat` printout among `records`,
    or None when none was printed. A designator line missing from the printout is unknown (None),
    an empty one is a culture without AM/PM (ru-RU, fr-FR)."""
    found = next((r for r in records if is_date_format(r)), None)
    if found is None:
        return None
    return DateFormat(
        short_date=found["ShortDatePattern"],
        long_time=found["LongTimePattern"],
        designators=Designators(found.get("AMDesignator"), found.get("PMDesignator")),
        date_separator=found.get("DateSeparator") or "/",
        time_separator=found.get("TimeSeparator") or ":",
    )


# --- the machine's time zone ---------------------------------------------------------------

_OFFSET = re.compile(r"^(?P<sign>-)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})$")


@dataclass(frozen=True)
class LocalZone:
    """What `Get-TimeZone` says: the zone's id, standard offset and whether it keeps DST."""

    zone_id: str
    base_offset: timedelta
    observes_dst: bool


def is_zone(record: Record) -> bool:
    return "BaseUtcOffset" in record and "SupportsDaylightSavingTime" in record


def local_zone(records: Sequence[Record]) -> LocalZone | None:
    """The zone from a `Get-TimeZone` printout among `records`, or None when none was printed.
    Raises ParseError on an offset or flag it does not understand."""
    found = next((r for r in records if is_zone(r)), None)
    if found is None:
        return None
    match = _OFFSET.match(found["BaseUtcOffset"])
    observes_dst = parse_bool(found, "SupportsDaylightSavingTime")
    if match is None or observes_dst is None:
        raise ParseError("Get-TimeZone: BaseUtcOffset or SupportsDaylightSavingTime not understood")
    offset = timedelta(hours=int(match["h"]), minutes=int(match["m"]), seconds=int(match["s"]))
    return LocalZone(found.get("Id", ""), -offset if match["sign"] else offset, observes_dst)


def to_utc(local: datetime, zone: LocalZone | None) -> datetime:
    """`local` (naive, the machine's wall clock) as an aware UTC datetime: minus the zone's
    standard offset, or taken as UTC when the zone is unknown (see the module docstring)."""
    if zone is None:
        return local.replace(tzinfo=UTC)
    return (local - zone.base_offset).replace(tzinfo=UTC)


# --- numeric dates without a printed pattern (macOS) ---------------------------------------

_YEAR_FIRST = re.compile(r"^(?P<y>\d{4})[/.-](?P<m>\d{1,2})[/.-](?P<d>\d{1,2})(?P<time>.*)$")
_NUMERIC = re.compile(
    r"^(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})(?P<time>.*)$"
)
_TIME = re.compile(
    r"^\s*(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ampm>AM|PM|a\. ?m\.|p\. ?m\.)?\s*$",
    re.IGNORECASE,
)


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
    """ "dmy" or "mdy" for the day-month-year dates among `values` ("a/b/yyyy", "a-b-yyyy",
    "a.b.yyyy"), or None when no value tells. Raises ParseError when they contradict each
    other. An AM/PM marker tells nothing: en-IN and en-AU print day first with one."""
    day_first = month_first = False
    for value in values:
        match = _NUMERIC.match(value.strip())
        if match is None:
            continue
        day_first |= int(match.group("a")) > 12
        month_first |= int(match.group("b")) > 12
    if day_first and month_first:
        raise ParseError("dates: both day-first and month-first forms in one output")
    if day_first:
        return "dmy"
    if month_first:
        return "mdy"
    return None


def parse_local_datetime(value: str, order: str | None) -> datetime:
    """One date (with optional time) as a naive local datetime. `order` comes from
    `slash_order` over the whole output; when it is None the value must tell by itself.
    Raises ParseError on anything else."""
    text = value.strip()
    year_first = _YEAR_FIRST.match(text)
    numeric = _NUMERIC.match(text)
    if year_first:
        y, m, d = (int(year_first.group(k)) for k in ("y", "m", "d"))
        rest = year_first.group("time")
    elif numeric:
        order = order or slash_order([text])
        if order is None:
            raise ParseError("date: cannot tell day-first from month-first")
        a, b, y = (int(numeric.group(k)) for k in ("a", "b", "y"))
        m, d = (b, a) if order == "dmy" else (a, b)
        rest = numeric.group("time")
    else:
        raise ParseError("date: format not understood")
    hour, minute, second = _time(rest)
    try:
        return datetime(y, m, d, hour, minute, second)
    except ValueError as exc:
        raise ParseError("date: not a calendar date") from exc
