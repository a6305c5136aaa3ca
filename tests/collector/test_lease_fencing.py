"""Several collectors on one database: a collector paused past its lease (SIGSTOP, a frozen
virtual machine, a long GC, a stalled disk) must not write as if it still held it, and a long
task keeps its lease by working. Two collectors here are two stores on one database, each with
its own connection (on SQLite, what the processes of `serve --workers` share), each with its
own clock given as data.

A pause is made with the engine's own trace (`Freeze`): the paused collector's store thread
stops at the statement named, outside any transaction, until the test lets it go on; what it
read before stays what it writes from."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from devposture.collector import server as collector_server
from devposture.collector.company_time import zone_of
from devposture.collector.config import CollectorConfig
from devposture.collector.datadir import initialize
from devposture.collector.fleet_history import mark_days, midnights
from devposture.collector.intake import record_of
from devposture.collector.service import CollectorService
from devposture.collector.store import CheckResult, DeviceRecord, Store
from devposture.collector.store.coordination import Lease, LeaseLost
from devposture.collector.store.policies import PolicyVersion
from devposture.collector.tokens import new_token
from devposture.collector.trust import Trust
from devposture.policy import Policy, parse_policy
from devposture.policy.checks import evaluate
from tests.collector.mixed_fleet import NOW, mixed_fleet
from tests.collector.test_coordination_faults import _without_firewall
from tests.databases import collector_database, fresh_database
from tests.e2e.fleet import posture_report
from tests.waiting import wait_until

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)  # 16:00 in Beijing: one local day
HOUR = dt.timedelta(hours=1)
REJUDGE = collector_server.REJUDGE_LEASE
R = TypeVar("R")


class Freeze:
    """A trace callback that holds its thread at the first statement starting with `at` seen
    after one containing `after` (`times` such statements later): a collector paused between
    what it read and its next write, before that write's transaction began."""

    def __init__(self, after: str, at: str = "BEGIN", times: int = 1) -> None:
        self.after, self.at, self.left = after, at, times
        self.seen = False
        self.frozen, self.thawed = threading.Event(), threading.Event()

    def __call__(self, sql: str) -> None:
        if not self.seen:
            self.seen = self.after in sql
            return
        if self.frozen.is_set() or not sql.startswith(self.at):
            return
        self.left -= 1
        if self.left == 0:
            self.frozen.set()
            self.thawed.wait(120)  # let go by the test, or by its end when it failed first

    async def reached(self) -> None:
        """Wait until the collector is paused there."""
        assert await asyncio.to_thread(self.frozen.wait, 60), f"never paused at {self.at!r}"


@dataclass
class Collector:
    """What the server's tasks of one collector use: its store and its service."""

    store: Store
    service: CollectorService


def _served(collector: Collector) -> collector_server.RunningServer:
    """As the server's tasks take it: they use nothing else of a running server."""
    return collector  # type: ignore[return-value]


def _folder(tmp_path: Path) -> CollectorConfig:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    return config


def _collector(
    config: CollectorConfig, store: Store, policy: Policy, clock: Callable[[], dt.datetime]
) -> Collector:
    service = CollectorService(store, Trust(config), dt.timedelta(days=14), policy,
                               network_hash_key=b"k" * 32, clock=clock)  # fmt: skip
    return Collector(store, service)


def _report(store: Store, device_id: str, at: dt.datetime, *, firewall: bool = True) -> None:
    """A device's real report collected at `at`, stored with its verdicts (enrolled first)."""
    if not store.reports.device_exists(device_id):
        token = new_token()
        store.identity.add_token(token, T0 - HOUR, T0 + HOUR, uses=1)
        store.identity.enroll(token, T0 - HOUR,
                              DeviceRecord(device_id, "01", T0 + 90 * 24 * HOUR))  # fmt: skip
    report = posture_report(device_id, at)
    report.firewall.enabled = firewall
    record = record_of(report, device_id, at, dt.timedelta(0))
    results = [CheckResult(c.check_id, v.state.value, v.reason) for c, v in evaluate(report, at)]
    store.reports.store_reports([(record, results)])


def _checks_judged(store: Store, device_id: str) -> set[str]:
    return {r.check_id for r in store.reports.device_results()
            if r.device_id == device_id and r.check_id}  # fmt: skip


