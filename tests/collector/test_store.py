"""The store on either engine: append-only reports, single-use tokens, verdict ordering; the
SQLite file's WAL and its migrations from older schemas; both engines' schemas alike."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.evidence import chain
from devposture.collector.store import _PARTS as store_parts
from devposture.collector.store import (
    CheckResult,
    DeviceRecord,
    ReportRecord,
    Store,
    StoreOutcome,
    TokenRejected,
    database_errors,
)
from devposture.collector.store import schema as store_schema
from devposture.collector.store.base import from_us
from devposture.collector.store.engine import AnyDatabase, SqliteDatabase
from devposture.collector.store.target import SqliteTarget
from devposture.collector.tokens import new_token
from tests.databases import columns, fresh_database, fresh_postgres, on_postgresql, raw
from tests.fresh_interpreter import modules_after

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def _device(store: Store, device_id: str = "d1") -> None:
    token = new_token()
    store.identity.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(token, NOW, DeviceRecord(device_id, "01", NOW + dt.timedelta(days=90)))


def _report(report_id: str, collected: dt.datetime, device_id: str = "d1") -> ReportRecord:
    return ReportRecord(
        report_id, device_id, NOW, collected, "1", b"body", "h", "linux", "Debian", "12"
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(fresh_database(tmp_path, "db.sqlite"))
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.engine_free
def test_load_parts_imports_every_part_s_module() -> None:
    """What `serve` and its report writer call before they freeze what they loaded out of the
    garbage collector's walks: every part's module (a new interpreter, which has none yet)."""
    loaded = modules_after("from devposture.collector.store import load_parts\nload_parts()")
    modules = [f"devposture.collector.store.{m}" for m in store_parts.values()]
    assert [m for m in modules if m not in loaded] == []


def test_each_part_is_made_once_when_asked_for_and_is_what_the_store_declares(
    store: Store,
) -> None:
    """The parts a Store makes when first asked for (`_PARTS`) are the attributes it declares,
    each of the class its annotation names (what mypy checks callers against) from the module
    `_PARTS` names, made once."""
    assert set(store_parts) == set(Store.__annotations__)
    for name, module in store_parts.items():
        part = getattr(store, name)
        assert type(part).__name__ == Store.__annotations__[name]
        assert type(part).__module__ == f"devposture.collector.store.{module}"
        assert getattr(store, name) is part
    with pytest.raises(AttributeError, match="no attribute 'no_such_part'"):
        _ = store.no_such_part


# SQLite's journal mode (PostgreSQL has its own write-ahead log, not a setting of ours).
@pytest.mark.sqlite_only
def test_database_is_in_wal_mode(store: Store) -> None:
    assert store.journal_mode() == "wal"


def test_reports_cannot_be_changed_or_deleted(store: Store) -> None:
    _device(store)
    store.reports.store_report(_report("r1", NOW), [])
    other = raw(store.target)
    try:
        with pytest.raises(database_errors(), match="reports are append-only"):
            other.execute("UPDATE reports SET body = ?", (b"\x00",))
        with pytest.raises(database_errors(), match="reports are append-only"):
            other.execute("DELETE FROM reports")
    finally:
        other.close()
    assert store.reports.report_ids() == ["r1"]


def test_duplicate_and_conflicting_report_ids(store: Store) -> None:
    _device(store, "d1")
    _device(store, "d2")
    assert store.reports.store_report(_report("r1", NOW, "d1"), []) is StoreOutcome.STORED
    assert store.reports.store_report(_report("r1", NOW, "d1"), []) is StoreOutcome.DUPLICATE
    assert store.reports.store_report(_report("r1", NOW, "d2"), []) is StoreOutcome.CONFLICT
    assert store.reports.report_ids() == ["r1"]


def test_an_older_report_arriving_late_does_not_replace_a_newer_verdict(store: Store) -> None:
    _device(store)
    store.reports.store_report(_report("new", NOW), [CheckResult("firewall", "PASS", "on")])
    store.reports.store_report(
        _report("old", NOW - dt.timedelta(days=1)), [CheckResult("firewall", "FAIL", "off")]
    )
    rows = [r for r in store.reports.device_results() if r.check_id == "firewall"]
    assert [(r.state, r.reason) for r in rows] == [("PASS", "on")]


def test_token_is_spent_atomically_with_the_enrollment(store: Store) -> None:
    token = new_token()
    store.identity.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(token, NOW, DeviceRecord("d1", "01", NOW))
    with pytest.raises(TokenRejected, match="already used"):
        store.identity.enroll(token, NOW, DeviceRecord("d2", "02", NOW))
    assert not store.reports.device_exists("d2")
    assert store.identity.tokens()[0].uses_left == 0


def _tables(database: AnyDatabase) -> list[str]:
    """The names of the database's tables (the engine's own excepted), sorted."""
    if isinstance(database, SqliteDatabase):
        sql = ("SELECT name FROM sqlite_master WHERE type = 'table'"
               " AND name NOT LIKE 'sqlite_%'")  # fmt: skip
    else:
        sql = ("SELECT table_name FROM information_schema.tables"
               " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")  # fmt: skip
    return sorted(str(row[0]) for row in database.execute(sql).fetchall())


def _every_value(database: AnyDatabase) -> bytes:
    """Every value of every row of every table, as bytes (text UTF-8 encoded)."""
    values = []
    for table in _tables(database):
        for row in database.execute(f"SELECT * FROM {table}").fetchall():
            for value in row:
                is_bytes = isinstance(value, bytes | memoryview)
                values.append(bytes(value) if is_bytes else str(value).encode())
    return b"\n".join(values)


def test_token_secret_is_not_stored(store: Store) -> None:
    token = new_token()
    store.identity.add_token(token, NOW, NOW + dt.timedelta(hours=1), uses=1)
    stored = _every_value(store._db)
    assert token.secret.encode() not in stored
    assert token.token_id.encode() in stored
    if isinstance(store.target, SqliteTarget):
        # And nowhere in the file's bytes either (its free pages and its WAL included).
        path = store.target.path
        raw_bytes = path.read_bytes() + path.with_name(f"{path.name}-wal").read_bytes()
        assert token.secret.encode() not in raw_bytes
        assert token.token_id.encode() in raw_bytes


# SQLite files of older schemas are migrated; PostgreSQL databases start at schema 8.
@pytest.mark.sqlite_only
def test_a_schema_1_database_is_migrated_with_each_certificate_as_generation_1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(store_schema._SQLITE_REPORTS)
    old.execute("INSERT INTO schema_version(version) VALUES (1)")
    old.execute(
        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us)"
        " VALUES ('d1', 1, 't1', 'abc', 2000000000000000)"
    )
    old.commit()
    old.close()
    migrated = Store.open(path)
    try:
        (device,) = migrated.identity.devices()
        assert (device.status, device.generation, device.clone_suspected_at) == ("active", 1, None)
        version = migrated._db.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == store_schema.SCHEMA_VERSION == 32
    finally:
        migrated.close()


def database_at_version(path: Path, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database as a collector of schema `version` left it: the steps up to that version
    only (older collectors ran the same steps: a step is never edited once released)."""
    with monkeypatch.context() as patch:
        steps = {k: v for k, v in store_schema.MIGRATIONS.items() if k <= version}
        patch.setattr(store_schema, "MIGRATIONS", steps)
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


