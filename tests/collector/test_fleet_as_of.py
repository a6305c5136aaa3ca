"""The fleet as of a past moment, counted in SQL from the history
(`store.fleet.fleet_figures_as_of`), equals judging every device as of then through
`compliance.standings`, at moments before, during and after the waivers, the failures' grace
periods and the devices' silences of `tests.collector.mixed_fleet`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from devposture.collector.fleet_history import (
    WEEKS,
    count_week_ends,
    day_ended_by,
    missing_week_ends,
    week_ends,
)
from devposture.collector.reports import fleet_rows
from devposture.collector.store import Store
from devposture.policy import Policy
from tests.collector.mixed_fleet import NOW, mixed_fleet
from tests.databases import fresh_database

BEIJING = ZoneInfo("Asia/Shanghai")  # the default policy's time zone
MOMENTS = [NOW - dt.timedelta(hours=h) for h in (0, 1, 5, 29, 31, 50, 100, 24 * 6, 24 * 19)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Policy]]:
    store, policy = mixed_fleet(fresh_database(tmp_path_factory.mktemp("asof")))
    yield store, policy
    store.close()


@pytest.mark.parametrize(
    "at", MOMENTS, ids=lambda at: f"now-{(NOW - at) / dt.timedelta(hours=1):g}h"
)
def test_the_fleet_counted_in_sql_as_of_a_moment_equals_the_fleet_judged_then(
    fleet: tuple[Store, Policy], at: dt.datetime
) -> None:
    store, policy = fleet
    assert fleet_rows(store, policy, at) == fleet_rows(store, policy, at, exact=True)


def test_the_moments_cover_every_state(fleet: tuple[Store, Policy]) -> None:
    """Else the comparison above proves little."""
    store, policy = fleet
    seen = {
        state
        for at in MOMENTS
        for row in fleet_rows(store, policy, at, exact=True)
        for state in ("pass", "grace", "fail", "unknown", "exempt", "stale")
        if row[state]
    }
    assert seen == {"pass", "grace", "fail", "unknown", "exempt", "stale"}


def test_before_any_enrollment_the_fleet_is_empty(fleet: tuple[Store, Policy]) -> None:
    store, policy = fleet
    rows = fleet_rows(store, policy, NOW - dt.timedelta(days=30))
    assert all(row["devices"] == 0 for row in rows)


def test_week_ends_without_a_record_are_counted_from_the_history_and_kept(
    fleet: tuple[Store, Policy],
) -> None:
    """What `serve` does at start for the trend: the past week ends with no record of their
    day are counted as of then, equal to judging the fleet then, and kept as those days'."""
    store, policy = fleet
    assert store.fleet.fleet_days() == {}
    moments = missing_week_ends(store.fleet.fleet_days(), NOW, BEIJING)
    assert moments == week_ends(NOW, BEIJING)[:-1] and len(moments) == WEEKS - 1
    counted = count_week_ends(store.target, policy, moments)
    store.fleet.keep_fleet_days(counted, NOW)
    try:
        kept = store.fleet.fleet_days()
        for moment in moments:
            exact = {r["check"]: r for r in fleet_rows(store, policy, moment, exact=True)}
            for check_id, per_state in kept[day_ended_by(moment, BEIJING)].items():
                assert per_state["PASS"] == exact[check_id]["pass"], (moment, check_id)
                assert sum(per_state.values()) == exact[check_id]["devices"]
        assert missing_week_ends(kept, NOW, BEIJING) == []
    finally:
        store._db.execute("DELETE FROM fleet_days")  # the module's other tests see none


def test_a_week_end_is_the_local_monday_midnight_and_names_the_sunday_it_ended() -> None:
    at = dt.datetime(2026, 12, 2, 15, 30, tzinfo=dt.UTC)  # a Wednesday
    ends = week_ends(at, dt.UTC, 3)
    assert ends == [
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC), dt.datetime(2026, 11, 30, tzinfo=dt.UTC), at
    ]  # fmt: skip
    assert day_ended_by(ends[1], dt.UTC) == "2026-11-29"
    # Beijing time: Monday 00:00 is Sunday 16:00 UTC.
    ends = week_ends(at, BEIJING, 3)
    assert ends[:2] == [dt.datetime(2026, 11, 22, 16, tzinfo=dt.UTC),
                        dt.datetime(2026, 11, 29, 16, tzinfo=dt.UTC)]  # fmt: skip
    assert day_ended_by(ends[1], BEIJING) == "2026-11-29"
    # Late on Sunday UTC it is already Monday in Beijing: that week has ended there.
    assert week_ends(dt.datetime(2026, 11, 29, 17, tzinfo=dt.UTC), BEIJING, 2)[0] == ends[1]
    # Berlin: the week across the end of summer time (25 October) is 169 hours long, and
    # each end is a local midnight.
    berlin = ZoneInfo("Europe/Berlin")
    ends = week_ends(dt.datetime(2026, 10, 28, tzinfo=dt.UTC), berlin, 3)
    assert ends[:2] == [dt.datetime(2026, 10, 18, 22, tzinfo=dt.UTC),
                        dt.datetime(2026, 10, 25, 23, tzinfo=dt.UTC)]  # fmt: skip
    assert ends[1] - ends[0] == dt.timedelta(hours=169)
    assert [day_ended_by(e, berlin) for e in ends[:2]] == ["2026-10-18", "2026-10-25"]


def test_the_fleet_counted_now_from_the_verdicts_equals_the_fleet_judged_now(
    fleet: tuple[Store, Policy],
) -> None:
    """The count of now (`fleet_figures`: the verdicts' index less the silent devices'
    verdicts, looked up device by device) on a fleet with silent devices and waivers."""
    store, policy = fleet
    rows = fleet_rows(store, policy, NOW, current=True)
    assert rows == fleet_rows(store, policy, NOW, exact=True)
    assert all(row["stale"] for row in rows) and any(row["exempt"] for row in rows)
