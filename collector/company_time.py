"""Times for people, in the company's time zone (the policy's `time_zone`): stored UTC shown as
local time with its offset, and dates and times people type read as local.

One module so that every place a person meets a time (the CLI's sentences and rows, the
dashboard, the reasons of a standing) writes it the same way and reads a typed date the same
way; an auditor comparing a CLI listing with the dashboard must not have to convert.

* `shown`: "2026-12-03 16:38 (UTC+08:00)", for sentences and pages: the offset in the text, so
  a reader abroad knows which clock it is, and nothing a Chinese reader must translate. A
  text whose `str` is the English, worded with the sentence it is put in: in Chinese its
  brackets are full-width, "2026-12-03 16:38（UTC+08:00）" (`devposture.policy.moments`);
* `stamp`: "2026-12-03T16:38:00+08:00", for rows (JSON, CSV, XLSX, tables): local, and still
  an ISO time a program reads back exactly;
* `typed`: a date or time as typed. A bare DATE is that local day's midnight (`end_of_day`: the
  next local midnight, so `--expires 2026-12-31` lasts all of the 31st); a time without an
  offset is local wall-clock time; an explicit offset or `Z` is honoured as typed.
"""

from __future__ import annotations

import datetime as dt
import re

from devposture.policy import Policy
from devposture.policy.cli_messages import BadValue, Told, said
from devposture.policy.moments import moment as moment_in
from devposture.policy.moments import offset_label
from devposture.policy.time_zone import company_zone

__all__ = ["NotATime", "local_midnight", "offset_label", "shown", "stamp", "typed", "zone_of"]
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# The years a typed date may name: any report, waiver or period lies within them, and a date
# beyond them (0001-01-01, 9999-12-31) only overflowed where it was used.
FIRST_YEAR, LAST_YEAR = 1970, 2199


class NotATime(BadValue):
    """The text is not a date or time a person may type; the message says what is (worded
    in the reader's language: `BadValue`)."""


def zone_of(policy: Policy | None) -> dt.tzinfo:
    """The policy's zone (Asia/Shanghai without a policy)."""
    return company_zone(policy.time_zone if policy is not None else "")


def shown(moment: dt.datetime, zone: dt.tzinfo) -> Told:
    """ "2026-12-03 16:38 (UTC+08:00)": a moment as a person reads it, in the language of the
    sentence it is put in (a text whose `str` is the English, `moments.moment`)."""
    return moment_in(moment, zone)


def stamp(moment: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    """ "2026-12-03T16:38:00+08:00" (None: no moment): a row's time, local and exact."""
    return None if moment is None else moment.astimezone(zone).isoformat(timespec="seconds")


def local_midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    """The moment `day` begins in `zone` (in UTC). Where a zone's clocks jump at midnight, the
    first moment of the day that exists."""
    naive = dt.datetime.combine(day, dt.time())
    return _existing(naive, zone) or naive.replace(tzinfo=zone).astimezone(dt.UTC)


def _existing(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime | None:
    """`naive` as a moment in `zone` (in UTC), or None when that wall-clock time never happens
    there (the hour a DST zone skips). Of a time that happens twice, the first."""
    moment = naive.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    return moment if moment.astimezone(zone).replace(tzinfo=None) == naive else None


def typed(text: str, zone: dt.tzinfo, *, end_of_day: bool = False) -> dt.datetime:
    """The moment a person meant by `text`, in UTC (see the module's docstring)."""
    text = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise NotATime(
            "{text} is not a date or time: use {forms} (a date without a zone is a day in the"
            " company's time zone)",
            text=repr(text),
            # The forms worded too: a Chinese line read "… 2026-11-01T09:30 or …".
            forms=said("2026-11-01, 2026-11-01T09:30 or 2026-11-01T09:30+08:00"),
        ) from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise NotATime(
            "{text} is outside the dates devposture keeps: give one from {first} to {last}",
            text=repr(text), first=f"{FIRST_YEAR}-01-01", last=f"{LAST_YEAR}-12-31",
        )
    if parsed.tzinfo is not None:
        return parsed.astimezone(dt.UTC)
    if _BARE_DATE.fullmatch(text):
        day = parsed.date() + dt.timedelta(days=1 if end_of_day else 0)
        return local_midnight(day, zone)
    moment = _existing(parsed, zone)
    if moment is None:
        raise NotATime(
            "{text} does not exist in the company's time zone (the clocks skip that hour):"
            " give a time outside it, or an offset such as {example}",
            text=repr(text), example=f"{text}+01:00",
        )
    return moment