# The migrations of SQLite files from every older schema (PostgreSQL starts at schema 8).
@pytest.mark.sqlite_only
def test_an_upgraded_database_ends_identical_to_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgraded from any older schema, a database has the same tables, columns, indexes and
    triggers as a new one (each step brings its version up whatever came before)."""
    Store.open(tmp_path / "new.db").close()
    for version in range(1, store_schema.SCHEMA_VERSION):
        path = tmp_path / f"from-{version}.db"
        database_at_version(path, version, monkeypatch)
        Store.open(path).close()
        assert schema_of(path) == schema_of(tmp_path / "new.db"), f"from schema {version}"


@pytest.mark.sqlite_only
def test_a_step_that_fails_midway_leaves_the_version_before_it_and_the_next_start_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector upgraded on a disk that fills (or killed) during a migration step: the
    step is one transaction, so the database stays whole at the version before it, holding
    nothing of the step, and the next start runs the step again from its beginning."""
    path = tmp_path / "upgraded.db"
    last = store_schema.SCHEMA_VERSION
    database_at_version(path, last - 1, monkeypatch)
    before = schema_of(path)

    def disk_full(connection: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patch:
        steps = dict(store_schema.MIGRATIONS)
        steps[last] = (*steps[last], disk_full)  # after the step's own statements
        patch.setattr(store_schema, "MIGRATIONS", steps)
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            Store.open(path)
    assert schema_of(path) == before
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == last - 1
    finally:
        raw.close()
    Store.open(path).close()
    Store.open(tmp_path / "new.db").close()
    assert schema_of(path) == schema_of(tmp_path / "new.db")


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


# SQLite's CREATE TABLEs as first released, which its migrations extend.
@pytest.mark.sqlite_only
def test_tables_that_migrations_extend_keep_their_first_create_table(tmp_path: Path) -> None:
    """An older database already has these tables, so `CREATE TABLE IF NOT EXISTS` skips
    them there: a column written into their CREATE TABLE would reach new databases only. A
    new column goes into a MIGRATIONS step, which new and old databases both run."""
    raw = sqlite3.connect(tmp_path / "bare.db")
    try:
        raw.executescript(store_schema._SQLITE_REPORTS + store_schema._SQLITE_IDENTITY)
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
    store.reports.store_report(_report("a", NOW), [CheckResult("firewall", "PASS", "on")])
    assert _since(store) == NOW
    store.reports.store_report(_report("b", NOW + hour), [CheckResult("firewall", "FAIL", "off")])
    assert _since(store) == NOW + hour
    store.reports.store_report(
        _report("c", NOW + 2 * hour), [CheckResult("firewall", "FAIL", "off")]
    )
    assert _since(store) == NOW + hour
    store.reports.store_report(_report("old", NOW - hour), [CheckResult("firewall", "PASS", "on")])
    assert _since(store) == NOW + hour
    store.reports.replace_results("d1", "c", NOW + 2 * hour, NOW + 3 * hour,
                          [CheckResult("firewall", "FAIL", "off, judged again")])  # fmt: skip
    assert _since(store) == NOW + hour
    store.reports.replace_results("d1", "c", NOW + 2 * hour, NOW + 4 * hour,
                          [CheckResult("firewall", "UNKNOWN", "no longer judged so")])  # fmt: skip
    assert _since(store) == NOW + 4 * hour


# A SQLite file of schema 4 migrated (PostgreSQL starts at schema 8).
@pytest.mark.sqlite_only
def test_schema_5_fills_in_since_when_from_the_history(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    old = Store.open(path)
    _device(old)
    old.reports.store_report(_report("a", NOW), [CheckResult("firewall", "FAIL", "off")])
    old.reports.store_report(_report("b", NOW + dt.timedelta(hours=1)),
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


def _indexes(database: AnyDatabase) -> dict[str, tuple[str, list[str], bool]]:
    """Each index made by the schema (not those of primary keys): its table, its columns in
    order, and whether it is partial."""
    if isinstance(database, SqliteDatabase):
        rows = database.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        return {
            name: (table, [row[2] for row in database.execute(f"PRAGMA index_info({name})")],
                   " WHERE " in sql.upper())
            for name, table, sql in rows
        }  # fmt: skip
    rows = database.execute(
        "SELECT i.relname, t.relname, x.indpred IS NOT NULL,"
        " (SELECT string_agg(a.attname, ',' ORDER BY k.n)"
        "  FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)"
        "  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum)"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relnamespace = current_schema()::regnamespace AND NOT x.indisprimary"
    ).fetchall()
    return {str(name): (str(table), str(names).split(","), bool(partial))
            for name, table, partial, names in rows}  # fmt: skip


def _guarded(database: AnyDatabase) -> set[str]:
    """The tables that have triggers: the append-only ones, check_results, whose triggers
    keep each device's count of passing verdicts (schema 18), and devices, whose trigger
    voids a group's marks when a device changes group (schema 21)."""
    if isinstance(database, SqliteDatabase):
        sql = "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = ("SELECT event_object_table FROM information_schema.triggers"
               " WHERE trigger_schema = current_schema()")  # fmt: skip
    return {str(row[0]) for row in database.execute(sql).fetchall()}


@pytest.mark.skipif(
    not on_postgresql(),
    reason="needs a PostgreSQL server (DEVPOSTURE_TEST_POSTGRESQL): the PostgreSQL leg of"
    " `make test` runs it",
)
def test_postgresql_and_sqlite_define_the_same_tables_columns_and_indexes(
    tmp_path: Path,
) -> None:
    """The store's SQL is written once for both engines, so both schemas must hold the same
    tables, with the same columns in the same order (`SELECT *` reads them alike), the same
    indexes, and the same append-only tables. A column added to one schema only fails here."""
    sqlite = Store.open(tmp_path / "new.sqlite")
    postgresql = Store.open(fresh_postgres())
    try:
        tables = _tables(sqlite._db)
        assert _tables(postgresql._db) == tables
        assert "evidence_chain" in tables and "reports" in tables
        for table in tables:
            assert columns(postgresql._db, table) == columns(sqlite._db, table), table
        assert _indexes(postgresql._db) == _indexes(sqlite._db)
        guarded = {*store_schema.APPEND_ONLY, "check_results", "devices"}
        assert _guarded(postgresql._db) == _guarded(sqlite._db) == guarded
    finally:
        sqlite.close()
        postgresql.close()


@pytest.mark.skipif(
    not on_postgresql(),
    reason="needs a PostgreSQL server (DEVPOSTURE_TEST_POSTGRESQL): the PostgreSQL leg of"
    " `make test` runs it",
)
def test_the_collector_s_postgresql_sessions_do_not_jit_compile_and_keep_the_address_options(
) -> None:
    """JIT compiled a large fleet's report statement for 100-200 ms and saved less: the
    store's connections turn it off, whatever the server's default, and keep the options the
    address gives (here the test's own schema, as `?options=-csearch_path=...`)."""
    target = fresh_postgres()
    store = Store.open(target)
    try:
        assert store._db.execute("SHOW jit").fetchone()[0] == "off"
        schema = target.url.rsplit("search_path%3D", 1)[1]
        assert store._db.execute("SELECT current_schema()").fetchone()[0] == schema
        name = store._db.execute("SELECT current_setting('application_name')").fetchone()[0]
        assert name == "devposture-collector"
    finally:
        store.close()


def test_a_nul_in_a_text_field_is_stored_alike_on_both_engines(store: Store) -> None:
    """PostgreSQL's text cannot hold NUL: an agent's NUL becomes U+FFFD on either engine, in
    the rows and in the evidence chain alike, and the body keeps its bytes."""
    _device(store)
    body = b"\x00raw\x00"
    record = ReportRecord("r\x00", "d1", NOW, NOW, "1.0\x00", body, "pc\x00", "linux", "Debian",
                          "12")  # fmt: skip
    assert store.reports.store_report(record, [CheckResult("firewall", "FAIL", "off\x00")]) \
        is StoreOutcome.STORED  # fmt: skip
    (row,) = store._db.execute(
        "SELECT r.report_id, r.agent_version, r.body, c.reason, d.hostname FROM reports r"
        " JOIN check_results c ON c.report_id = r.report_id"
        " JOIN devices d ON d.device_id = r.device_id"
    ).fetchall()
    assert tuple(row[:2]) == ("r\ufffd", "1.0\ufffd") and bytes(row[2]) == body
    assert tuple(row[3:]) == ("off\ufffd", "pc\ufffd")
    store.sealing.seal_all()
    head = store.evidence.chain_head()
    assert head is not None
    reports = [r for e in store.evidence.chain_entries(1, head.seq) for r in chain.as_reports(e)
               if r.kind == "report"]  # fmt: skip
    assert [e.key for e in reports] == ["r\ufffd"]
    assert reports[0].record()["agent_version"] == "1.0\ufffd"
