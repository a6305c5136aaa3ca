"""Times as the company reads them: in its time zone (Asia/Shanghai unless the collector says
otherwise), written the way each language writes a date ("12月3日 16:38", "3 Dec 16:38").

The zone is resolved as the policy's `time_zone` setting is (`devposture.policy.time_zone`):
the OS's time zone database, or the tzdata package where the OS has none (Windows), with
Asia/Shanghai exact as UTC+8 even without either, and never UTC for a name that cannot be found.
"""

from __future__ import annotations

import datetime as dt

from devposture.agent.employee.language import Lang
from devposture.policy.moments import moment as moment_in
from devposture.policy.time_zone import company_zone

__all__ = ["company_zone", "moment_text", "stamp"]
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def moment_text(moment: dt.datetime, lang: Lang, zone: dt.tzinfo, now: dt.datetime) -> str:
    """Day, month and time in `zone`; the year only when it is not this year there."""
    local = moment.astimezone(zone)
    year = local.year != now.astimezone(zone).year
    if lang == "zh":
        return f"{f'{local.year}年' if year else ''}{local.month}月{local.day}日 {local:%H:%M}"
    when = f"{local.day} {_MONTHS_EN[local.month - 1]}{f' {local.year}' if year else ''}"
    return f"{when} {local:%H:%M}"


def stamp(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """ "2026-12-19 10:14 (UTC+08:00)": a moment in a sentence (a certificate's end, the next
    attempt), in `zone` with its offset, as the collector's command line writes one: the
    English text, worded in the sentence's language (in Chinese "2026-12-19 10:14（UTC+08:00）",
    `devposture.policy.moments`)."""
    return moment_in(moment, zone)
