"""The fleet's standing kept at past moments (`store.fleet.mark`, schema 19) is what counting
again from the history gives: read back while true, voided by a report delivered late with a
change dated before it, never kept when such a report was stored while it was being counted,
and not read under a policy that judges differently. On a real database (a SQLite file, or
PostgreSQL), on `tests.collector.mixed_fleet`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devposture.collector.fleet_history import mark_days, midnights
from devposture.collector.store import CheckResult, DeviceRecord, Store
from devposture.collector.store.fleet import fleet_figures_as_of
from devposture.collector.store.fleet_marks import (
    Measured,
    chain_seq,
    judging_key,
    keep,
    marked,
    report_number,
)
from devposture.collector.store.reports import ReportRecord
from devposture.collector.store.schema import SCHEMA_VERSION
from devposture.collector.tokens import new_token
from devposture.policy import Policy, default_policy
from tests.collector.mixed_fleet import NOW, device_id_of, enroll, mixed_fleet
from tests.databases import fresh_database, on_postgresql, raw

MOMENTS = [NOW - dt.timedelta(hours=h) for h in (1, 16, 40, 24 * 6, 24 * 19)]


def _counted(store: Store, policy: Policy, at: dt.datetime) -> dict[str, dict[str, int]]:
    """Counted from the history, never from a mark."""
    return fleet_figures_as_of(store._db, policy, at)


def _report(device_id: str, n: int, collected: dt.datetime, received: dt.datetime) -> ReportRecord:
    return ReportRecord(f"{device_id}-late-{n}", device_id, received, collected, "1", b"body",
                        "late-pc", "linux", "os", "1")  # fmt: skip


def test_a_mark_is_read_back_equal_to_counting_again(tmp_path: Path) -> None:
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        for at in MOMENTS:
            assert marked(store._db, policy, at) is None
            assert store.fleet.mark(policy, at)
            assert marked(store._db, policy, at) == _counted(store, policy, at)
            assert store.fleet.fleet_figures_as_of(policy, at) == _counted(store, policy, at)
        assert store.fleet.unmarked(policy, [*MOMENTS, NOW]) == [NOW]
        # Another policy's judging (a longer grace on one check) reads none of them.
        longer = dataclasses.replace(policy.checks[0], grace_hours=policy.checks[0].grace_hours + 1)
        other = dataclasses.replace(policy, checks=(longer, *policy.checks[1:]))
        assert judging_key(other) != judging_key(policy)
        assert all(marked(store._db, other, at) is None for at in MOMENTS)
        assert store.fleet.fleet_figures_as_of(other, MOMENTS[-1]) == _counted(
            store, other, MOMENTS[-1]
        )
    finally:
        store.close()


def _late_fleet(tmp_path: Path) -> tuple[Store, Policy, str, dt.datetime]:
    """The mixed fleet and one more device that passed everything an hour before `at`."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    at = NOW - dt.timedelta(hours=16)
    device_id = "ee" * 16
    enroll(store, device_id)
    passing = [CheckResult(c.check_id, "PASS", "r") for c in policy.checks]
    before = at - dt.timedelta(hours=1)
    store.reports.store_reports([(_report(device_id, 0, before, before), passing)])
    return store, policy, device_id, at


def test_a_change_delivered_late_and_dated_before_a_mark_voids_it(tmp_path: Path) -> None:
    store, policy, device_id, at = _late_fleet(tmp_path)
    try:
        later = NOW - dt.timedelta(hours=2)
        assert store.fleet.mark(policy, at) and store.fleet.mark(policy, later)
        earlier = NOW - dt.timedelta(days=6)
        assert store.fleet.mark(policy, earlier)
        was = _counted(store, policy, at)
        # Collected half an hour before the moment, stuck in the outbox, delivered now.
        failing = [CheckResult(c.check_id, "FAIL", "r") for c in policy.checks]
        collected = at - dt.timedelta(minutes=30)
        store.reports.store_reports([(_report(device_id, 1, collected, NOW), failing)])
        now_counted = _counted(store, policy, at)
        assert now_counted != was, "the late change moves the count, else this proves little"
        assert marked(store._db, policy, at) is None
        assert marked(store._db, policy, later) is None
        assert marked(store._db, policy, earlier) is not None  # before the change: still true
        assert store.fleet.fleet_figures_as_of(policy, at) == now_counted
    finally:
        store.close()


