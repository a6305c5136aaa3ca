"""The SQLite store: WAL, append-only reports, single-use tokens, verdict ordering."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from collector import store as store_module
from collector.records import from_us
from collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    StoreOutcome,
    TokenRejected,
)
from collector.tokens import new_token

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def _device(store: Store, device_id: str = "d1") -> None:
    token = new_token()
    store.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
    store.enroll(token, NOW, DeviceRecord(device_id, "01", NOW + dt.timedelta(days=90)))


def _report(report_id: str, collected: dt.datetime, device_id: str = "d1") -> ReportRecord:
    return ReportRecord(
        report_id, device_id, NOW, collected, "1", b"body", "h", "linux", "Debian", "12"
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "db.sqlite")


def test_database_is_in_wal_mode(store: Store) -> None:
    assert store.journal_mode() == "wal"


def test_reports_cannot_be_changed_or_deleted(store: Store, tmp_path: Path) -> None:
    _device(store)
    store.store_report(_report("r1", NOW), [])
    raw = sqlite3.connect(tmp_path / "db.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE reports SET body = x'00'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM reports")
    raw.close()
    assert store.report_ids() == ["r1"]


def test_duplicate_and_conflicting_report_ids(store: Store) -> None:
    _device(store, "d1")
    _device(store, "d2")
    assert store.store_report(_report("r1", NOW, "d1"), []) is StoreOutcome.STORED
    assert store.store_report(_report("r1", NOW, "d1"), []) is StoreOutcome.DUPLICATE
    assert store.store_report(_report("r1", NOW, "d2"), []) is StoreOutcome.CONFLICT
    assert store.report_ids() == ["r1"]


def test_an_older_report_arriving_late_does_not_replace_a_newer_verdict(store: Store) -> None:
    _device(store)
    store.store_report(_report("new", NOW), [CheckResult("firewall", "PASS", "on")])
    store.store_report(
        _report("old", NOW - dt.timedelta(days=1)), [CheckResult("firewall", "FAIL", "off")]
    )
    rows = [r for r in store.device_results() if r.check_id == "firewall"]
    assert [(r.state, r.reason) for r in rows] == [("PASS", "on")]


def test_token_is_spent_atomically_with_the_enrollment(store: Store) -> None:
    token = new_token()
    store.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
    store.enroll(token, NOW, DeviceRecord("d1", "01", NOW))
    with pytest.raises(TokenRejected, match="already used"):
        store.enroll(token, NOW, DeviceRecord("d2", "02", NOW))
    assert not store.device_exists("d2")
    assert store.tokens()[0].uses_left == 0


def test_token_secret_is_not_stored(store: Store, tmp_path: Path) -> None:
    token = new_token()
    store.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
    raw = (tmp_path / "db.sqlite").read_bytes() + (tmp_path / "db.sqlite-wal").read_bytes()
    assert token.secret.encode() not in raw
    assert token.token_id.encode() in raw


def test_a_schema_1_database_is_migrated_with_each_certificate_as_generation_1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(store_module._SCHEMA)
    old.execute("INSERT INTO schema_version(version) VALUES (1)")
    old.execute(
        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us)"
        " VALUES ('d1', 1, 't1', 'abc', 2000000000000000)"
    )
    old.commit()
    old.close()
    migrated = Store.open(path)
    try:
        (device,) = migrated.devices()
        assert (device.status, device.generation, device.clone_suspected_at) == ("active", 1, None)
        version = migrated._db.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == store_module.SCHEMA_VERSION == 6
    finally:
        migrated.close()


def _since(store: Store, check_id: str = "firewall") -> dt.datetime:
    (micros,) = store._db.execute(
        "SELECT since_us FROM check_results WHERE device_id = 'd1' AND check_id = ?", (check_id,)
    ).fetchone()
    return from_us(micros)


def test_a_current_verdict_knows_since_when_its_state_holds(store: Store) -> None:
    """The fleet's standing now is counted from check_results alone (fleet_counts), so each
    verdict must carry when its state began: kept while the state repeats, moved when it
    changes, untouched by a late older report, kept through a policy re-evaluation."""
    _device(store)
    hour = dt.timedelta(hours=1)
    store.store_report(_report("a", NOW), [CheckResult("firewall", "PASS", "on")])
    assert _since(store) == NOW
    store.store_report(_report("b", NOW + hour), [CheckResult("firewall", "FAIL", "off")])
    assert _since(store) == NOW + hour
    store.store_report(_report("c", NOW + 2 * hour), [CheckResult("firewall", "FAIL", "off")])
    assert _since(store) == NOW + hour
    store.store_report(_report("old", NOW - hour), [CheckResult("firewall", "PASS", "on")])
    assert _since(store) == NOW + hour
    store.replace_results("d1", "c", NOW + 2 * hour, NOW + 3 * hour,
                          [CheckResult("firewall", "FAIL", "off, judged again")])  # fmt: skip
    assert _since(store) == NOW + hour
    store.replace_results("d1", "c", NOW + 2 * hour, NOW + 4 * hour,
                          [CheckResult("firewall", "UNKNOWN", "no longer judged so")])  # fmt: skip
    assert _since(store) == NOW + 4 * hour


def test_schema_5_fills_in_since_when_from_the_history(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    old = Store.open(path)
    _device(old)
    old.store_report(_report("a", NOW), [CheckResult("firewall", "FAIL", "off")])
    old.store_report(_report("b", NOW + dt.timedelta(hours=1)),
                     [CheckResult("firewall", "FAIL", "off")])  # fmt: skip
    old.close()
    # As a schema 4 collector left it: verdicts without since_us.
    raw = sqlite3.connect(path)
    raw.execute("UPDATE check_results SET since_us = NULL")
    raw.execute("UPDATE schema_version SET version = 4")
    raw.commit()
    raw.close()
    upgraded = Store.open(path)
    try:
        assert _since(upgraded) == NOW
    finally:
        upgraded.close()
