"""Times in alerts as IT reads them: in the company's time zone (the policy's `time_zone`,
Asia/Shanghai by default), written the way each language writes a date ("11月28日 10:00",
"28 Nov 10:00"), under a heading that names the zone ("北京时间" for Asia/Shanghai).

The zone is resolved as everywhere else (`devposture.policy.time_zone.company_zone`): the OS's
database or tzdata, Asia/Shanghai exact as UTC+8 even without either.
"""

from __future__ import annotations

import datetime as dt

from devposture.policy.time_zone import DEFAULT_TIME_ZONE, company_zone

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def zone_words(name: str) -> tuple[str, str]:
    """The zone as a heading names it: ("北京时间", "Beijing time") for Asia/Shanghai, else
    ("Europe/Berlin 时间", "Europe/Berlin time")."""
    if name == DEFAULT_TIME_ZONE:
        return "北京时间", "Beijing time"
    return f"{name} 时间", f"{name} time"


def in_chinese(moment: dt.datetime, now: dt.datetime, zone_name: str) -> str:
    """ "11月28日 10:00"; with the year ("2027年1月3日 10:00") when not `now`'s year."""
    zone = company_zone(zone_name)
    local = moment.astimezone(zone)
    return f"{_day(local.date(), now.astimezone(zone).year, 0)} {local:%H:%M}"


def in_english(moment: dt.datetime, now: dt.datetime, zone_name: str) -> str:
    """ "28 Nov 10:00"; with the year ("3 Jan 2027 10:00") when not `now`'s year."""
    zone = company_zone(zone_name)
    local = moment.astimezone(zone)
    return f"{_day(local.date(), now.astimezone(zone).year, 1)} {local:%H:%M}"


def last_day(moment: dt.datetime, now: dt.datetime, zone_name: str, lang: int) -> str:
    """When something that runs until `moment` (a waiver) ends, as its last day in Chinese
    (`lang` 0, "12月31日") or English (1, "31 Dec"), with the year when not `now`'s year.
    A waiver given to a date (`--expires 2026-12-31`) ends at the next day's local midnight:
    read as the day it covers last, as IT typed it, not the day after. One ending at another
    time of day is told with that time ("12月31日 18:00")."""
    zone = company_zone(zone_name)
    local, year = moment.astimezone(zone), now.astimezone(zone).year
    midnight = local.time() == dt.time(0)
    day = local.date() - dt.timedelta(days=1) if midnight else local.date()
    at = "" if midnight else f" {local:%H:%M}"
    return _day(day, year, lang) + at


def _day(day: dt.date, year: int, lang: int) -> str:
    """A day in Chinese (`lang` 0, "11月28日") or English (1, "28 Nov"), with its year when it
    is not `year`."""
    if lang == 0:
        head = f"{day.year}年" if day.year != year else ""
        return f"{head}{day.month}月{day.day}日"
    tail = f" {day.year}" if day.year != year else ""
    return f"{day.day} {_MONTHS[day.month - 1]}{tail}"