def test_a_count_under_way_when_a_late_change_is_stored_is_not_kept(tmp_path: Path) -> None:
    store, policy, device_id, at = _late_fleet(tmp_path)
    try:
        # Counted first (the chain's head noted), then the late report, then keeping.
        measured = Measured(
            int(at.timestamp() * 1_000_000), judging_key(policy),
            _counted(store, policy, at), chain_seq(store._db), report_number(store._db),
        )  # fmt: skip
        failing = [CheckResult(c.check_id, "FAIL", "r") for c in policy.checks]
        collected = at - dt.timedelta(minutes=30)
        store.reports.store_reports([(_report(device_id, 1, collected, NOW), failing)])
        with store._db.transaction() as cursor:
            assert not keep(cursor, measured)
        assert marked(store._db, policy, at) is None
        # A change dated after the moment does not stand in the way.
        measured = dataclasses.replace(
            measured, counts=_counted(store, policy, at), chain_seq=chain_seq(store._db)
        )
        passing = [CheckResult(c.check_id, "PASS", "r") for c in policy.checks]
        store.reports.store_reports([(_report(device_id, 2, NOW, NOW), passing)])
        with store._db.transaction() as cursor:
            assert keep(cursor, measured)
        assert marked(store._db, policy, at) == _counted(store, policy, at)
    finally:
        store.close()


def test_serve_marks_each_past_midnight_once_the_newest_first(tmp_path: Path) -> None:
    """`fleet_history.mark_days`, as `serve` runs it hourly: the company's midnights from the
    first enrollment to an hour ago, `most` a run, each equal to counting again."""
    target = fresh_database(tmp_path)
    store, policy = mixed_fleet(target)
    try:
        zone = ZoneInfo(policy.time_zone)
        first = store.fleet.first_enrolled()
        assert first is not None
        every = midnights(NOW, zone, first)
        assert len(every) == (NOW.astimezone(zone).date() - first.astimezone(zone).date()).days
        assert all(m.astimezone(zone).time() == dt.time() for m in every)
        assert every == sorted(every, reverse=True)
        groups = store.identity.device_groups()
        assert len(groups) == 2
        first_run = mark_days(target, policy, NOW, most=5)
        assert store.fleet.unmarked(policy, every) == every[5:]
        # Then each group's, the newest midnights first, five fleets' worth of devices.
        grouped = {g: len(every) - len(store.fleet.unmarked(policy, every, g)) for g in groups}
        assert first_run == 5 + sum(grouped.values())
        share = sum(groups.values()) / store.reports.device_count()
        assert 5 * 2 / share - 2 <= sum(grouped.values()) <= 5 * 2 / share + 2
        for group in groups:
            assert store.fleet.unmarked(policy, every, group) == every[grouped[group]:]
        while mark_days(target, policy, NOW, most=50):
            pass
        assert mark_days(target, policy, NOW) == 0
        for at in every:
            assert marked(store._db, policy, at) == _counted(store, policy, at)
            for group in groups:
                assert marked(store._db, policy, at, group) == fleet_figures_as_of(
                    store._db, policy, at, group)  # fmt: skip
    finally:
        store.close()


def test_midnights_are_the_company_s_across_a_clock_change() -> None:
    new_york = ZoneInfo("America/New_York")  # clocks go back on 2026-11-01
    now = dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC)
    since = dt.datetime(2026, 10, 30, 12, tzinfo=dt.UTC)
    found = midnights(now, new_york, since)
    assert [m.astimezone(new_york).isoformat() for m in found] == [
        "2026-11-03T00:00:00-05:00", "2026-11-02T00:00:00-05:00",
        "2026-11-01T00:00:00-04:00", "2026-10-31T00:00:00-04:00",
    ]  # fmt: skip


# --- a device group's marks (schema 21) ----------------------------------------------------


def _grouped(
    store: Store, policy: Policy, group: str, at: dt.datetime
) -> dict[str, dict[str, int]]:
    """A group's devices (as grouped now) counted from the history, never from a mark."""
    return fleet_figures_as_of(store._db, policy, at, group)