def _run_logged(
    scenario: Coroutine[object, object, R], caplog: pytest.LogCaptureFixture,
    freeze: Freeze | None, *collectors: Collector,
) -> tuple[R, list[str]]:  # fmt: skip
    """Run `scenario` with the server's log captured, then let go of the pause and close the
    collectors' services, however it ended; its result and the lines logged."""
    try:
        with caplog.at_level(logging.INFO, logger=collector_server.__name__):
            result = asyncio.run(scenario)
    finally:
        if freeze is not None:
            freeze.thawed.set()
        for collector in collectors:
            collector.service.close()
    return result, [r.getMessage() for r in caplog.records]


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[CollectorConfig, Store, Store]]:
    """A collector's data folder and two stores on its database, one per collector."""
    config = _folder(tmp_path)
    one, two = Store.open(config.database), Store.open(config.database)
    try:
        yield config, one, two
    finally:
        one.close()
        two.close()


def test_a_collector_paused_in_its_rejudging_leaves_the_verdicts_of_the_one_that_took_over(
    two_stores: tuple[CollectorConfig, Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    # A collector took the re-judging lease for policy version 2 (the firewall check cut),
    # read every device's latest report and was paused. Its lease lapsed; IT put the firewall
    # check back (version 3), and another collector took the lease and re-judged under it.
    # The first woke and wrote version 2's verdicts over version 3's: the firewall verdicts
    # were gone from the fleet view, for good, though version 3 was marked done.
    config, one, two = two_stores
    text = config.policy.read_text(encoding="utf-8")
    _report(one, "d1", T0 - HOUR)
    cut = one.policies.publish(_without_firewall(text), T0, "a:1")
    first = _collector(config, one, parse_policy(cut.text, "v2"), lambda: T0)
    freeze = Freeze(after="MAX(collected_us)")  # read the latest reports
    one._db.trace(freeze)

    async def scenario() -> int:
        paused = asyncio.create_task(
            collector_server._rejudge_owed(_served(first), cut.version, "a:1")
        )
        await freeze.reached()
        back = two.policies.publish(text + "\n# the firewall check is back\n", T0, "b:2")
        # Two hours later by the other's clock: the first's hour-long lease has lapsed.
        other = _collector(config, two, parse_policy(back.text, "v3"), lambda: T0 + 2 * HOUR)
        try:
            await collector_server._rejudge_owed(_served(other), back.version, "b:2")
            assert "firewall" in _checks_judged(two, "d1")
        finally:
            freeze.thawed.set()
            other.service.close()
        await paused  # the first wakes, its clock still where it stopped
        return back.version

    newest, said = _run_logged(scenario(), caplog, freeze, first)
    assert "firewall" in _checks_judged(two, "d1")
    assert two.coordination.done_through(REJUDGE) == newest
    assert not any(f"policy version {cut.version} applied" in line for line in said), said
    assert any("another collector" in line for line in said), said


def test_a_collector_paused_before_writing_the_day_s_record_leaves_the_next_holder_s(
    two_stores: tuple[CollectorConfig, Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    # The hourly record of the fleet's day: a collector took the lease, counted the fleet and
    # was paused before writing. Another took the lapsed lease an hour later and recorded the
    # day as it stood then (a device failing meanwhile). The first woke and wrote its older
    # count over it: the trend showed the day without the failure.
    config, one, two = two_stores
    _report(one, "d1", T0 - HOUR)
    policy = parse_policy(config.policy.read_text(encoding="utf-8"), "policy")
    first = _collector(config, one, policy, lambda: T0)
    second = _collector(config, two, policy, lambda: T0 + HOUR)
    freeze = Freeze(after="INSERT INTO leases")  # took the lease: at its first write
    one._db.trace(freeze)
    day = "2026-12-01"  # T0 and an hour later, in Beijing

    async def scenario() -> dict[str, dict[str, int]]:
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        paused = asyncio.create_task(collector_server.keep_fleet_days(_served(first), stop_first))
        try:
            await freeze.reached()
            _report(two, "d1", T0 + HOUR / 2, firewall=False)  # counted by the second only
            other = asyncio.create_task(
                collector_server.keep_fleet_days(_served(second), stop_second)
            )
            await asyncio.to_thread(wait_until, lambda: day in two.fleet.fleet_days(),
                                    "the second collector's record")  # fmt: skip
            stop_second.set()
            await other
            recorded = two.fleet.fleet_days()[day]
        finally:
            freeze.thawed.set()
            stop_first.set()
            stop_second.set()
        await paused
        return recorded

    recorded, said = _run_logged(scenario(), caplog, freeze, first, second)
    assert recorded["firewall"].get("PASS", 0) == 0  # the first counted a PASS
    assert two.fleet.fleet_days() == {day: recorded}
    assert any("another collector" in line for line in said), said


class Ticking:
    """A collector's clock moved by its own work: `step` on every transaction it begins (a
    long task over a large fleet, its time given as data), or by `jump` at the `at`-th one
    (a pause nobody took over)."""

    def __init__(self, start: dt.datetime, step: dt.timedelta = dt.timedelta(0)) -> None:
        self.now, self.step = start, step
        self.jumps: dict[int, dt.timedelta] = {}
        self.begun = 0

    def __call__(self) -> dt.datetime:
        return self.now

    def trace(self, sql: str) -> None:
        if sql.startswith("BEGIN"):
            self.begun += 1
            self.now += self.step + self.jumps.get(self.begun, dt.timedelta(0))


def _fleet_to_rejudge(
    config: CollectorConfig, store: Store, devices: int
) -> tuple[list[str], PolicyVersion, Policy]:
    """`devices` devices judged as they reported, then IT's edit that cuts the firewall check
    published: a version to re-judge the fleet under."""
    names = [f"d{k:02}" for k in range(devices)]
    for name in names:
        _report(store, name, T0 - HOUR)
    text = _without_firewall(config.policy.read_text(encoding="utf-8"))
    cut = store.policies.publish(text, T0, "a:1")
    return names, cut, parse_policy(cut.text, f"version {cut.version}")


def _rejudged(store: Store, names: list[str]) -> list[str]:
    """Those of `names` judged under the edit (their firewall verdict gone)."""
    return [name for name in names if "firewall" not in _checks_judged(store, name)]


def test_a_long_rejudging_renews_its_lease_as_it_goes_and_keeps_it(
    two_stores: tuple[CollectorConfig, Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    # Re-judging never renewed its one-hour lease: over a fleet that takes longer than an
    # hour, another collector took it while the first still wrote, and both re-judged.
    config, one, two = two_stores
    names, cut, edited = _fleet_to_rejudge(config, one, 12)
    clock = Ticking(T0, step=10 * dt.timedelta(minutes=1))  # ten minutes a device
    first = _collector(config, one, edited, clock)
    freeze = Freeze(after="MAX(collected_us)", times=9)  # 90 minutes into the work

    def traced(sql: str) -> None:
        clock.trace(sql)
        freeze(sql)

    one._db.trace(traced)

    async def scenario() -> None:
        working = asyncio.create_task(
            collector_server._rejudge_owed(_served(first), cut.version, "a:1")
        )
        try:
            await freeze.reached()
            assert clock() - T0 > collector_server.REJUDGE_HOLD
            taken = two.coordination.take_lease(REJUDGE, "b:2", clock(), HOUR)
            assert taken is None, "another collector took the lease of a re-judging at work"
        finally:
            freeze.thawed.set()
        await working

    _, said = _run_logged(scenario(), caplog, freeze, first)
    assert _rejudged(two, names) == names
    assert two.coordination.done_through(REJUDGE) == cut.version
    assert f"policy version {cut.version} applied; 12 device(s) re-evaluated" in said, said


def test_a_rejudging_paused_past_its_lease_stops_and_the_next_holder_finishes_it(
    two_stores: tuple[CollectorConfig, Store, Store], caplog: pytest.LogCaptureFixture
) -> None:
    # Paused two hours between two devices with nobody taking the lease meanwhile: it stops
    # at its next write instead of going on as if it held it, the work stays owed, and the
    # next collector to take the lease judges the whole fleet.
    config, one, two = two_stores
    names, cut, edited = _fleet_to_rejudge(config, one, 6)
    clock = Ticking(T0)
    clock.jumps[4] = 2 * HOUR  # the take, the first two devices, then the pause
    one._db.trace(clock.trace)
    first = _collector(config, one, edited, clock)
    second = _collector(config, two, edited, lambda: T0 + 3 * HOUR)
    try:
        with caplog.at_level(logging.INFO, logger=collector_server.__name__):
            asyncio.run(collector_server._rejudge_owed(_served(first), cut.version, "a:1"))
            stopped = [r.getMessage() for r in caplog.records]
            judged = _rejudged(two, names)
            assert two.coordination.done_through(REJUDGE) < cut.version
            asyncio.run(collector_server._rejudge_owed(_served(second), cut.version, "b:2"))
    finally:
        first.service.close()
        second.service.close()
    assert 0 < len(judged) < len(names), judged
    assert any("lapsed while this collector worked" in line for line in stopped), stopped
    assert _rejudged(two, names) == names
    assert two.coordination.done_through(REJUDGE) == cut.version


MINUTE = dt.timedelta(minutes=1)
DAY = "2026-12-01"


def _day(store: Store) -> dict[str, dict[str, int]]:
    return store.fleet.fleet_days().get(DAY, {})


def _granted(store: Store, holder: str, at: dt.datetime, hold: dt.timedelta = 10 * MINUTE) -> Lease:
    """The fleet-day lease, taken by `holder` at `at` (the test needs it granted)."""
    lease = store.coordination.take_lease("fleet-day", holder, at, hold)
    assert lease is not None, f"{holder} could not take the lease at {at}"
    return lease


def test_each_grant_has_a_higher_token_and_a_write_under_an_older_one_is_refused(
    two_stores: tuple[CollectorConfig, Store, Store],
) -> None:
    _, one, two = two_stores
    a = _granted(one, "a:1", T0)
    assert _granted(one, "a:1", T0 + MINUTE) == a  # renewed: the same grant
    b = _granted(two, "b:2", T0 + 11 * MINUTE)
    assert b.token > a.token
    # The first's clock says it still holds the lease (it stopped before the lapse): the
    # token refuses its write, and the second's stands.
    with pytest.raises(LeaseLost, match="another collector took it over") as lost, \
            one.coordination.under(a, lambda: T0 + 2 * MINUTE):  # fmt: skip
        one.fleet.keep_fleet_days({DAY: {"firewall": {"PASS": 1}}}, T0)
    assert lost.value.taken_by == f"b:2, grant {b.token}"
    with two.coordination.under(b, lambda: T0 + 12 * MINUTE):
        two.fleet.keep_fleet_days({DAY: {"firewall": {"FAIL": 1}}}, T0 + 12 * MINUTE)
    assert _day(one) == {"firewall": {"FAIL": 1}}
    # Lapsed with nobody taking it: refused by the holder's own clock, read in the write.
    with pytest.raises(LeaseLost, match="lapsed"), \
            two.coordination.under(b, lambda: T0 + 21 * MINUTE):  # fmt: skip
        two.fleet.keep_fleet_days({DAY: {"firewall": {"PASS": 1}}}, T0 + 21 * MINUTE)
    assert _day(one) == {"firewall": {"FAIL": 1}}
    # Released, taken again by the first: a higher token still (tokens never go back).
    two.coordination.release(b)
    assert _granted(one, "a:1", T0 + 12 * MINUTE).token > b.token


def test_a_write_under_a_lease_renews_it_once_half_its_hold_is_gone(
    two_stores: tuple[CollectorConfig, Store, Store],
) -> None:
    _, one, two = two_stores
    a = _granted(one, "a:1", T0)
    with one.coordination.under(a, lambda: T0 + 4 * MINUTE):  # 6 minutes left: kept as is
        one.fleet.keep_fleet_days({DAY: {"firewall": {"PASS": 1}}}, T0)
    assert one.coordination.lease_holder("fleet-day", T0) == ("a:1", T0 + 10 * MINUTE)
    with one.coordination.under(a, lambda: T0 + 6 * MINUTE):  # 4 left: held 10 from now
        one.fleet.keep_fleet_days({DAY: {"firewall": {"PASS": 2}}}, T0 + 6 * MINUTE)
    assert one.coordination.lease_holder("fleet-day", T0) == ("a:1", T0 + 16 * MINUTE)
    assert two.coordination.take_lease("fleet-day", "b:2", T0 + 11 * MINUTE, HOUR) is None


def test_the_fence_is_the_thread_s_own(two_stores: tuple[CollectorConfig, Store, Store]) -> None:
    """The store's other threads (ingest's, on PostgreSQL) write as before while one thread
    works under a lease, however that lease stands."""
    _, one, _ = two_stores
    a = _granted(one, "a:1", T0, MINUTE)
    with one.coordination.under(a, lambda: T0 + HOUR):  # lapsed
        other = threading.Thread(target=one.fleet.keep_fleet_days,
                                 args=({DAY: {"firewall": {"PASS": 3}}}, T0))  # fmt: skip
        other.start()
        other.join()
        with pytest.raises(LeaseLost):
            one.fleet.keep_fleet_days({DAY: {"firewall": {"FAIL": 3}}}, T0)
    assert _day(one) == {"firewall": {"PASS": 3}}
    one.fleet.keep_fleet_days({DAY: {"firewall": {"FAIL": 4}}}, T0)  # outside: unfenced
    assert _day(one) == {"firewall": {"FAIL": 4}}


def test_past_midnights_are_marked_only_under_the_fleet_day_lease_still_held(
    tmp_path: Path,
) -> None:
    target = fresh_database(tmp_path)
    store, policy = mixed_fleet(target)
    try:
        every = midnights(NOW, zone_of(policy), NOW - 3 * 24 * HOUR)
        a, b = _granted(store, "a:1", NOW, HOUR), _granted(store, "b:2", NOW + 2 * HOUR, HOUR)
        with pytest.raises(LeaseLost):
            mark_days(target, policy, NOW, lease=a, clock=lambda: NOW)
        assert store.fleet.unmarked(policy, every) == every
        assert mark_days(target, policy, NOW, lease=b, clock=lambda: NOW + 2 * HOUR) > 0
        assert store.fleet.unmarked(policy, every) == []
    finally:
        store.close()
