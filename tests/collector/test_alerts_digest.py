"""Composing IT alert digests from the store, at explicit times: what is new, still open or
resolved; once per interval, once after a restart, and once across collectors sharing one
database (both engines)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.alerts.digest import RESOLVED_AFTER, compose
from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.store import DatabaseTarget, Store
from devposture.policy import default_policy
from tests.collector.alert_fleet import NOW, device, enroll, flag_clone, report, settings
from tests.databases import fresh_database

POLICY = default_policy()
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def database(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path)


@pytest.fixture
def store(database: DatabaseTarget) -> Iterator[Store]:
    store = Store.open(database)
    yield store
    store.close()


def _channels(folder: Path) -> AlertSettings:
    """Settings with a webhook set (a channel must be, for messages to be queued)."""
    return settings(folder, webhook="http://127.0.0.1:9")


def _told(store: Store) -> list[tuple[str, str, str]]:
    """(status, kind, hostname or collector) of the pending message's items."""
    (pending,) = store.alerts.due(NOW + dt.timedelta(days=400))
    return [(str(i["status"]), str(i["kind"]), str(i.get("hostname", i.get("collector"))))
            for i in pending.items]  # fmt: skip


def test_a_failure_past_its_grace_a_stale_device_and_a_clone_are_told_as_new(
    store: Store, tmp_path: Path
) -> None:
    enroll(store, device(1))  # firewall failing for 5 h: past its 4 h grace
    report(store, device(1), "laptop-wang", NOW - 5 * 60 * MINUTE, {"firewall": "FAIL"})
    report(store, device(1), "laptop-wang", NOW - MINUTE, {"firewall": "FAIL"})
    enroll(store, device(2))  # failing for 1 h: in grace, not told
    report(store, device(2), "laptop-li", NOW - 60 * MINUTE, {"firewall": "FAIL"})
    enroll(store, device(3))  # silent for three days: STALE
    report(store, device(3), "desk-zhao", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    enroll(store, device(4))
    report(store, device(4), "pc-4", NOW - MINUTE, {"firewall": "PASS"})
    flag_clone(store, device(4), NOW - 30 * MINUTE)
    composed = compose(store, POLICY, _channels(tmp_path), NOW)
    assert composed is not None and composed.open_items == 3
    assert _told(store) == [
        ("new", "failing", "laptop-wang"), ("new", "stale", "desk-zhao"), ("new", "clone", "pc-4"),
    ]  # fmt: skip
    (item, *_) = store.alerts.due(NOW)[0].items
    assert item == {
        "status": "new", "kind": "failing", "device_id": device(1), "hostname": "laptop-wang",
        "check": "firewall", "check_title_zh": "防火墙已开启", "check_title_en": "Firewall on",
        "clause": "6.3.1", "since": "2026-11-29T23:00:00Z",
    }  # fmt: skip


def test_one_digest_per_interval_and_nothing_told_twice(store: Store, tmp_path: Path) -> None:
    s = _channels(tmp_path)
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    assert compose(store, POLICY, s, NOW) is not None
    assert compose(store, POLICY, s, NOW + 14 * MINUTE) is None  # within the interval
    again = compose(store, POLICY, s, NOW + 15 * MINUTE)
    assert again is not None and again.items == [] and again.open_items == 1
    assert len(store.alerts.due(NOW + dt.timedelta(days=1))) == 1  # still the first message


def test_a_resolved_item_is_told_once_and_a_reminder_after_repeat_hours(
    store: Store, tmp_path: Path
) -> None:
    s = _channels(tmp_path)
    for n, host in ((1, "laptop-wang"), (2, "laptop-li")):
        enroll(store, device(n))
        report(store, device(n), host, NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    assert compose(store, POLICY, s, NOW) is not None
    report(store, device(1), "laptop-wang", NOW + MINUTE, {"firewall": "PASS"})  # back
    (pending,) = store.alerts.due(NOW)
    store.alerts.record_attempt(pending.delivery_id, NOW, "sent", "sent")
    away = compose(store, POLICY, s, NOW + 15 * MINUTE)  # away, not yet for RESOLVED_AFTER
    assert away is not None and away.items == [] and away.open_items == 2
    back = compose(store, POLICY, s, NOW + 15 * MINUTE + RESOLVED_AFTER)
    assert back is not None
    assert [(i["status"], i["hostname"]) for i in back.items] == [("resolved", "laptop-wang")]
    later = compose(store, POLICY, s, NOW + 30 * MINUTE + RESOLVED_AFTER)
    assert later is not None and later.items == []
    next_day = compose(store, POLICY, s, NOW + dt.timedelta(hours=24))
    assert next_day is not None
    assert [(i["status"], i["hostname"]) for i in next_day.items] == [("reminder", "laptop-li")]


def test_a_digest_composed_while_the_last_is_undelivered_joins_it(
    store: Store, tmp_path: Path
) -> None:
    s = _channels(tmp_path)
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    compose(store, POLICY, s, NOW)
    enroll(store, device(2))
    report(store, device(2), "laptop-li", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    compose(store, POLICY, s, NOW + 15 * MINUTE)
    (pending,) = store.alerts.due(NOW + dt.timedelta(days=1))
    assert [(i["status"], i["hostname"]) for i in pending.items] == [
        ("new", "laptop-wang"), ("new", "laptop-li"),
    ]  # fmt: skip
    assert pending.open_items == 2 and pending.composed == NOW + 15 * MINUTE


def test_a_digest_composed_after_a_failed_attempt_of_the_last_waits_apart(
    store: Store, tmp_path: Path
) -> None:
    # The receiver may have taken the first (answered 500, or timed out): its retry comes with
    # the same digest_id and items, not those items again under a new id.
    s = _channels(tmp_path)
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    assert compose(store, POLICY, s, NOW) is not None
    (tried,) = store.alerts.due(NOW)
    store.alerts.record_attempt(tried.delivery_id, NOW, "pending", "HTTP 500", NOW + MINUTE)
    enroll(store, device(2))
    report(store, device(2), "laptop-li", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    compose(store, POLICY, s, NOW + 15 * MINUTE)
    enroll(store, device(3))
    report(store, device(3), "laptop-zhao", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    compose(store, POLICY, s, NOW + 30 * MINUTE)  # joins the one never tried
    retried, later = store.alerts.due(NOW + dt.timedelta(days=1))
    assert (retried.delivery_id, retried.digest_id) == (tried.delivery_id, tried.digest_id)
    assert [i["hostname"] for i in retried.items] == ["laptop-wang"]
    assert [i["hostname"] for i in later.items] == ["laptop-li", "laptop-zhao"]
    assert later.digest_id != tried.digest_id


def test_a_restart_tells_nothing_again(database: DatabaseTarget, tmp_path: Path) -> None:
    s = _channels(tmp_path)
    first = Store.open(database)
    try:
        enroll(first, device(1))
        report(first, device(1), "laptop-wang", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
        assert compose(first, POLICY, s, NOW) is not None
    finally:
        first.close()
    restarted = Store.open(database)
    try:
        assert compose(restarted, POLICY, s, NOW + MINUTE) is None  # the interval holds
        later = compose(restarted, POLICY, s, NOW + 15 * MINUTE)
        assert later is not None and later.items == []
    finally:
        restarted.close()


def test_two_collectors_composing_at_once_record_one_digest(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """Two stores on one database (two collectors on one PostgreSQL, on the PostgreSQL leg)
    compose the same interval at the same moment, each from its own thread: one digest is
    recorded and queued, the other finds it composed."""
    s = _channels(tmp_path)
    setup = Store.open(database)
    try:
        for n in range(1, 6):
            enroll(setup, device(n))
            report(setup, device(n), f"pc-{n}", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    finally:
        setup.close()
    stores = [Store.open(database), Store.open(database)]
    start = threading.Barrier(2)
    results: list[object] = []

    def run(store: Store) -> None:
        start.wait()
        results.append(compose(store, POLICY, s, NOW))

    try:
        threads = [threading.Thread(target=run, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(r is None for r in results) == [False, True]
        (pending,) = stores[0].alerts.due(NOW)
        assert len(pending.items) == 5
        rows = stores[1]._db.execute("SELECT COUNT(*) FROM alert_digests").fetchone()
        assert rows[0] == 1
    finally:
        for store in stores:
            store.close()


def test_a_failing_device_gone_silent_is_told_stale_not_resolved(
    store: Store, tmp_path: Path
) -> None:
    s = _channels(tmp_path)
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - 5 * 60 * MINUTE, {"firewall": "FAIL"})
    compose(store, POLICY, s, NOW)
    silent = NOW + dt.timedelta(hours=48)
    later = compose(store, POLICY, s, silent)
    assert later is not None
    assert [(i["status"], i["kind"]) for i in later.items] == [("new", "stale")]


def test_a_revoked_device_is_not_told_and_its_failures_close_without_a_word(
    store: Store, tmp_path: Path
) -> None:
    # A stolen laptop, revoked: it was told as failing, then as "resolved" once it fell
    # silent (a revoked device is never STALE), as if someone had fixed it.
    s = _channels(tmp_path)
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - 5 * 60 * MINUTE, {"firewall": "FAIL"})
    first = compose(store, POLICY, s, NOW)
    assert first is not None and [(i["status"], i["kind"]) for i in first.items] == [
        ("new", "failing")
    ]
    assert store.identity.set_device_status(device(1), "revoked", NOW + MINUTE, "stolen")
    later = compose(store, POLICY, s, NOW + dt.timedelta(hours=49))
    assert later is not None and later.items == []
    assert store.alerts.open_items() == {}


def test_with_no_channel_set_nothing_is_queued(store: Store) -> None:
    enroll(store, device(1))
    report(store, device(1), "laptop-wang", NOW - dt.timedelta(days=3), {"firewall": "PASS"})
    assert compose(store, POLICY, AlertSettings(), NOW) is not None
    assert store.alerts.due(NOW) == []


def test_a_collectors_own_problems_name_it_as_the_product_does() -> None:
    """IT reads 采集器 everywhere else (CLI, dashboard): an alert saying 采集端 read as a
    second, unknown component."""
    from devposture.collector.alerts import detect  # noqa: PLC0415
    from devposture.collector.alerts.render import line  # noqa: PLC0415

    expires = (NOW + dt.timedelta(days=3)).isoformat()
    certificate: dict[str, str | int] = {
        "kind": detect.CERTIFICATE,
        "collector": "c1",
        "certificate": "server",
        "expires_at": expires,
    }
    disk: dict[str, str | int] = {"kind": detect.DISK, "collector": "c1", "used_percent": 93}
    for detail in (certificate, disk):
        text = line(detail, 0, NOW)
        assert text.startswith("采集器 c1：") and "采集端" not in text