def test_a_groups_mark_is_read_back_equal_to_counting_its_devices_again(tmp_path: Path) -> None:
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        for group in groups:
            for at in MOMENTS:
                assert marked(store._db, policy, at, group) is None
                assert store.fleet.mark(policy, at, group)
                assert marked(store._db, policy, at, group) == _grouped(store, policy, group, at)
                assert store.fleet.fleet_figures_as_of(policy, at, group) == _grouped(
                    store, policy, group, at)  # fmt: skip
            assert store.fleet.unmarked(policy, [*MOMENTS, NOW], group) == [NOW]
        # Neither the fleet's marks nor another group's stand in for a group's.
        assert store.fleet.unmarked(policy, MOMENTS) == MOMENTS
        assert store.fleet.unmarked(policy, MOMENTS, "no-such-group") == MOMENTS
        assert _grouped(store, policy, groups[0], MOMENTS[0]) != _grouped(
            store, policy, groups[1], MOMENTS[0])  # fmt: skip
    finally:
        store.close()


def test_a_device_moved_between_groups_voids_both_groups_marks(tmp_path: Path) -> None:
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        at = MOMENTS[2]
        for group in groups:
            assert store.fleet.mark(policy, at, group)
        assert store.fleet.mark(policy, at)
        mover = next(d for d in store.identity.devices(group=groups[0]))
        was = _grouped(store, policy, groups[0], at)
        # Into the other group, then out of every group: each move voids what it changes.
        assert store.identity.set_device_group(mover.device_id, groups[1], NOW) == groups[0]
        assert marked(store._db, policy, at, groups[0]) is None
        assert marked(store._db, policy, at, groups[1]) is None
        assert marked(store._db, policy, at) is not None  # the fleet's devices are the same
        assert _grouped(store, policy, groups[0], at) != was
        assert store.fleet.fleet_figures_as_of(policy, at, groups[0]) == _grouped(
            store, policy, groups[0], at)  # fmt: skip
        assert store.fleet.mark(policy, at, groups[0]) and store.fleet.mark(policy, at, groups[1])
        store.identity.set_device_group(mover.device_id, "", NOW)
        assert marked(store._db, policy, at, groups[0]) is not None  # not its group any more
        assert marked(store._db, policy, at, groups[1]) is None
        # Setting the group a device has already changes nothing and voids nothing.
        assert store.fleet.mark(policy, at, groups[1])
        other = next(d for d in store.identity.devices(group=groups[1]))
        store.identity.set_device_group(other.device_id, groups[1], NOW)
        assert marked(store._db, policy, at, groups[1]) is not None
    finally:
        store.close()


def test_a_late_change_voids_the_groups_marks_from_its_date(tmp_path: Path) -> None:
    store, policy, device_id, at = _late_fleet(tmp_path)
    try:
        group = sorted(store.identity.device_groups())[0]
        store.identity.set_device_group(device_id, group, NOW)
        earlier = NOW - dt.timedelta(days=6)
        assert store.fleet.mark(policy, at, group) and store.fleet.mark(policy, earlier, group)
        failing = [CheckResult(c.check_id, "FAIL", "r") for c in policy.checks]
        collected = at - dt.timedelta(minutes=30)
        store.reports.store_reports([(_report(device_id, 1, collected, NOW), failing)])
        assert marked(store._db, policy, at, group) is None
        assert marked(store._db, policy, earlier, group) is not None
        assert store.fleet.fleet_figures_as_of(policy, at, group) == _grouped(
            store, policy, group, at)  # fmt: skip
    finally:
        store.close()


def test_a_groups_count_under_way_when_a_device_is_regrouped_is_not_kept(
    tmp_path: Path,
) -> None:
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        at = MOMENTS[1]
        measured = Measured(
            int(at.timestamp() * 1_000_000), judging_key(policy),
            _grouped(store, policy, groups[0], at), chain_seq(store._db),
            report_number(store._db), groups[0],
        )  # fmt: skip
        mover = next(d for d in store.identity.devices(group=groups[0]))
        store.identity.set_device_group(mover.device_id, groups[1], NOW)  # a device event
        with store._db.transaction() as cursor:
            assert not keep(cursor, measured)
        assert marked(store._db, policy, at, groups[0]) is None
        # The whole fleet's count is not held up by a device event.
        whole = dataclasses.replace(measured, counts=_counted(store, policy, at), group=None)
        with store._db.transaction() as cursor:
            assert keep(cursor, whole)
        assert marked(store._db, policy, at) == _counted(store, policy, at)
    finally:
        store.close()


# --- a revocation or retirement dated before a mark (schema 25) ------------------------------


