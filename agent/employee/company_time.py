"""Times as the company reads them: in its time zone (Asia/Shanghai unless the collector says
otherwise), written the way each language writes a date ("12月3日 16:38", "3 Dec 16:38").

The zone comes from the OS's time zone database through zoneinfo, or from the tzdata package
where the OS has none (Windows). Should neither be there, Asia/Shanghai is still exact as
UTC+8: China has kept no daylight saving time since 1991. Any other zone that cannot be found
falls back to the company's default, never to UTC, which is the time no employee lives in.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devposture.agent.employee.language import Lang

DEFAULT_ZONE = "Asia/Shanghai"
_SHANGHAI_OFFSET = dt.timezone(dt.timedelta(hours=8), "CST")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def company_zone(name: str = "") -> dt.tzinfo:
    """The zone `name` (the collector's setting; empty for none), else Asia/Shanghai."""
    for candidate in (name, DEFAULT_ZONE):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return _SHANGHAI_OFFSET


def moment_text(moment: dt.datetime, lang: Lang, zone: dt.tzinfo, now: dt.datetime) -> str:
    """Day, month and time in `zone`; the year only when it is not this year there."""
    local = moment.astimezone(zone)
    year = local.year != now.astimezone(zone).year
    if lang == "zh":
        return f"{f'{local.year}年' if year else ''}{local.month}月{local.day}日 {local:%H:%M}"
    when = f"{local.day} {_MONTHS_EN[local.month - 1]}{f' {local.year}' if year else ''}"
    return f"{when} {local:%H:%M}"
