"""The fleet's standing per day: recorded by `serve` hourly, read by the dashboard's trend so
it need not judge the whole fleet as of each past week."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from zoneinfo import ZoneInfo

from devposture.agent.transport import open_channel, send_report
from devposture.collector.fleet_history import day_ended_by, week_ends
from devposture.collector.reports import fleet_rows
from devposture.collector.server import keep_fleet_days
from devposture.collector.store.base import to_us
from devposture.collector.store.fleet_marks import judging_key
from devposture.collector.web.views import Views
from devposture.policy import default_policy
from tests.conftest import EnrolledAgent, LiveCollector, make_report

BEIJING = ZoneInfo("Asia/Shanghai")  # the default policy's time zone: its days are the records'


def _report_firewall_off(agent: EnrolledAgent) -> None:
    with open_channel(agent.state, agent.enrollment) as channel:
        send_report(channel, make_report(agent.enrollment.device_id, firewall_enabled=False))


def test_a_recorded_day_holds_the_fleet_as_counted_now_and_is_replaced_within_the_day(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    policy, now = default_policy(), dt.datetime.now(dt.UTC)
    store = live_collector.store()
    try:
        store.fleet.record_fleet_day(policy, now)
        first = store.fleet.fleet_days()[now.astimezone(BEIJING).date().isoformat()]
        assert first["firewall"]["UNKNOWN"] == 1  # enrolled, never judged
        _report_firewall_off(agent)
        store.fleet.record_fleet_day(policy, now + dt.timedelta(minutes=1))
        (today,) = store.fleet.fleet_days().values()
        rows = {r["check"]: r for r in fleet_rows(store, policy, now, current=True)}
        assert today["firewall"]["GRACE"] == rows["firewall"]["grace"] == 1
        assert today["firewall"].get("UNKNOWN", 0) == 0
    finally:
        store.close()


def test_serve_records_today_at_start_then_counts_the_unrecorded_week_ends(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    stop = asyncio.Event()
    database = live_collector.config.database
    task = asyncio.run_coroutine_threadsafe(
        keep_fleet_days(live_collector._running, stop, every=60, database=database),
        live_collector._loop,
    )
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(BEIJING).date().isoformat()
    wanted = {today} | {day_ended_by(m, BEIJING) for m in week_ends(now, BEIJING)[:-1]}
    deadline = time.monotonic() + 20
    store = live_collector.store()
    try:
        while not wanted <= set(store.fleet.fleet_days()) and time.monotonic() < deadline:
            time.sleep(0.05)
        days = store.fleet.fleet_days()
        assert wanted <= set(days)
        # The device enrolled today: at every past week end the fleet had no device.
        last_week = days[day_ended_by(week_ends(now, BEIJING)[-2], BEIJING)]
        assert sum(last_week["firewall"].values()) == 0
        assert sum(days[today]["firewall"].values()) == 1
    finally:
        store.close()
        live_collector._loop.call_soon_threadsafe(stop.set)
        task.result(10)


def test_the_trend_reads_how_each_recorded_day_ended(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """A week whose end was recorded is read from the record; one without a record is a gap
    (the page never judges the history); with a record saying the device passed, last week
    reads 100 %."""
    policy, now = default_policy(), dt.datetime.now(dt.UTC)
    # This week's start, Monday 00:00 Beijing time (the default policy's zone).
    today = now.astimezone(BEIJING).date()
    monday = dt.datetime.combine(today - dt.timedelta(days=today.weekday()), dt.time(),
                                 tzinfo=BEIJING).astimezone(dt.UTC)  # fmt: skip
    sunday = day_ended_by(monday - dt.timedelta(weeks=1), BEIJING)

    def last_week() -> float | None:
        views = Views(live_collector.config)
        try:
            moments, series = views.trend_points(policy, now)
        finally:
            views.close()
        firewall = next(s for s in series if s.name == "firewall")
        return firewall.values[moments.index(monday - dt.timedelta(weeks=1))]

    assert last_week() is None
    store = live_collector.store()
    try:
        store._db.execute(
            "INSERT INTO fleet_days(day, check_id, state, devices, recorded_us)"
            " VALUES (?, 'firewall', 'PASS', 1, 0)",
            (sunday,),
        )
    finally:
        store.close()
    assert last_week() == 100.0
    # The week end's mark, counted at that very midnight, is read before the day's record.
    store = live_collector.store()
    try:
        store._db.execute(
            "INSERT INTO fleet_marks(at_us, judged_by, check_id, state, devices)"
            " VALUES (?, ?, 'firewall', 'FAIL', 1)",
            (to_us(monday - dt.timedelta(weeks=1)), judging_key(policy)),
        )
    finally:
        store.close()
    assert last_week() == 0.0