def _all_marked(
    store: Store, policy: Policy, moments: list[dt.datetime], groups: list[str]
) -> None:
    for at in moments:
        assert store.fleet.mark(policy, at)
        for group in groups:
            assert store.fleet.mark(policy, at, group)


@pytest.mark.parametrize("status", ["revoked", "retired"])
def test_a_device_leaving_dated_before_a_mark_voids_the_marks_it_changes(
    tmp_path: Path, status: str
) -> None:
    """IT revokes (or retires) a device after the midnight marks were counted, on a collector
    whose clock runs behind (or the news came late): the leaving is dated before a mark. The
    marks from that date on counted the device, which counting again leaves out: each is
    voided, the fleet's and its group's; those before stay, and so do other groups'."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        at, later, earlier = MOMENTS[1], MOMENTS[0], MOMENTS[3]
        _all_marked(store, policy, [at, later, earlier], groups)
        leaver = next(d for d in store.identity.devices(group=groups[0]) if d.status == "active")
        was = _counted(store, policy, at)
        assert store.identity.set_device_status(
            leaver.device_id, status, at - dt.timedelta(hours=2), "stolen on a trip"
        )
        assert _counted(store, policy, at) != was, "the leaving moves the count"
        for moment in (at, later):
            assert marked(store._db, policy, moment) is None
            assert marked(store._db, policy, moment, groups[0]) is None
            assert marked(store._db, policy, moment, groups[1]) is not None
            assert store.fleet.fleet_figures_as_of(policy, moment) == _counted(
                store, policy, moment)  # fmt: skip
            assert store.fleet.fleet_figures_as_of(policy, moment, groups[0]) == _grouped(
                store, policy, groups[0], moment)  # fmt: skip
        # Before the leaving's date the device counted, as the marks say.
        assert marked(store._db, policy, earlier) == _counted(store, policy, earlier)
        assert marked(store._db, policy, earlier, groups[0]) == _grouped(
            store, policy, groups[0], earlier)  # fmt: skip
    finally:
        store.close()


def test_an_operators_edit_of_when_a_device_left_voids_the_marks_between(
    tmp_path: Path,
) -> None:
    """Marks are kept by triggers, not by the writers: an edit that moves a retirement's date
    back (or leaves a status without its date: left since ever) voids the marks it changes."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        retired = next(d for d in store.identity.devices() if d.status == "retired")
        assert retired.status_at is not None
        at, earlier = MOMENTS[1], MOMENTS[3]  # both before it left: it counted in both
        _all_marked(store, policy, [at, earlier], groups)
        with store._db.transaction() as cursor:
            cursor.execute(
                "UPDATE devices SET status_us = ? WHERE device_id = ?",
                (int((at - dt.timedelta(hours=1)).timestamp() * 1_000_000), retired.device_id),
            )
        assert marked(store._db, policy, at) is None
        assert marked(store._db, policy, earlier) == _counted(store, policy, earlier)
        assert store.fleet.fleet_figures_as_of(policy, at) == _counted(store, policy, at)
        _all_marked(store, policy, [at], groups)
        with store._db.transaction() as cursor:
            cursor.execute(
                "UPDATE devices SET status_us = NULL WHERE device_id = ?", (retired.device_id,)
            )
        assert marked(store._db, policy, earlier) is None
        assert store.fleet.fleet_figures_as_of(policy, earlier) == _counted(
            store, policy, earlier)  # fmt: skip
        # An edit that changes neither the status nor its date voids nothing.
        _all_marked(store, policy, [at, earlier], groups)
        with store._db.transaction() as cursor:
            cursor.execute(
                "UPDATE devices SET status_reason = 'replaced' WHERE device_id = ?",
                (retired.device_id,),
            )
        assert marked(store._db, policy, earlier) is not None
    finally:
        store.close()


# --- a device's arrival dated before a mark (schema 26) --------------------------------------


def _enroll_at(store: Store, device_id: str, at: dt.datetime, group: str) -> None:
    """Enroll `device_id` into `group` as a collector whose clock reads `at` would."""
    token = new_token()
    store.identity.add_token(token, at, at + dt.timedelta(hours=1), uses=1, group=group)
    store.identity.enroll(token, at, DeviceRecord(device_id, "01", NOW + dt.timedelta(days=90)))


