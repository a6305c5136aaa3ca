"""What several collectors on one database share through it: leases for work done once, and the
policy in force (an edit applied on one collector reaches the others). The single-store tests
run on both engines; the two-collector one on the PostgreSQL leg."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from devposture.collector import server as collector_server
from devposture.collector.config import CollectorConfig
from devposture.collector.datadir import initialize
from devposture.collector.join import join
from devposture.collector.policy.in_force import IN_FORCE, keep_in_force, policy_in_force
from devposture.collector.store import Store, database_errors
from devposture.collector.web import auth
from devposture.policy import default_policy_text
from tests.databases import collector_database, fresh_database, on_postgresql, raw
from tests.ports import free_ports
from tests.waiting import wait_until

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def test_a_lease_is_held_by_one_until_it_expires_or_is_given_up(store: Store) -> None:
    leases = store.coordination
    first = leases.take_lease("fleet-day", "a:1", T0, 10 * MINUTE)
    assert first is not None
    assert not leases.take_lease("fleet-day", "b:2", T0 + MINUTE, 10 * MINUTE)
    assert leases.take_lease("fleet-day", "a:1", T0 + MINUTE, 10 * MINUTE)  # renewed
    assert leases.lease_holder("fleet-day", T0 + 5 * MINUTE) == ("a:1", T0 + 11 * MINUTE)
    # Its holder died: at expiry another takes the work over.
    assert not leases.take_lease("fleet-day", "b:2", T0 + 10 * MINUTE, 10 * MINUTE)
    second = leases.take_lease("fleet-day", "b:2", T0 + 11 * MINUTE, 10 * MINUTE)
    assert second is not None
    leases.release(first)  # not a's any more: nothing happens
    assert leases.lease_holder("fleet-day", T0 + 12 * MINUTE) == ("b:2", T0 + 21 * MINUTE)
    leases.release(second)
    assert leases.lease_holder("fleet-day", T0 + 12 * MINUTE) is None
    assert leases.take_lease("fleet-day", "a:1", T0 + 12 * MINUTE, MINUTE)
    assert leases.take_lease("other", "b:2", T0 + 12 * MINUTE, MINUTE)  # each name its own


def test_each_serving_process_is_counted_until_it_stops_or_its_presence_lapses(
    store: Store,
) -> None:
    """What each collector process divides the per-device rate limit by (time as data)."""
    serving = store.coordination
    hold = 3 * MINUTE
    assert serving.present("a:1", T0, hold) == 1
    assert serving.present("b:2", T0 + MINUTE, hold) == 2
    assert serving.present("a:1", T0 + 2 * MINUTE, hold) == 2  # renewed, not counted twice
    # b:2 died at T0 + 1 min: counted out once its presence lapses (T0 + 4 min).
    assert serving.present("a:1", T0 + 3 * MINUTE, hold) == 2
    assert serving.present("a:1", T0 + 4 * MINUTE, hold) == 1
    assert serving.present("c:3", T0 + 5 * MINUTE, hold) == 2
    serving.absent("c:3")  # stopped: counted out at once
    assert serving.present("a:1", T0 + 5 * MINUTE, hold) == 1
    # Presences are leases of their own: the work done once is not taken by them.
    assert store.coordination.take_lease("fleet-day", "c:3", T0 + 5 * MINUTE, MINUTE)


@pytest.mark.skipif(not on_postgresql(), reason="two collectors share PostgreSQL")
def test_two_collectors_on_one_database_each_keep_half_of_a_devices_rate_limit(
    tmp_path: Path,
) -> None:
    first = dataclasses.replace(_folder(tmp_path), device_calls_per_minute=6,
                                device_call_burst=4)  # fmt: skip
    second, _ = join(tmp_path / "second", first.data_dir, "127.0.0.1",
                     enroll_port=free_ports(1)[0], report_port=free_ports(1)[0])  # fmt: skip
    second = dataclasses.replace(second, device_calls_per_minute=6, device_call_burst=4)

    async def scenario() -> list[tuple[int, float, int]]:
        one = await collector_server.start(first, 0, 0, "127.0.0.1")
        two = await collector_server.start(second, 0, 0, "127.0.0.1")
        stop, stop_two = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(collector_server.keep_present(r, s, every=0.05))
                 for r, s in ((one, stop), (two, stop_two))]  # fmt: skip
        seen = []
        try:
            both = (one.service.limiter, two.service.limiter)
            await asyncio.to_thread(wait_until, lambda: all(x.serving == 2 for x in both),
                                    "both collectors counting two")  # fmt: skip
            seen += [(x.serving, x.calls_per_minute, x.burst) for x in both]
            # A device calling both in turn gets the burst of 4 in all, not 4 from each.
            granted = [both[k % 2].acquire("dev") == 0.0 for k in range(8)]
            seen.append((sum(granted), 0.0, 0))
            stop_two.set()  # the second stops: the first keeps the whole limit again
            await tasks[1]
            await asyncio.to_thread(wait_until, lambda: both[0].serving == 1,
                                    "the first counting itself alone")  # fmt: skip
            seen.append((both[0].serving, both[0].calls_per_minute, both[0].burst))
        finally:
            stop.set()
            stop_two.set()
            await asyncio.gather(*tasks)
            await one.stop(0)
            await two.stop(0)
        return seen

    assert asyncio.run(scenario()) == [(2, 3.0, 2), (2, 3.0, 2), (4, 0.0, 0), (1, 6.0, 4)]


def test_a_policy_is_a_new_version_only_when_it_changed_and_the_history_is_kept(
    store: Store, tmp_path: Path
) -> None:
    text = default_policy_text()
    first = store.policies.publish(text, T0, "a:1")
    assert (first.version, first.applied_by) == (1, "a:1")
    assert store.policies.publish(text, T0 + MINUTE, "b:2") == first  # the same: no new one
    second = store.policies.publish(text + "\n# grace reviewed\n", T0 + MINUTE, "b:2")
    assert (second.version, second.applied_at, store.policies.version()) == (2, T0 + MINUTE, 2)
    connection = raw(store.target)
    try:
        with pytest.raises(database_errors(), match="the policy history is append-only"):
            connection.execute("UPDATE policy_versions SET text = 'x'")
        with pytest.raises(database_errors(), match="the policy history is append-only"):
            connection.execute("DELETE FROM policy_versions")
    finally:
        connection.close()


def _folder(tmp_path: Path) -> CollectorConfig:
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    return config


def test_an_edited_file_is_applied_at_start_and_an_unedited_one_yields_to_the_newer_version(
    tmp_path: Path,
) -> None:
    config = _folder(tmp_path)
    store = Store.open(config.database)
    try:
        policy = keep_in_force(config, store)  # the first start: the file as it is
        assert store.policies.version() == 1
        assert policy_in_force(config, store) == policy
        # Another collector on the database applied a newer policy meanwhile: this one,
        # its file unedited, takes it at its next start.
        newer = config.policy.read_text().replace("grace_hours = 24", "grace_hours = 48", 1)
        assert newer != config.policy.read_text()
        store.policies.publish(newer, T0, "other:1")
        assert keep_in_force(config, store) == policy_in_force(config, store) != policy
        assert (config.data_dir / IN_FORCE).read_text() == newer
        # Restarted again, unedited: still no new version (its own file is not an edit).
        keep_in_force(config, store)
        assert store.policies.version() == 2
        # IT edits this collector's file while it is stopped: the edit is applied at start.
        edited = config.policy.read_text() + "\n# reviewed by IT\n"
        config.policy.write_text(edited)
        keep_in_force(config, store)
        latest = store.policies.latest()
        assert latest is not None and (latest.version, latest.text) == (3, edited)
    finally:
        store.close()


@pytest.mark.skipif(not on_postgresql(), reason="two collectors share PostgreSQL")
def test_a_policy_edited_on_one_collector_reaches_the_other(tmp_path: Path) -> None:
    first = _folder(tmp_path)
    second, _ = join(tmp_path / "second", first.data_dir, "127.0.0.1",
                     enroll_port=free_ports(1)[0], report_port=free_ports(1)[0])  # fmt: skip

    async def scenario() -> tuple[int, int]:
        one = await collector_server.start(first, 0, 0, "127.0.0.1")
        two = await collector_server.start(second, 0, 0, "127.0.0.1")
        stop = asyncio.Event()
        watchers = [asyncio.create_task(collector_server.watch_policy(c, r, stop))
                    for c, r in ((first, one), (second, two))]  # fmt: skip
        try:
            before = two.service.policy
            text = first.policy.read_text().replace("grace_hours = 24", "grace_hours = 48", 1)
            first.policy.write_text(text)
            # Both: the first publishes the edit in the database, then judges by it (once its
            # write returns to the event loop), so the second may follow before the first does.
            await asyncio.to_thread(
                wait_until, lambda: before not in (one.service.policy, two.service.policy),
                "the edit on both collectors",
            )  # fmt: skip
            assert one.service.policy == two.service.policy
            # The second collector's own file is unchanged: it follows the version in force.
            assert "grace_hours = 48" not in second.policy.read_text()
            # The re-judging the edit started ends, and gives its lease up (on a loaded machine
            # it may still run when the second collector has the edit).
            def holder() -> tuple[str, dt.datetime] | None:
                return one.store.coordination.lease_holder("policy-rejudge", one.service.now())

            await asyncio.to_thread(wait_until, lambda: holder() is None,
                                    "the re-judging lease given up")  # fmt: skip
            return one.store.policies.version(), 0 if holder() is None else 1
        finally:
            stop.set()
            await asyncio.gather(*watchers)
            await one.stop(0)
            await two.stop(0)

    version, rejudge_held = asyncio.run(scenario())
    assert (version, rejudge_held) == (2, 0)  # published once; the re-judging lease given up


def test_a_dashboard_session_made_through_one_collector_is_known_to_another(
    tmp_path: Path,
) -> None:
    target = fresh_database(tmp_path)
    one, two = Store.open(target), Store.open(target)
    now = [1_000_000.0]
    try:
        first = auth.Sessions(idle_seconds=60, absolute_seconds=300, clock=lambda: now[0],
                              backend=auth.StoredSessions(one))  # fmt: skip
        second = auth.Sessions(idle_seconds=60, absolute_seconds=300, clock=lambda: now[0],
                               backend=auth.StoredSessions(two))  # fmt: skip
        made = first.create("0123456789abcdef", "李伟", "viewer", "zh")
        now[0] += 59
        found = second.get(made.session_id)
        assert found is not None and (found.name, found.role, found.csrf, found.lang) == (
            "李伟", "viewer", made.csrf, "zh")
        now[0] += 59  # idle 59 s since the second collector saw it: still live on the first
        assert first.get(made.session_id) is not None
        # Only the id's SHA-256 is kept: the database opens no session.
        rows = raw(target)
        try:
            dump = str(rows.execute("SELECT * FROM dashboard_sessions").fetchall())
        finally:
            rows.close()
        assert made.session_id not in dump and len(second) == 1
        second.end_credential("0123456789abcdef")  # revoked, seen on the second
        assert first.get(made.session_id) is None
        kept = first.create("0123456789abcdef", "李伟", "viewer")
        now[0] += 61
        assert second.get(kept.session_id) is None  # idle too long, wherever asked
    finally:
        one.close()
        two.close()
