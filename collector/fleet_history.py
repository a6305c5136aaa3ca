"""The fleet's standing at the end of each recent week: the dashboard's trend.

`serve` records how each day stands (`Store.record_fleet_day`, at start and hourly), so a trend
point is a read of one record. A week that ended before the records began (a collector
upgraded with its history, or one that was stopped over a weekend) is counted once from the
state history (`count_week_ends`) when `serve` starts, on a connection of its own: counting
a past moment over 100,000 devices takes seconds (bench/fleet_report.py), which no page load
should wait for. The dashboard shows such a week as a gap until then.

Days and weeks are the company's (the policy's time zone): a week ends at Monday 00:00 local
time, and a day's record is the local day's, so a Beijing trend does not close its weeks at
08:00 on Monday.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

from devposture.collector.company_time import local_midnight, zone_of
from devposture.collector.store import DatabaseTarget, Store
from devposture.policy import Policy

log = logging.getLogger(__name__)

WEEKS = 8


def week_ends(at: dt.datetime, zone: dt.tzinfo, weeks: int = WEEKS) -> list[dt.datetime]:
    """The trend's moments: the end (Monday 00:00 in `zone`, in UTC) of each of the last
    `weeks - 1` weeks, the week that just ended included, oldest first, then `at` itself.
    Counted in local dates, so a week across a DST change still ends at local midnight."""
    today = at.astimezone(zone).date()
    monday = today - dt.timedelta(days=today.weekday())
    ends = [local_midnight(monday - dt.timedelta(weeks=k), zone) for k in range(weeks - 2, -1, -1)]
    return [*ends, at.astimezone(dt.UTC)]


def day_ended_by(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """The local day (YYYY-MM-DD in `zone`) whose record holds the fleet as it stood at
    `moment`, a local midnight: the day that ended then."""
    return (moment - dt.timedelta(microseconds=1)).astimezone(zone).date().isoformat()


def missing_week_ends(
    recorded: Iterable[str], at: dt.datetime, zone: dt.tzinfo
) -> list[dt.datetime]:
    """The past week ends of the trend that have no record of their day."""
    days = set(recorded)
    return [m for m in week_ends(at, zone)[:-1] if day_ended_by(m, zone) not in days]


def count_week_ends(
    database: DatabaseTarget,
    policy: Policy,
    moments: list[dt.datetime],
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, dict[str, dict[str, int]]]:
    """day -> check -> state -> devices for each of `moments`, counted from the history on a
    read-only connection of its own (SQLite works without holding the GIL meanwhile); the
    moments counted before `should_stop` said so."""
    reader = Store.open_reader(database)
    zone = zone_of(policy)
    counted: dict[str, dict[str, dict[str, int]]] = {}
    try:
        for moment in moments:
            if should_stop():
                break
            counted[day_ended_by(moment, zone)] = reader.fleet.fleet_figures_as_of(policy, moment)
        return counted
    finally:
        reader.close()


__all__ = ["WEEKS", "count_week_ends", "day_ended_by", "missing_week_ends", "week_ends"]