def _all_equal_to_counting_again(
    store: Store, policy: Policy, moments: list[dt.datetime], groups: list[str]
) -> None:
    """What `report fleet --as-of` reads (through a mark where one is kept) is the count."""
    for at in moments:
        assert store.fleet.fleet_figures_as_of(policy, at) == _counted(store, policy, at)
        for group in groups:
            assert store.fleet.fleet_figures_as_of(policy, at, group) == _grouped(
                store, policy, group, at)  # fmt: skip


def _counting(store: Store, policy: Policy, at: dt.datetime) -> Measured:
    """The fleet counted at `at` as `Fleet.mark` counts it, not kept yet."""
    return Measured(
        int(at.timestamp() * 1_000_000), judging_key(policy),
        _counted(store, policy, at), chain_seq(store._db), report_number(store._db),
    )  # fmt: skip


def test_an_enrollment_dated_before_a_mark_voids_the_marks_it_changes(tmp_path: Path) -> None:
    """A device enrolled by a collector whose clock runs behind the one that counted the
    midnights: stored after a mark, dated before it. Every mark from its date on left it
    out, where counting again holds it: each is voided, the fleet's and its group's; earlier
    marks and the other group's stay. An enrollment dated after every mark voids nothing."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        at, later, earlier = MOMENTS[1], MOMENTS[0], MOMENTS[3]
        _all_marked(store, policy, [at, later, earlier], groups)
        _enroll_at(store, "e1" * 16, NOW, groups[0])  # after every mark: changes none of them
        for moment in (at, later, earlier):
            assert marked(store._db, policy, moment) is not None
            assert marked(store._db, policy, moment, groups[0]) is not None
        _all_equal_to_counting_again(store, policy, [at, later, earlier], groups)
        was = _counted(store, policy, at)
        _enroll_at(store, "e2" * 16, at - dt.timedelta(hours=2), groups[0])
        assert _counted(store, policy, at) != was, "the enrollment moves the count"
        for moment in (at, later):
            assert marked(store._db, policy, moment) is None
            assert marked(store._db, policy, moment, groups[0]) is None
            assert marked(store._db, policy, moment, groups[1]) is not None
        assert marked(store._db, policy, earlier) == _counted(store, policy, earlier)
        assert marked(store._db, policy, earlier, groups[0]) == _grouped(
            store, policy, groups[0], earlier)  # fmt: skip
        _all_equal_to_counting_again(store, policy, [at, later, earlier], groups)
    finally:
        store.close()


def test_a_count_under_way_when_a_back_dated_enrollment_is_stored_is_not_kept(
    tmp_path: Path,
) -> None:
    """The trigger voids marks already kept; a count begun before the enrollment was stored
    and kept after it would leave the device out all the same, so `keep` refuses it (the next
    hourly run counts the moment again). An enrollment dated after the moment does not."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        at = MOMENTS[1]
        counting = _counting(store, policy, at)
        _enroll_at(store, "e3" * 16, at - dt.timedelta(hours=2), "")
        with store._db.transaction() as cursor:
            assert not keep(cursor, counting)
        assert marked(store._db, policy, at) is None
        counting = _counting(store, policy, at)
        _enroll_at(store, "e4" * 16, NOW, "")
        with store._db.transaction() as cursor:
            assert keep(cursor, counting)
        assert marked(store._db, policy, at) == _counted(store, policy, at)
    finally:
        store.close()


