"""Times in alerts as IT reads them: Beijing time (Asia/Shanghai), written the way each language
writes a date ("11月28日 10:00", "28 Nov 10:00").

The zone comes from the OS's time zone database; where it has none, Asia/Shanghai is still exact
as UTC+8 (China has kept no daylight saving time since 1991). Replace `ZONE_NAME`'s use by the
company's time zone setting once the policy has one.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ZONE_NAME = "Asia/Shanghai"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def zone() -> dt.tzinfo:
    try:
        return ZoneInfo(ZONE_NAME)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.timezone(dt.timedelta(hours=8), "CST")


def in_chinese(moment: dt.datetime, now: dt.datetime) -> str:
    """ "11月28日 10:00"; with the year ("2027年1月3日 10:00") when not `now`'s year."""
    local, year = moment.astimezone(zone()), now.astimezone(zone()).year
    head = f"{local.year}年" if local.year != year else ""
    return f"{head}{local.month}月{local.day}日 {local:%H:%M}"


def in_english(moment: dt.datetime, now: dt.datetime) -> str:
    """ "28 Nov 10:00"; with the year ("3 Jan 2027 10:00") when not `now`'s year."""
    local, year = moment.astimezone(zone()), now.astimezone(zone()).year
    tail = f" {local.year}" if local.year != year else ""
    return f"{local.day} {_MONTHS[local.month - 1]}{tail} {local:%H:%M}"
