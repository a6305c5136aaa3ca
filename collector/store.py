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
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from collector.admin.records import ADMIN_SCHEMA, AdminRecords
from collector.compliance import DeviceSeen, Waiver
from collector.evidence import chain
from collector.fleet_counts import Failure, FleetFigures, failing_now, fleet_figures
from collector.identity_store import (
    IDENTITY_MIGRATION,
    IDENTITY_SCHEMA,
    DeviceRecord,
    IdentityRecords,
    TokenInfo,
    TokenRejected,
)
from collector.policy import Policy
from collector.records import from_us, to_us

SCHEMA_VERSION = 6
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
MIGRATIONS: dict[int, tuple[Step, ...]] = {
    2: IDENTITY_MIGRATION, 3: DELIVERY_MIGRATION, 4: EVIDENCE_MIGRATION, 5: STANDING_MIGRATION,
    6: FLEET_DAYS_MIGRATION,
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
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


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

    def record_fleet_day(self, policy: Policy, at: dt.datetime) -> None:
        """Keep the fleet's standing now as its day's (UTC): the last record of a day is how
        the day ended. Not evidence (it is overwritten through the day): a summary."""
        figures = self.fleet_figures(policy, at)
        day = at.astimezone(dt.UTC).date().isoformat()
        with self._write() as cur:
            cur.execute("DELETE FROM fleet_days WHERE day = ?", (day,))
            cur.executemany(
                "INSERT INTO fleet_days(day, check_id, state, devices, recorded_us)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (day, check_id, state, count, to_us(at))
                    for check_id, per_state in figures.by_check.items()
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

    def failing_now(self, policy: Policy, at: dt.datetime) -> list[Failure]:
        """Devices failing a check past its grace now, counted in SQL (fleet_counts)."""
        return failing_now(self._db, policy, at)

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
        results: list[CheckResult],
    ) -> dict[str, int]:  # fmt: skip
        """Append a state change for each check whose state differs from its last one.
        Returns, per check, since when its (new or unchanged) state holds."""
        held: dict[str, int] = {}
        for result in results:
            row = cur.execute(
                "SELECT state, since_us FROM state_changes WHERE device_id = ? AND check_id = ?"
                " ORDER BY since_us DESC LIMIT 1",
                (device_id, result.check_id),
            ).fetchone()
            if row is not None and row[0] == result.state:
                held[result.check_id] = row[1]
                continue
            since = max(to_us(at), row[1] + 1 if row is not None else 0)
            held[result.check_id] = since
            cur.execute(
                "INSERT INTO state_changes(device_id, check_id, state, reason, since_us,"
                " report_id) VALUES (?, ?, ?, ?, ?, ?)",
                (device_id, result.check_id, result.state, result.reason, since, report_id),
            )
            chain.append(cur, chain.STATE, chain.state_key(device_id, result.check_id, since),
                         chain.fields(chain.STATE_FIELDS, (device_id, result.check_id,
                                      result.state, result.reason, since, report_id)))  # fmt: skip
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

        Each report runs in its own savepoint: one that fails (a constraint, a bug) is rolled
        back and its exception returned in its place, and the others are still committed. A
        failure of the transaction itself (the disk is full) raises, and nothing is stored.
        """
        outcomes: list[StoreOutcome | Exception] = []
        with self._write() as cur:
            for report, results in group:
                cur.execute("SAVEPOINT report")
                try:
                    outcomes.append(self._store_one(cur, report, results))
                except sqlite3.OperationalError:
                    raise  # the database itself is failing (disk full, I/O): nothing commits
                except sqlite3.Error as exc:
                    cur.execute("ROLLBACK TO report")
                    outcomes.append(exc)
                cur.execute("RELEASE report")
        return outcomes

    def _store_one(
        self, cur: sqlite3.Cursor, report: ReportRecord, results: list[CheckResult]
    ) -> StoreOutcome:
        cur.execute(
            "INSERT INTO reports(report_id, device_id, received_us, collected_us,"
            " agent_version, body, clock_skew_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(report_id) DO NOTHING",
            (
                report.report_id,
                report.device_id,
                to_us(report.received_at),
                to_us(report.collected_at),
                report.agent_version,
                report.body,
                report.clock_skew_ms,
            ),
        )
        if cur.rowcount == 0:
            owner = cur.execute(
                "SELECT device_id FROM reports WHERE report_id = ?", (report.report_id,)
            ).fetchone()[0]
            return StoreOutcome.DUPLICATE if owner == report.device_id else StoreOutcome.CONFLICT
        received = to_us(report.received_at)
        chain.append(cur, chain.REPORT, report.report_id, chain.report_payload(
            (report.report_id, report.device_id, received, to_us(report.collected_at),
             report.agent_version, report.clock_skew_ms), report.body), at_us=received)  # fmt: skip
        cur.execute(
            "UPDATE devices SET last_report_us = MAX(COALESCE(last_report_us, 0), ?),"
            " hostname = ?, os_family = ?, os_name = ?, os_version = ?, agent_version = ?,"
            " clock_skew_ms = COALESCE(?, clock_skew_ms) WHERE device_id = ?",
            (
                to_us(report.received_at),
                report.hostname,
                report.os_family,
                report.os_name,
                report.os_version,
                report.agent_version,
                report.clock_skew_ms,
                report.device_id,
            ),
        )
        newest = cur.execute(
            "SELECT MAX(collected_us) FROM reports WHERE device_id = ?", (report.device_id,)
        ).fetchone()[0]
        held: dict[str, int] = {}
        if newest == to_us(report.collected_at):
            # The history is dated by when the facts were collected (collector's clock): a
            # backlog delivered after a week offline keeps its week.
            held = self._record_changes(
                cur, report.device_id, report.report_id, report.collected_at, results
            )
            figures = report.outbox
            cur.execute(
                "UPDATE devices SET outbox_pending = ?, outbox_coalesced_total = ?,"
                " outbox_dropped_total = ?, outbox_corrupt_total = ? WHERE device_id = ?",
                (figures.pending, figures.coalesced_total, figures.dropped_total,
                 figures.corrupt_total, report.device_id),
            )  # fmt: skip
        # A late-arriving older report never overwrites the verdict of a newer one.
        cur.executemany(
            "INSERT INTO check_results(device_id, check_id, state, reason, report_id,"
            " collected_us, evaluated_us, since_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(device_id, check_id) DO UPDATE SET state = excluded.state,"
            " reason = excluded.reason, report_id = excluded.report_id,"
            " collected_us = excluded.collected_us, evaluated_us = excluded.evaluated_us,"
            " since_us = COALESCE(excluded.since_us, check_results.since_us)"
            " WHERE excluded.collected_us >= check_results.collected_us",
            [
                (
                    report.device_id,
                    result.check_id,
                    result.state,
                    result.reason,
                    report.report_id,
                    to_us(report.collected_at),
                    to_us(report.received_at),
                    # Since when this state holds (None for an older report: not the newest).
                    held.get(result.check_id),
                )
                for result in results
            ],
        )
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
            " r.check_id, r.state, r.reason, r.collected_us"
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
            )
            for r in rows
        ]


__all__ = [
    "CheckResult",
    "DeviceRecord",
    "DeviceResultRow",
    "ReportRecord",
    "Store",
    "StoreOutcome",
    "TokenInfo",
    "TokenRejected",
]
