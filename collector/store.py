"""The collector's durable storage: an embedded SQLite database in WAL mode.

Reports are append-only (triggers refuse UPDATE and DELETE), each stored once by its report id.
A write returns only after its transaction is committed with `synchronous=FULL`, so the service
can acknowledge a report the moment this module returns (DESIGN principle 5). Reports are
written in groups (`store_reports`): one transaction, one disk sync, each report inside its own
savepoint so that one bad report costs only itself.

Every method runs on the caller's thread; the gRPC service funnels all calls through one
worker thread, and the CLI opens its own Store. SQLite's WAL lets both read while one writes.
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from devposture.collector.admin.records import ADMIN_SCHEMA, AdminRecords
from devposture.collector.compliance import DeviceSeen, Waiver
from devposture.collector.disk_space import StorageFull
from devposture.collector.evidence import chain
from devposture.collector.fleet_counts import (
    Failure,
    FleetFigures,
    failing_count,
    failing_now,
    fleet_figures,
    fleet_figures_as_of,
)
from devposture.collector.identity_store import (
    GROUPS_MIGRATION,
    IDENTITY_MIGRATION,
    IDENTITY_SCHEMA,
    DeviceRecord,
    IdentityRecords,
    TokenInfo,
    TokenRejected,
)
from devposture.collector.records import from_us, to_us
from devposture.policy import Policy

SCHEMA_VERSION = 8
# Schema 3: each report's measured clock skew, and each device's latest skew and outbox figures.
DELIVERY_MIGRATION = (
    # Ingest asks for a device's newest collection on every report: without this index SQLite
    # reads all of the device's reports, bodies included, and ingest slows as history grows.
    "CREATE INDEX IF NOT EXISTS reports_by_collection ON reports(device_id, collected_us)",
    "ALTER TABLE reports ADD COLUMN clock_skew_ms INTEGER",
    "ALTER TABLE devices ADD COLUMN clock_skew_ms INTEGER",
    "ALTER TABLE devices ADD COLUMN outbox_pending INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE devices ADD COLUMN outbox_coalesced_total INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE devices ADD COLUMN outbox_dropped_total INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE devices ADD COLUMN outbox_corrupt_total INTEGER NOT NULL DEFAULT 0",
)
# Schema 4: the evidence chain (its table is in the schema); records already stored are chained
# once, in a stable order, so an upgraded database is covered from then on.
Step = str | Callable[[sqlite3.Connection], None]
EVIDENCE_MIGRATION: tuple[Step, ...] = (chain.chain_existing,)
# Schema 5: each current verdict knows since when its state holds, so the fleet's standing
# now is counted from one index (collector/fleet_counts.py) instead of the whole history.
def _add_standing_since(connection: sqlite3.Connection) -> None:
    columns = {row[1] for row in connection.execute("PRAGMA table_info(check_results)")}
    if "since_us" not in columns:
        connection.execute("ALTER TABLE check_results ADD COLUMN since_us INTEGER")


STANDING_MIGRATION: tuple[Step, ...] = (
    _add_standing_since,
    "UPDATE check_results SET since_us = (SELECT MAX(s.since_us) FROM state_changes s"
    " WHERE s.device_id = check_results.device_id AND s.check_id = check_results.check_id)",
    "CREATE INDEX IF NOT EXISTS check_results_by_standing"
    " ON check_results(check_id, state, since_us)",
)
# Schema 6: the fleet's standing per day, kept by `serve`, for trends over weeks without
# judging the whole fleet as of each past day (9 s each over 100,000 devices).
FLEET_DAYS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS fleet_days (day TEXT NOT NULL, check_id TEXT NOT NULL,"
    " state TEXT NOT NULL, devices INTEGER NOT NULL, recorded_us INTEGER NOT NULL,"
    " PRIMARY KEY (day, check_id, state))",
)
# Schema 8: the current failures in the order they began, so the dashboard's failing-longest
# list reads a page by walking an index (a partial one: only FAIL verdicts are in it, so
# ingest updates it only when a verdict fails or stops failing).
FAILING_MIGRATION: tuple[Step, ...] = (
    "CREATE INDEX IF NOT EXISTS check_results_failing ON check_results(since_us)"
    " WHERE state = 'FAIL'",
)
MIGRATIONS: dict[int, tuple[Step, ...]] = {
    2: IDENTITY_MIGRATION, 3: DELIVERY_MIGRATION, 4: EVIDENCE_MIGRATION, 5: STANDING_MIGRATION,
    6: FLEET_DAYS_MIGRATION, 7: GROUPS_MIGRATION,  # schema 7: device groups (identity_store)
    8: FAILING_MIGRATION,
}  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS enrollment_tokens (
    token_id     TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    created_us   INTEGER NOT NULL,
    expires_us   INTEGER NOT NULL,
    uses_left    INTEGER NOT NULL,
    revoked_us   INTEGER
);

CREATE TABLE IF NOT EXISTS devices (
    device_id       TEXT PRIMARY KEY,
    enrolled_us     INTEGER NOT NULL,
    token_id        TEXT NOT NULL,
    cert_serial     TEXT NOT NULL,
    cert_not_after_us INTEGER NOT NULL,
    hostname        TEXT NOT NULL DEFAULT '',
    os_family       TEXT NOT NULL DEFAULT '',
    os_name         TEXT NOT NULL DEFAULT '',
    os_version      TEXT NOT NULL DEFAULT '',
    agent_version   TEXT NOT NULL DEFAULT '',
    last_report_us  INTEGER
);

CREATE TABLE IF NOT EXISTS reports (
    report_id     TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices(device_id),
    received_us   INTEGER NOT NULL,
    collected_us  INTEGER NOT NULL,
    agent_version TEXT NOT NULL,
    body          BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_device ON reports(device_id, received_us);

CREATE TRIGGER IF NOT EXISTS reports_are_append_only_update BEFORE UPDATE ON reports
BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END;
CREATE TRIGGER IF NOT EXISTS reports_are_append_only_delete BEFORE DELETE ON reports
BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END;

CREATE TABLE IF NOT EXISTS check_results (
    device_id     TEXT NOT NULL REFERENCES devices(device_id),
    check_id      TEXT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    report_id     TEXT NOT NULL REFERENCES reports(report_id),
    collected_us  INTEGER NOT NULL,
    evaluated_us  INTEGER NOT NULL,
    PRIMARY KEY (device_id, check_id)
);

-- Every change of a device's state for a check, with the collector's time: since when a
-- device has been failing, how long a fix took, and the fleet at any past moment.
CREATE TABLE IF NOT EXISTS state_changes (
    device_id  TEXT NOT NULL REFERENCES devices(device_id),
    check_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    since_us   INTEGER NOT NULL,
    report_id  TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id, since_us)
);
CREATE INDEX IF NOT EXISTS state_changes_by_time ON state_changes(since_us);

-- Waivers: EXEMPT for a device and a check until an expiry, with an owner and a reason.
CREATE TABLE IF NOT EXISTS waivers (
    waiver_id   TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    check_id    TEXT NOT NULL,
    owner       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_us  INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL,
    revoked_us  INTEGER
);
-- Every waiver change, for the audit trail.
CREATE TABLE IF NOT EXISTS waiver_events (
    event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    waiver_id   TEXT NOT NULL REFERENCES waivers(waiver_id),
    action      TEXT NOT NULL,
    at_us       INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS waiver_events_are_append_only_update BEFORE UPDATE ON waiver_events
BEGIN SELECT RAISE(ABORT, 'the waiver log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS waiver_events_are_append_only_delete BEFORE DELETE ON waiver_events
BEGIN SELECT RAISE(ABORT, 'the waiver log is append-only'); END;

CREATE TRIGGER IF NOT EXISTS state_changes_are_append_only_update BEFORE UPDATE ON state_changes
BEGIN SELECT RAISE(ABORT, 'state history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS state_changes_are_append_only_delete BEFORE DELETE ON state_changes
BEGIN SELECT RAISE(ABORT, 'state history is append-only'); END;
"""