def _us(at: dt.datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def test_an_operators_edit_of_devices_voids_the_marks_it_changes(tmp_path: Path) -> None:
    """Marks are kept by triggers, not by the writers: a device row written by hand (a
    migration's, an operator's INSERT dated in the past), an edit of when a device was
    enrolled (either way: the marks from the earlier date on), and a row deleted, each voids
    the marks it changes; an edit of anything else about the device voids nothing."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        at, earlier = MOMENTS[1], MOMENTS[3]
        before_all = NOW - dt.timedelta(days=21)  # before the fleet's first enrollment
        moments = [at, earlier, before_all]
        _all_marked(store, policy, moments, groups)
        with store._db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial,"
                " cert_not_after_us, device_group) VALUES (?, ?, 'by-hand', '01', ?, ?)",
                ("e5" * 16, _us(at - dt.timedelta(hours=1)), _us(NOW), groups[0]),
            )
        assert marked(store._db, policy, at) is None
        assert marked(store._db, policy, at, groups[0]) is None
        assert marked(store._db, policy, at, groups[1]) is not None
        assert marked(store._db, policy, earlier) is not None
        _all_equal_to_counting_again(store, policy, moments, groups)
        # Its enrollment moved back past `earlier`, then forward past `at`: each edit voids
        # from the earlier of its two dates.
        for enrolled, voided in ((earlier - dt.timedelta(hours=1), earlier), (NOW, earlier)):
            _all_marked(store, policy, [at, earlier], groups)
            with store._db.transaction() as cursor:
                cursor.execute(
                    "UPDATE devices SET enrolled_us = ? WHERE device_id = ?",
                    (_us(enrolled), "e5" * 16),
                )
            assert marked(store._db, policy, voided) is None
            assert marked(store._db, policy, voided, groups[0]) is None
            assert marked(store._db, policy, before_all) is not None
            _all_equal_to_counting_again(store, policy, moments, groups)
        # Back where it counted in every mark since `earlier`, then deleted.
        with store._db.transaction() as cursor:
            cursor.execute(
                "UPDATE devices SET enrolled_us = ? WHERE device_id = ?",
                (_us(earlier - dt.timedelta(hours=1)), "e5" * 16),
            )
        _all_marked(store, policy, [at, earlier], groups)
        with store._db.transaction() as cursor:
            cursor.execute("UPDATE devices SET hostname = 'renamed' WHERE device_id = ?",
                           ("e5" * 16,))  # fmt: skip
        assert marked(store._db, policy, earlier) is not None
        with store._db.transaction() as cursor:
            cursor.execute("DELETE FROM devices WHERE device_id = ?", ("e5" * 16,))
        assert marked(store._db, policy, earlier) is None
        assert marked(store._db, policy, at, groups[0]) is None
        assert marked(store._db, policy, at, groups[1]) is not None
        assert marked(store._db, policy, before_all) is not None
        _all_equal_to_counting_again(store, policy, moments, groups)
    finally:
        store.close()


def test_a_first_report_received_before_a_mark_voids_it_by_its_state_changes(
    tmp_path: Path,
) -> None:
    """A device's first report, received (by a collector whose clock runs behind) before a
    mark it changes: a first report makes a state change for every check it judges, dated
    when its facts were collected, never after receipt, so the trigger of schema 19 voids the
    marks from then on; no other trigger is needed for it."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        at, earlier = MOMENTS[1], MOMENTS[3]
        _enroll_at(store, "e6" * 16, earlier - dt.timedelta(days=5), groups[0])
        _all_marked(store, policy, [at, earlier], groups)
        was = _counted(store, policy, at)
        received = at - dt.timedelta(hours=1)
        passing = [CheckResult(c.check_id, "PASS", "r") for c in policy.checks]
        store.reports.store_reports([(_report("e6" * 16, 0, received, received), passing)])
        assert _counted(store, policy, at) != was, "the report moves the count"
        assert marked(store._db, policy, at) is None
        assert marked(store._db, policy, at, groups[0]) is None
        assert marked(store._db, policy, earlier) is not None
        _all_equal_to_counting_again(store, policy, [at, earlier], groups)
    finally:
        store.close()


# --- a report received before a mark, its verdicts unchanged (schema 27) ---------------------


def _silent_device(store: Store) -> tuple[str, str, list[CheckResult]]:
    """A device of the mixed fleet silent for five days (STALE at the moments tested), still
    in the fleet and in a group: its id, its group and its verdicts as they stand."""
    for n in range(7, 60, 8):
        (info,) = store.identity.devices(only=device_id_of(n))
        group = store._db.execute(
            "SELECT device_group FROM devices WHERE device_id = ?", (info.device_id,)
        ).fetchone()[0]
        if info.status == "active" and group:
            verdicts = store._db.execute(
                "SELECT check_id, state FROM check_results WHERE device_id = ?",
                (info.device_id,),
            ).fetchall()
            return info.device_id, group, [CheckResult(c, s, "r") for c, s in verdicts]
    raise AssertionError("the mixed fleet has no silent grouped device")


def test_a_report_received_before_a_mark_voids_it_though_no_verdict_changes(
    tmp_path: Path,
) -> None:
    """A report stored after a mark by a collector whose clock runs behind the one that
    counted it, received (by that clock) before the mark, from a device silent until then:
    the device was STALE in the mark and is heard from in a recount, though not one of its
    verdicts changed (no state change, so the trigger of schema 19 says nothing). The marks
    from its receipt on are voided, the fleet's and every group's; earlier ones stay. A
    report received now voids nothing."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        groups = sorted(store.identity.device_groups())
        device_id, group, verdicts = _silent_device(store)
        at, later, earlier = MOMENTS[1], MOMENTS[0], MOMENTS[3]
        _all_marked(store, policy, [at, later, earlier], groups)
        store.reports.store_reports([(_report(device_id, 1, NOW, NOW), verdicts)])
        for moment in (at, later, earlier):
            assert marked(store._db, policy, moment) is not None
            assert marked(store._db, policy, moment, group) is not None
        was = _counted(store, policy, at)
        changes = store._db.execute("SELECT COUNT(*) FROM state_changes").fetchone()[0]
        received = at - dt.timedelta(hours=1)
        store.reports.store_reports([(_report(device_id, 2, received, received), verdicts)])
        assert store._db.execute("SELECT COUNT(*) FROM state_changes").fetchone()[0] == changes
        assert _counted(store, policy, at) != was, "the report moves the count"
        for moment in (at, later):
            assert marked(store._db, policy, moment) is None
            assert marked(store._db, policy, moment, group) is None
        assert marked(store._db, policy, earlier) == _counted(store, policy, earlier)
        _all_equal_to_counting_again(store, policy, [at, later, earlier], groups)
    finally:
        store.close()


def test_a_count_under_way_when_a_back_dated_report_is_stored_is_not_kept(
    tmp_path: Path,
) -> None:
    """A report is chained only by its group's seal, up to half a minute after it is stored,
    so `keep` looks for the reports numbered after the highest number when the count began,
    sealed or not, received at or before the moment. One received after it does not stand
    in the way."""
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        device_id, _, verdicts = _silent_device(store)
        at = MOMENTS[1]
        counting = _counting(store, policy, at)
        received = at - dt.timedelta(hours=1)
        store.reports.store_reports([(_report(device_id, 1, received, received), verdicts)])
        with store._db.transaction() as cursor:
            assert not keep(cursor, counting)
        assert marked(store._db, policy, at) is None
        store.sealing.seal_all()  # sealed before keeping: still seen
        with store._db.transaction() as cursor:
            assert not keep(cursor, counting)
        counting = _counting(store, policy, at)
        store.reports.store_reports([(_report(device_id, 2, NOW, NOW), verdicts)])
        with store._db.transaction() as cursor:
            assert keep(cursor, counting)
        assert marked(store._db, policy, at) == _counted(store, policy, at)
    finally:
        store.close()


# --- upgrading (schemas 26 and 27) ---------------------------------------------------------


# The triggers schemas 26 and 27 add, and their tables.
_NEW_TRIGGERS = {
    "devices_enrolled_void_marks": "devices", "devices_enrollment_moved_void_marks": "devices",
    "devices_deleted_void_marks": "devices", "reports_received_void_marks": "reports",
}  # fmt: skip


def test_a_database_upgraded_from_schema_25_voids_marks_on_back_dated_arrivals(
    tmp_path: Path,
) -> None:
    """As schema 25 left it (no arrival or receipt triggers): opening it adds them, SQLite
    by its migration steps, PostgreSQL by its schema run again on the upgrade."""
    target = fresh_database(tmp_path)
    store, _ = mixed_fleet(target)
    store.close()
    other = raw(target)
    try:
        with other.transaction() as cursor:
            for trigger, table in _NEW_TRIGGERS.items():
                on = f" ON {table}" if on_postgresql() else ""
                cursor.execute(f"DROP TRIGGER {trigger}{on}")
            cursor.execute("UPDATE schema_version SET version = 25")
    finally:
        other.close()
    store = Store.open(target)
    try:
        version = store._db.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == SCHEMA_VERSION
        policy = default_policy()
        groups = sorted(store.identity.device_groups())
        at = MOMENTS[1]
        _all_marked(store, policy, [at], groups)
        _enroll_at(store, "e7" * 16, at - dt.timedelta(hours=2), groups[1])
        assert marked(store._db, policy, at) is None
        assert marked(store._db, policy, at, groups[1]) is None
        assert marked(store._db, policy, at, groups[0]) is not None
        _all_marked(store, policy, [at], groups)
        device_id, _, verdicts = _silent_device(store)
        received = at - dt.timedelta(hours=1)
        store.reports.store_reports([(_report(device_id, 1, received, received), verdicts)])
        assert marked(store._db, policy, at) is None
        _all_equal_to_counting_again(store, policy, [at], groups)
    finally:
        store.close()
