"""The SQLite store: WAL, append-only reports, single-use tokens, verdict ordering."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from devposture.collector import store as store_module
from devposture.collector.identity_store import IDENTITY_SCHEMA
from devposture.collector.records import from_us
from devposture.collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    StoreOutcome,
    TokenRejected,
)
from devposture.collector.tokens import new_token

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
        assert version == store_module.SCHEMA_VERSION == 8
    finally:
        migrated.close()


def database_at_version(path: Path, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database as a collector of schema `version` left it: the steps up to that version
    only (older collectors ran the same steps: a step is never edited once released)."""
    with monkeypatch.context() as patch:
        steps = {k: v for k, v in store_module.MIGRATIONS.items() if k <= version}
        patch.setattr(store_module, "MIGRATIONS", steps)
        Store.open(path).close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == version
    finally:
        raw.close()


def schema_of(path: Path) -> dict[str, object]:
    """Every table's, index's and trigger's definition and every table's columns."""
    raw = sqlite3.connect(path)
    try:
        objects = raw.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            " ORDER BY type, name"
        ).fetchall()
        columns = {
            name: raw.execute(f"PRAGMA table_info({name})").fetchall()
            for kind, name, _ in objects
            if kind == "table"
        }
    finally:
        raw.close()
    return {"objects": objects, "columns": columns}


def test_an_upgraded_database_ends_identical_to_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgraded from any older schema, a database has the same tables, columns, indexes and
    triggers as a new one (each step brings its version up whatever came before)."""
    Store.open(tmp_path / "new.db").close()
    for version in range(1, store_module.SCHEMA_VERSION):
        path = tmp_path / f"from-{version}.db"
        database_at_version(path, version, monkeypatch)
        Store.open(path).close()
        assert schema_of(path) == schema_of(tmp_path / "new.db"), f"from schema {version}"


# The columns of the tables that migration steps extend, as their CREATE TABLE first made them.
FIRST_COLUMNS = {
    "enrollment_tokens": [
        "token_id", "secret_hash", "created_us", "expires_us", "uses_left", "revoked_us",
    ],
    "devices": [
        "device_id", "enrolled_us", "token_id", "cert_serial", "cert_not_after_us", "hostname",
        "os_family", "os_name", "os_version", "agent_version", "last_report_us",
    ],
    "reports": ["report_id", "device_id", "received_us", "collected_us", "agent_version", "body"],
    "check_results": [
        "device_id", "check_id", "state", "reason", "report_id", "collected_us", "evaluated_us",
    ],
}  # fmt: skip


def test_tables_that_migrations_extend_keep_their_first_create_table(tmp_path: Path) -> None:
    """An older database already has these tables, so `CREATE TABLE IF NOT EXISTS` skips
    them there: a column written into their CREATE TABLE would reach new databases only. A
    new column goes into a MIGRATIONS step, which new and old databases both run."""
    raw = sqlite3.connect(tmp_path / "bare.db")
    try:
        raw.executescript(store_module._SCHEMA + IDENTITY_SCHEMA)
        columns = {
            table: [row[1] for row in raw.execute(f"PRAGMA table_info({table})")]
            for table in FIRST_COLUMNS
        }
    finally:
        raw.close()
    assert columns == FIRST_COLUMNS


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