def _migrate(connection: sqlite3.Connection, version: int) -> None:
    """Bring a database of an older schema up to this one, one step per version, each step
    in one transaction."""
    for target, statements in MIGRATIONS.items():
        if version >= target:
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                if isinstance(statement, str):
                    connection.execute(statement)
                else:
                    statement(connection)
            connection.execute("UPDATE schema_version SET version = ?", (target,))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # SQLite may have rolled back already (disk full)
                connection.execute("ROLLBACK")
            raise


class StoreOutcome(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    # The report id is already stored for a different device.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class OutboxFigures:
    """What the agent's outbox said about itself in a report (cumulative since install)."""

    pending: int = 0
    coalesced_total: int = 0
    dropped_total: int = 0
    corrupt_total: int = 0


@dataclass(frozen=True)
class ReportRecord:
    report_id: str
    device_id: str
    received_at: dt.datetime
    # When the facts were collected, on the collector's clock (the agent's time corrected by
    # its measured skew, never after `received_at`); the body keeps the agent's own time.
    collected_at: dt.datetime
    agent_version: str
    body: bytes
    hostname: str
    os_family: str
    os_name: str
    os_version: str
    # Collector clock minus agent clock, when the agent said when it sent the report.
    clock_skew_ms: int | None = None
    outbox: OutboxFigures = OutboxFigures()


@dataclass(frozen=True)
class CheckResult:
    check_id: str
    state: str
    reason: str


@dataclass(frozen=True)
class DeviceResultRow:
    """One device and, when it has reported, its latest verdict for one check."""

    device_id: str
    hostname: str
    os_family: str
    last_report_at: dt.datetime | None
    check_id: str | None
    state: str | None
    reason: str | None
    collected_at: dt.datetime | None
    # When the collector judged it (its own clock).
    evaluated_at: dt.datetime | None = None


# What every stored report updates of its device; the caller adds the rest and the WHERE.
_UPDATE_DEVICE = (
    "UPDATE devices SET last_report_us = MAX(COALESCE(last_report_us, 0), ?),"
    " hostname = ?, os_family = ?, os_name = ?, os_version = ?, agent_version = ?,"
    " clock_skew_ms = COALESCE(?, clock_skew_ms)"
)


@functools.cache
def _upsert_results(rows: int) -> str:
    """The current verdicts of `rows` checks, written unless a newer report's are there."""
    return (
        "INSERT INTO check_results(device_id, check_id, state, reason, report_id,"  # noqa: S608 (only placeholders are joined in)
        " collected_us, evaluated_us, since_us) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
        + " ON CONFLICT(device_id, check_id) DO UPDATE SET state = excluded.state,"
        " reason = excluded.reason, report_id = excluded.report_id,"
        " collected_us = excluded.collected_us, evaluated_us = excluded.evaluated_us,"
        " since_us = COALESCE(excluded.since_us, check_results.since_us)"
        " WHERE excluded.collected_us >= check_results.collected_us"
    )


T = TypeVar("T")
# Rows, or SELECT terms, in one statement: well within SQLite's limits on bound variables
# (32766) and on the terms of a compound SELECT (500).
_CHUNK = 100
_INSERT_CHANGES = (
    "INSERT INTO state_changes(device_id, check_id, state, reason, since_us, report_id) VALUES "
)
_CHANGE_VALUES = "(?, ?, ?, ?, ?, ?)"
_INSERT_REPORTS = (
    "INSERT INTO reports(report_id, device_id, received_us, collected_us, agent_version,"
    " clock_skew_ms, body) VALUES "
)
_REPORT_VALUES = "(?, ?, ?, ?, ?, ?, ?)"

Change = tuple[str, str, str, str, int, str]  # a state_changes row, in STATE_FIELDS order


def _chunks(rows: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def _insert(cur: sqlite3.Cursor, insert: str, values: str, rows: list[tuple[object, ...]]) -> None:
    """Write `rows` with one multi-row INSERT per chunk: one step each, not one per row."""
    for chunk in _chunks(rows):
        cur.execute(insert + ", ".join([values] * len(chunk)), [v for row in chunk for v in row])


@functools.cache
def _latest_states_query(pairs: int) -> str:
    """One statement for the last state change of `pairs` (device, check) pairs: an index
    seek each, as `ORDER BY since_us DESC LIMIT 1` is for one."""
    one = (
        "SELECT * FROM (SELECT device_id, check_id, state, since_us FROM state_changes"
        " WHERE device_id = ? AND check_id = ? ORDER BY since_us DESC LIMIT 1)"
    )
    return " UNION ALL ".join([one] * pairs)


def _latest_states(
    cur: sqlite3.Cursor, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, int]]:
    """(device, check) -> (state, since_us) of its last state change, for those with one."""
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    for chunk in _chunks(list(dict.fromkeys(pairs))):
        args = [v for pair in chunk for v in pair]
        for device_id, check_id, state, since in cur.execute(
            _latest_states_query(len(chunk)), args
        ):
            latest[(device_id, check_id)] = (state, since)
    return latest


def _changes(
    latest: dict[str, tuple[str, int]], device_id: str, report_id: str, at_us: int,
    results: list[CheckResult],
) -> tuple[dict[str, int], list[Change]]:  # fmt: skip
    """A state change for each check whose state differs from its last one (`latest`, check
    -> (state, since_us), brought up to date), and per check since when its (new or
    unchanged) state holds."""
    held: dict[str, int] = {}
    changes: list[Change] = []
    for result in results:
        check_id, state = result.check_id, result.state
        row = latest.get(check_id)
        if row is not None and row[0] == state:
            held[check_id] = row[1]
            continue
        since = max(at_us, row[1] + 1 if row is not None else 0)
        held[check_id] = since
        latest[check_id] = (state, since)
        changes.append((device_id, check_id, state, result.reason, since, report_id))
    return held, changes


def _newest_collected(cur: sqlite3.Cursor, device_ids: list[str]) -> dict[str, int | None]:
    """Each enrolled device's newest collection time stored (None before its first report):
    an index seek each (reports_by_collection)."""
    newest: dict[str, int | None] = {}
    for chunk in _chunks(device_ids):
        marks = ", ".join("?" * len(chunk))
        newest.update(cur.execute(
            "SELECT d.device_id, (SELECT MAX(r.collected_us) FROM reports r"  # noqa: S608
            f" WHERE r.device_id = d.device_id) FROM devices d WHERE d.device_id IN ({marks})",
            chunk,
        ).fetchall())  # fmt: skip
    return newest


def _owners(cur: sqlite3.Cursor, report_ids: list[str]) -> dict[str, str]:
    """report id -> device id of those already stored."""
    owners: dict[str, str] = {}
    for chunk in _chunks(list(dict.fromkeys(report_ids))):
        marks = ", ".join("?" * len(chunk))
        owners.update(cur.execute(
            f"SELECT report_id, device_id FROM reports WHERE report_id IN ({marks})",  # noqa: S608
            chunk,
        ).fetchall())  # fmt: skip
    return owners


@dataclass
class _DeviceUpdate:
    """What a group's reports leave in a device's row, applied in the group's order."""

    received: int
    identity: tuple[str, str, str, str, str]  # hostname, OS family, name, version, agent
    skew: int | None
    outbox: OutboxFigures | None  # from the newest report, when one of them was

    def row(self, device_id: str) -> tuple[object, ...]:
        outbox = self.outbox or OutboxFigures()
        return (device_id, self.received, *self.identity, self.skew, self.outbox is not None,
                outbox.pending, outbox.coalesced_total, outbox.dropped_total,
                outbox.corrupt_total)  # fmt: skip


# A report to store: its verdicts, its times (received, collected) and whether it is the newest
# of its device so far.
_Stored = tuple[ReportRecord, list[CheckResult], int, int, bool]


def _device_updates(stored: list[_Stored]) -> dict[str, _DeviceUpdate]:
    """Per device, what its reports' updates leave, applied in the group's order."""
    devices: dict[str, _DeviceUpdate] = {}
    for report, _, received, _, is_newest in stored:
        identity = (report.hostname, report.os_family, report.os_name, report.os_version,
                    report.agent_version)  # fmt: skip
        known = devices.get(report.device_id)
        if known is None:
            known = devices[report.device_id] = _DeviceUpdate(received, identity, None, None)
        known.received = max(known.received, received)
        known.identity = identity
        if report.clock_skew_ms is not None:
            known.skew = report.clock_skew_ms
        if is_newest:
            known.outbox = report.outbox
    return devices


# Each device of a group once: the same as its reports' updates one after the other.
_UPDATE_DEVICES = (
    "UPDATE devices SET last_report_us = MAX(COALESCE(last_report_us, 0), v.column2),"
    " hostname = v.column3, os_family = v.column4, os_name = v.column5,"
    " os_version = v.column6, agent_version = v.column7,"
    " clock_skew_ms = COALESCE(v.column8, clock_skew_ms),"
    " outbox_pending = IIF(v.column9, v.column10, outbox_pending),"
    " outbox_coalesced_total = IIF(v.column9, v.column11, outbox_coalesced_total),"
    " outbox_dropped_total = IIF(v.column9, v.column12, outbox_dropped_total),"
    " outbox_corrupt_total = IIF(v.column9, v.column13, outbox_corrupt_total)"
    " FROM (VALUES {}) AS v WHERE devices.device_id = v.column1"
)
_DEVICE_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _write_group(
    cur: sqlite3.Cursor, chained: chain.Appender,
    group: list[tuple[ReportRecord, list[CheckResult]]],
) -> list[StoreOutcome]:  # fmt: skip
    """Store a group with a few statements for all of it, leaving what storing its reports
    one after the other (`Store._store_one`) leaves: the same outcomes, rows and chain."""
    owners = _owners(cur, [report.report_id for report, _ in group])
    outcomes: list[StoreOutcome] = []
    new: list[tuple[ReportRecord, list[CheckResult]]] = []
    for report, results in group:
        owner = owners.get(report.report_id)
        if owner is not None:
            same = owner == report.device_id
            outcomes.append(StoreOutcome.DUPLICATE if same else StoreOutcome.CONFLICT)
            continue
        owners[report.report_id] = report.device_id
        outcomes.append(StoreOutcome.STORED)
        new.append((report, results))
    if not new:
        return outcomes
    newest = _newest_collected(cur, list(dict.fromkeys(report.device_id for report, _ in new)))
    stored: list[_Stored] = []
    pairs: list[tuple[str, str]] = []
    for report, results in new:
        received, collected = to_us(report.received_at), to_us(report.collected_at)
        top = newest.get(report.device_id)
        # Newest of its device so far: what MAX(collected_us) would say once it is stored.
        is_newest = top is None or collected >= top
        if is_newest:
            newest[report.device_id] = collected
            pairs += [(report.device_id, r.check_id) for r in results]
        stored.append((report, results, received, collected, is_newest))
    devices = _device_updates(stored)
    latest_pairs = _latest_states(cur, pairs) if pairs else {}
    latest: dict[str, dict[str, tuple[str, int]]] = {}
    for (device_id, check_id), state in latest_pairs.items():
        latest.setdefault(device_id, {})[check_id] = state
    rows: list[tuple[object, ...]] = []
    entries: list[tuple[object, ...]] = []
    changes: list[tuple[object, ...]] = []
    verdicts: list[tuple[object, ...]] = []
    for report, results, received, collected, is_newest in stored:
        metadata = (report.report_id, report.device_id, received, collected,
                    report.agent_version, report.clock_skew_ms)  # fmt: skip
        rows.append((*metadata, report.body))
        entries.append(chained.entry(chain.REPORT, report.report_id,
                                     chain.report_payload(metadata, report.body),
                                     at_us=received))  # fmt: skip
        held: dict[str, int] = {}
        if is_newest:
            # The history is dated by when the facts were collected (collector's clock).
            held, made = _changes(latest.setdefault(report.device_id, {}), report.device_id,
                                  report.report_id, collected, results)  # fmt: skip
            for values in made:
                changes.append(values)
                entries.append(chained.entry(
                    chain.STATE, chain.state_key(values[0], values[1], values[4]),
                    chain.fields(chain.STATE_FIELDS, values),
                ))  # fmt: skip
        verdicts += [
            (report.device_id, r.check_id, r.state, r.reason, report.report_id, collected,
             received, held.get(r.check_id))
            for r in results
        ]  # fmt: skip
    _insert(cur, _INSERT_REPORTS, _REPORT_VALUES, rows)
    _insert(cur, _INSERT_CHANGES, _CHANGE_VALUES, changes)
    chained.write(entries)
    for chunk in _chunks([update.row(device_id) for device_id, update in devices.items()]):
        cur.execute(_UPDATE_DEVICES.format(", ".join([_DEVICE_VALUES] * len(chunk))),
                    [v for row in chunk for v in row])  # fmt: skip
    for chunk in _chunks(verdicts):
        cur.execute(_upsert_results(len(chunk)), [v for row in chunk for v in row])
    return outcomes


class Store(IdentityRecords, AdminRecords):
    """SQLite storage for one collector. Open with `Store.open(path)`."""

    @classmethod
    def open(cls, path: Path) -> Store:
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives power loss, which is what an ack promises.
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.executescript(_SCHEMA + IDENTITY_SCHEMA + ADMIN_SCHEMA + chain.EVIDENCE_SCHEMA)
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            connection.execute("INSERT INTO schema_version(version) VALUES (1)")
            version = 1
        else:
            version = row[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database was written by a newer collector (schema {version}); "
                "upgrade devposture before opening it"
            )
        _migrate(connection, version)
        return cls(connection)

    @classmethod
    def open_reader(cls, path: Path) -> Store:
        """A second connection to an open database, for reads only (SQLite refuses writes
        through it): in WAL mode it reads committed data without waiting for the writer."""
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        connection.execute("PRAGMA query_only=ON")
        return cls(connection)

    def close(self) -> None:
        self._db.close()

    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    # --- devices and reports -------------------------------------------------------------

    def fleet_figures(self, policy: Policy, at: dt.datetime) -> FleetFigures:
        """The fleet's standing now, counted in SQL (collector/fleet_counts.py)."""
        return fleet_figures(self._db, policy, at)

    def fleet_figures_as_of(
        self, policy: Policy, at: dt.datetime, group: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Devices per check and state at any moment (of one group), counted in SQL."""
        return fleet_figures_as_of(self._db, policy, at, group)

    def record_fleet_day(self, policy: Policy, at: dt.datetime) -> None:
        """Keep the fleet's standing now as its day's (UTC): the last record of a day is how
        the day ended. Not evidence (it is overwritten through the day): a summary."""
        figures = self.fleet_figures(policy, at)
        self.keep_fleet_days({at.astimezone(dt.UTC).date().isoformat(): figures.by_check}, at)

    def keep_fleet_days(
        self, days: dict[str, dict[str, dict[str, int]]], recorded_at: dt.datetime
    ) -> None:
        """Replace the records of `days` (day -> check -> state -> devices), in one
        transaction."""
        with self._write() as cur:
            for day, by_check in days.items():
                cur.execute("DELETE FROM fleet_days WHERE day = ?", (day,))
                cur.executemany(
                    "INSERT INTO fleet_days(day, check_id, state, devices, recorded_us)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (day, check_id, state, count, to_us(recorded_at))
                        for check_id, per_state in by_check.items()
                        for state, count in per_state.items()
                    ],
                )

    def fleet_days(self) -> dict[str, dict[str, dict[str, int]]]:
        """day (YYYY-MM-DD, UTC) -> check -> state -> devices, for every day recorded."""
        days: dict[str, dict[str, dict[str, int]]] = {}
        for day, check_id, state, count in self._db.execute(
            "SELECT day, check_id, state, devices FROM fleet_days"
        ):
            days.setdefault(day, {}).setdefault(check_id, {})[state] = count
        return days

    def failing_now(
        self, policy: Policy, at: dt.datetime, *, offset: int = 0, limit: int | None = None,
        group: str | None = None,
    ) -> list[Failure]:  # fmt: skip
        """Devices failing a check past its grace now, longest first, read in SQL
        (fleet_counts); `limit` of them from `offset`, or all; of one group, or all."""
        return failing_now(self._db, policy, at, offset=offset, limit=limit, group=group)

    def failing_count(self, policy: Policy, at: dt.datetime) -> int:
        return failing_count(self._db, policy, at)

    def device_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM devices").fetchone()[0])

    def device_exists(self, device_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return row is not None

    def latest_reports(self) -> list[tuple[str, str, dt.datetime, bytes]]:
        """(device id, report id, collection time on the collector's clock, body) of each
        device's most recently collected report."""
        rows = self._db.execute(
            "SELECT r.device_id, r.report_id, r.collected_us, r.body FROM reports r"
            " JOIN (SELECT device_id, MAX(collected_us) AS newest"
            " FROM reports GROUP BY device_id) n"
            " ON n.device_id = r.device_id AND n.newest = r.collected_us"
        ).fetchall()
        return [(r[0], r[1], from_us(r[2]), bytes(r[3])) for r in rows]

    def replace_results(
        self, device_id: str, report_id: str, collected_at: dt.datetime,
        evaluated_at: dt.datetime, results: list[CheckResult],
    ) -> None:  # fmt: skip
        """Put new verdicts for a device's latest report (after the policy changed)."""
        with self._write() as cur:
            since = self._record_changes(cur, device_id, report_id, evaluated_at, results)
            cur.execute("DELETE FROM check_results WHERE device_id = ?", (device_id,))
            cur.executemany(
                "INSERT INTO check_results(device_id, check_id, state, reason, report_id,"
                " collected_us, evaluated_us, since_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (device_id, r.check_id, r.state, r.reason, report_id, to_us(collected_at),
                     to_us(evaluated_at), since[r.check_id])
                    for r in results
                ],
            )  # fmt: skip

    @staticmethod
    def _record_changes(
        cur: sqlite3.Cursor, device_id: str, report_id: str, at: dt.datetime,
        results: list[CheckResult], *, chained: chain.Appender | None = None,
    ) -> dict[str, int]:  # fmt: skip
        """Append a state change for each check whose state differs from its last one.
        Returns, per check, since when its (new or unchanged) state holds."""
        chained = chained if chained is not None else chain.Appender(cur)
        latest = {
            check_id: state
            for (_, check_id), state in _latest_states(
                cur, [(device_id, r.check_id) for r in results]
            ).items()
        }
        held, changes = _changes(latest, device_id, report_id, to_us(at), results)
        for values in changes:
            cur.execute(_INSERT_CHANGES + _CHANGE_VALUES, values)
            chained.append(chain.STATE, chain.state_key(values[0], values[1], values[4]),
                           chain.fields(chain.STATE_FIELDS, values))  # fmt: skip
        return held

    def devices_seen(self, until: dt.datetime | None = None) -> list[DeviceSeen]:
        """Devices enrolled by `until`, each with its last report received by then."""
        limit = to_us(until) if until is not None else 2**62
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, d.os_family, d.enrolled_us,"
            " (SELECT MAX(r.received_us) FROM reports r"
            "  WHERE r.device_id = d.device_id AND r.received_us <= ?)"
            " FROM devices d WHERE d.enrolled_us <= ? ORDER BY d.hostname, d.device_id",
            (limit, limit),
        ).fetchall()
        return [
            DeviceSeen(r[0], r[1], r[2], from_us(r[3]), None if r[4] is None else from_us(r[4]))
            for r in rows
        ]

    def add_waiver(self, waiver: Waiver, now: dt.datetime) -> None:
        with self._write() as cur:
            cur.execute(
                "INSERT INTO waivers(waiver_id, device_id, check_id, owner, reason, created_us,"
                " expires_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (waiver.waiver_id, waiver.device_id, waiver.check_id, waiver.owner,
                 waiver.reason, to_us(waiver.created_at), to_us(waiver.expires_at)),
            )  # fmt: skip
            detail = (
                f"device {waiver.device_id}, check {waiver.check_id}, owner {waiver.owner},"
                f" expires {waiver.expires_at.isoformat(timespec='seconds')}: {waiver.reason}"
            )
            cur.execute(
                "INSERT INTO waiver_events(waiver_id, action, at_us, detail) VALUES (?, ?, ?, ?)",
                (waiver.waiver_id, "add", to_us(now), detail),
            )
            self._chain_waiver(cur, cur.lastrowid)

    def revoke_waiver(self, waiver_id: str, now: dt.datetime, why: str) -> bool:
        """Revoke an active waiver; False when there is none by that id (or it already ended)."""
        with self._write() as cur:
            cur.execute(
                "UPDATE waivers SET revoked_us = ? WHERE waiver_id = ? AND revoked_us IS NULL"
                " AND expires_us > ?",
                (to_us(now), waiver_id, to_us(now)),
            )
            if cur.rowcount == 0:
                return False
            cur.execute(
                "INSERT INTO waiver_events(waiver_id, action, at_us, detail) VALUES (?, ?, ?, ?)",
                (waiver_id, "revoke", to_us(now), why),
            )
            self._chain_waiver(cur, cur.lastrowid)
            return True

    @staticmethod
    def _chain_waiver(cur: sqlite3.Cursor, event_id: int | None) -> None:
        """Chain a waiver event just written, with the waiver it is about."""
        row = cur.execute(
            "SELECT e.event_id, e.waiver_id, e.action, e.at_us, e.detail, w.device_id,"
            " w.check_id, w.owner, w.reason, w.created_us, w.expires_us FROM waiver_events e"
            " JOIN waivers w ON w.waiver_id = e.waiver_id WHERE e.event_id = ?",
            (event_id,),
        ).fetchone()
        record = chain.fields(chain.WAIVER_FIELDS, row)
        chain.append(cur, chain.WAIVER, f"{row[1]}/{row[0]}", record)

    def waivers(self) -> list[Waiver]:
        rows = self._db.execute(
            "SELECT waiver_id, device_id, check_id, owner, reason, created_us, expires_us,"
            " revoked_us FROM waivers ORDER BY created_us"
        ).fetchall()
        return [
            Waiver(r[0], r[1], r[2], r[3], r[4], from_us(r[5]), from_us(r[6]),
                   None if r[7] is None else from_us(r[7]))
            for r in rows
        ]  # fmt: skip

    def waiver_events(self) -> list[tuple[str, str, dt.datetime, str]]:
        rows = self._db.execute(
            "SELECT waiver_id, action, at_us, detail FROM waiver_events ORDER BY event_id"
        ).fetchall()
        return [(r[0], r[1], from_us(r[2]), r[3]) for r in rows]

    def state_changes(
        self, until: dt.datetime | None = None
    ) -> list[tuple[str, str, str, str, dt.datetime]]:
        """(device, check, state, reason, since) of every change, oldest first, up to `until`."""
        limit = to_us(until) if until is not None else 2**62
        rows = self._db.execute(
            "SELECT device_id, check_id, state, reason, since_us FROM state_changes"
            " WHERE since_us <= ? ORDER BY since_us",
            (limit,),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], from_us(r[4])) for r in rows]

    def store_report(self, report: ReportRecord, results: list[CheckResult]) -> StoreOutcome:
        """Store a report and its verdicts once; committed on return."""
        outcome = self.store_reports([(report, results)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def store_reports(
        self, group: list[tuple[ReportRecord, list[CheckResult]]]
    ) -> list[StoreOutcome | Exception]:
        """Store a group of reports in one transaction: committed (one disk sync) on return.

        The group is written with a few statements for all its reports, inside a savepoint.
        Should any report fail there (a constraint, a bug), that savepoint is rolled back and
        the group is written again report by report, each in its own savepoint: one that fails
        is rolled back and its exception returned in its place, and the others are still
        committed. A failure of the transaction itself raises, and nothing is stored: on a
        full disk StorageFull (collector/disk_space.py), and the same group can be stored
        once space is freed. Either way the outcome, the rows and the evidence chain are those of
        storing the reports one after the other, in the group's order.
        """
        with self._write() as cur:
            chained = chain.Appender(cur)  # the chain's head is read once per group
            together = self._store_together(cur, chained, group)
            if together is not None:
                return list(together)
            outcomes: list[StoreOutcome | Exception] = []
            for report, results in group:
                cur.execute("SAVEPOINT report")
                mark = chained.mark()
                try:
                    outcomes.append(self._store_one(cur, chained, report, results))
                except sqlite3.OperationalError:
                    raise  # the database itself is failing (disk full, I/O): nothing commits
                except sqlite3.Error as exc:
                    cur.execute("ROLLBACK TO report")
                    chained.rewind(mark)
                    outcomes.append(exc)
                cur.execute("RELEASE report")
        return outcomes

    def _store_together(
        self, cur: sqlite3.Cursor, chained: chain.Appender,
        group: list[tuple[ReportRecord, list[CheckResult]]],
    ) -> list[StoreOutcome] | None:  # fmt: skip
        """The group in one savepoint, or None (and nothing written) if a report failed."""
        cur.execute("SAVEPOINT reports")
        mark = chained.mark()
        try:
            outcomes = _write_group(cur, chained, group)
        except sqlite3.OperationalError:
            raise
        except sqlite3.Error:
            cur.execute("ROLLBACK TO reports")
            chained.rewind(mark)
            outcomes = None
        cur.execute("RELEASE reports")
        return outcomes

    def _store_one(
        self, cur: sqlite3.Cursor, chained: chain.Appender, report: ReportRecord,
        results: list[CheckResult],
    ) -> StoreOutcome:  # fmt: skip
        device_id, report_id = report.device_id, report.report_id
        received, collected = to_us(report.received_at), to_us(report.collected_at)
        metadata = (report_id, device_id, received, collected, report.agent_version,
                    report.clock_skew_ms)  # fmt: skip
        cur.execute(
            "INSERT INTO reports(report_id, device_id, received_us, collected_us,"
            " agent_version, clock_skew_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(report_id) DO NOTHING",
            (*metadata, report.body),
        )
        if cur.rowcount == 0:
            owner = cur.execute(
                "SELECT device_id FROM reports WHERE report_id = ?", (report_id,)
            ).fetchone()[0]
            return StoreOutcome.DUPLICATE if owner == device_id else StoreOutcome.CONFLICT
        chained.append(chain.REPORT, report_id, chain.report_payload(metadata, report.body),
                       at_us=received)  # fmt: skip
        newest = cur.execute(
            "SELECT MAX(collected_us) FROM reports WHERE device_id = ?", (device_id,)
        ).fetchone()[0]
        is_newest = newest == collected
        device = (received, report.hostname, report.os_family, report.os_name,
                  report.os_version, report.agent_version, report.clock_skew_ms)  # fmt: skip
        held: dict[str, int] = {}
        if is_newest:
            figures = report.outbox
            # The outbox figures only from the newest report: an older one says less.
            cur.execute(
                _UPDATE_DEVICE + ", outbox_pending = ?, outbox_coalesced_total = ?,"
                " outbox_dropped_total = ?, outbox_corrupt_total = ? WHERE device_id = ?",
                (*device, figures.pending, figures.coalesced_total, figures.dropped_total,
                 figures.corrupt_total, device_id),
            )  # fmt: skip
            # The history is dated by when the facts were collected (collector's clock): a
            # backlog delivered after a week offline keeps its week.
            held = self._record_changes(
                cur, device_id, report_id, report.collected_at, results, chained=chained
            )
        else:
            cur.execute(_UPDATE_DEVICE + " WHERE device_id = ?", (*device, device_id))
        # A late-arriving older report never overwrites the verdict of a newer one. One
        # statement for all of the report's verdicts.
        rows = [
            # Since when this state holds (None for an older report: not the newest).
            (device_id, r.check_id, r.state, r.reason, report_id, collected, received,
             held.get(r.check_id))
            for r in results
        ]  # fmt: skip
        for chunk in _chunks(rows):
            cur.execute(_upsert_results(len(chunk)), [v for row in chunk for v in row])
        return StoreOutcome.STORED

    # --- the evidence chain (read side; entries are appended by the writers above) ---------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state of the database (a read transaction)."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def chain_head(self) -> chain.Entry | None:
        return chain.head(self._db)

    def chain_entries(self, first: int, last: int) -> list[chain.Entry]:
        return chain.entries(self._db, first, last)

    def chain_period(self, start: dt.datetime, end: dt.datetime) -> tuple[int, int] | None:
        return chain.period(self._db, to_us(start), to_us(end))

    def chain_first_written_from(self, start: dt.datetime) -> int | None:
        row = self._db.execute(
            "SELECT MIN(seq) FROM evidence_chain WHERE at_us >= ?", (to_us(start),)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def chain_before(self, seq: int, kind: str) -> list[chain.Entry]:
        return chain.before(self._db, seq, kind)

    def report_bodies(self, report_ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(report_ids), 500):
            chunk = report_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT report_id, body FROM reports WHERE report_id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
            found.update((r[0], bytes(r[1])) for r in rows)
        return found

    def report_ids(self, device_id: str | None = None) -> list[str]:
        if device_id is None:
            rows = self._db.execute("SELECT report_id FROM reports ORDER BY received_us").fetchall()
        else:
            rows = self._db.execute(
                "SELECT report_id FROM reports WHERE device_id = ? ORDER BY received_us",
                (device_id,),
            ).fetchall()
        return [r[0] for r in rows]

    def report_body(self, report_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT body FROM reports WHERE report_id = ?", (report_id,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def device_results(self) -> list[DeviceResultRow]:
        """Every device with its latest verdict per check (a row with no check if none yet)."""
        rows = self._db.execute(
            "SELECT d.device_id, d.hostname, d.os_family, d.last_report_us,"
            " r.check_id, r.state, r.reason, r.collected_us, r.evaluated_us"
            " FROM devices d LEFT JOIN check_results r ON r.device_id = d.device_id"
            " ORDER BY d.hostname, d.device_id, r.check_id"
        ).fetchall()
        return [
            DeviceResultRow(
                device_id=r[0],
                hostname=r[1],
                os_family=r[2],
                last_report_at=None if r[3] is None else from_us(r[3]),
                check_id=r[4],
                state=r[5],
                reason=r[6],
                collected_at=None if r[7] is None else from_us(r[7]),
                evaluated_at=None if r[8] is None else from_us(r[8]),
            )
            for r in rows
        ]


__all__ = [
    "CheckResult",
    "DeviceRecord",
    "DeviceResultRow",
    "ReportRecord",
    "StorageFull",
    "Store",
    "StoreOutcome",
    "TokenInfo",
    "TokenRejected",
]
