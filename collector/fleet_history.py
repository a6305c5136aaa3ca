"""The fleet's standing at the end of each recent week: the dashboard's trend.

`serve` records how each day stands (`Store.record_fleet_day`, at start and hourly), so a trend
point is a read of one record. A week that ended before the records began (a collector
upgraded with its history, or one that was stopped over a weekend) is counted once from the
state history (`count_week_ends`) when `serve` starts, on a connection of its own: counting
a past moment over 100,000 devices takes seconds (bench/fleet_report.py), which no page load
should wait for. The dashboard shows such a week as a gap until then.

`serve` also counts each past local midnight once, the newest first (`mark_days`), and keeps
it as that moment's mark (store/fleet_marks.py): `report fleet --as-of DATE` then reads a
count instead of judging the history. Each device group's midnights likewise, for `report
fleet --group G --as-of DATE`.

Days and weeks are the company's (the policy's time zone): a week ends at Monday 00:00 local
time, and a day's record is the local day's, so a Beijing trend does not close its weeks at
08:00 on Monday.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable

from devposture.collector.clock import utcnow
from devposture.collector.company_time import local_midnight, zone_of
from devposture.collector.store import DatabaseTarget, Store
from devposture.collector.store.coordination import Lease
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


# Midnights counted per hourly run at most (about a second each over 100,000 devices), so a
# collector upgraded with a year of history marks it over a few hours of background work.
MARKS_PER_RUN = 48
# A midnight is marked once it is this old: the reports collected before it and delivered
# just after are in by then (a later one voids the mark, which the next run counts again).
MARK_AFTER = dt.timedelta(hours=1)


def midnights(now: dt.datetime, zone: dt.tzinfo, since: dt.datetime) -> list[dt.datetime]:
    """The local midnights from `since` to an hour ago, the newest first."""
    last = (now - MARK_AFTER).astimezone(zone).date()
    first = since.astimezone(zone).date()
    days = (last - first).days
    found = [local_midnight(last - dt.timedelta(days=k), zone) for k in range(days + 1)]
    return [m for m in found if since <= m <= now - MARK_AFTER]


def mark_days(
    database: DatabaseTarget,
    policy: Policy,
    now: dt.datetime,
    should_stop: Callable[[], bool] = lambda: False,
    most: int = MARKS_PER_RUN,
    *,
    lease: Lease | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> int:
    """Count the fleet at the past local midnights that have no mark under this policy (the
    newest first, back to the first enrollment or the policy's retention, `most` of them) on
    a connection of its own, and keep each; then each device group's, as much again (a
    group's count weighs its share of the fleet). How many were kept. Under `lease` (`serve`'s
    fleet-day lease, by `clock`), each mark is kept only while the lease is still this
    collector's (LeaseLost otherwise)."""
    store = Store.open(database)
    try:
        if lease is not None:
            with store.coordination.under(lease, clock):
                return _mark(store, policy, now, should_stop, most)
        return _mark(store, policy, now, should_stop, most)
    finally:
        store.close()


def _mark(
    store: Store, policy: Policy, now: dt.datetime, should_stop: Callable[[], bool], most: int
) -> int:
    """`mark_days` on an open store."""
    first = store.fleet.first_enrolled()
    if first is None:
        return 0
    since = max(first, now - dt.timedelta(days=policy.retention_days))
    every = midnights(now, zone_of(policy), since)
    kept = 0
    for moment in store.fleet.unmarked(policy, every)[:most]:
        if should_stop():
            return kept
        kept += store.fleet.mark(policy, moment)
    return kept + _mark_groups(store, policy, every, should_stop, most)


def _mark_groups(
    store: Store, policy: Policy, every: list[dt.datetime], should_stop: Callable[[], bool],
    most: int,
) -> int:  # fmt: skip
    """Each group's unmarked midnights, the newest first across the groups, until `most`
    whole fleets' worth of devices were counted."""
    sizes = store.identity.device_groups()
    fleet = max(1, store.reports.device_count())
    unmarked = store.fleet.unmarked
    wanted = sorted(
        ((moment, group) for group in sizes for moment in unmarked(policy, every, group)),
        key=lambda pair: (-pair[0].timestamp(), pair[1]),
    )  # fmt: skip
    kept, spent = 0, 0.0
    for moment, group in wanted:
        if should_stop() or spent >= most:
            break
        kept += store.fleet.mark(policy, moment, group)
        spent += sizes[group] / fleet
    return kept


__all__ = [
    "MARKS_PER_RUN", "WEEKS", "count_week_ends", "day_ended_by", "mark_days", "midnights",
    "missing_week_ends", "week_ends",
]  # fmt: skip
