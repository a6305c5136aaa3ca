"""The company's time zone: the policy's `time_zone`, an IANA name (`Asia/Shanghai` by
default), found in the OS's time zone database or, where the OS has none (Windows), in the
`tzdata` package.

Shared by the policy's validator (a name that is not a zone is refused with its line) and by
whoever shows or reads a time for a person (collector and agent), so that every one of them
resolves the name the same way. Storage stays UTC; this is only for people.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devposture.policy.cli_messages import BadValue

DEFAULT_TIME_ZONE = "Asia/Shanghai"
# Asia/Shanghai without a database is still exact as UTC+8: China has kept no daylight saving
# time since 1991. No other zone has such a stand-in.
_SHANGHAI = dt.timezone(dt.timedelta(hours=8), "CST")


class UnknownZone(BadValue):
    """The name is not a zone of the IANA time zone database (a ValueError, worded in the
    reader's language where a person reads it)."""


def zone_named(name: str) -> dt.tzinfo:
    """The zone `name`, or UnknownZone saying what to write instead."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name == DEFAULT_TIME_ZONE:
            return _SHANGHAI
        raise UnknownZone(
            '{name} is not a time zone name: write an IANA name such as "{zone}" or'
            ' "Europe/Berlin"',
            name=repr(name), zone=DEFAULT_TIME_ZONE,
        ) from None


def company_zone(name: str = "") -> dt.tzinfo:
    """The zone `name` (empty: none given), else Asia/Shanghai: never UTC, which is the time no
    employee lives in, for a name this machine cannot resolve."""
    try:
        return zone_named(name or DEFAULT_TIME_ZONE)
    except UnknownZone:
        return zone_named(DEFAULT_TIME_ZONE)
