"""The store's tables on both engines, and how a database comes to this collector's schema.

SQLite: the tables as first released, then one migration per schema version, so a site's file
of any age is brought up to date in place (each step in one transaction). PostgreSQL: the
tables as of the current schema at once (the first release on PostgreSQL is schema 8); later
versions will add their steps for both. The two define the same tables, columns and indexes
(tested), with PostgreSQL's types: BIGINT for the microsecond times, BYTEA for bodies and
hashes, and text compared byte by byte (COLLATE "C") so both sort host names alike.

Reports, the state history, the waiver, device and audit logs and the evidence chain are
append-only on both: triggers refuse UPDATE and DELETE (and, on PostgreSQL, TRUNCATE).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from devposture.collector.evidence.chain import (
    ADMIN,
    ADMIN_FIELDS,
    DEVICE,
    DEVICE_FIELDS,
    REPORT,
    STATE,
    STATE_FIELDS,
    WAIVER,
    WAIVER_FIELDS,
    fields,
    report_payload,
    state_key,
)
from devposture.collector.standing_rule import ACTIVE
from devposture.collector.store.chain import append
from devposture.collector.store.engine import AnyDatabase, PostgresDatabase, SqliteDatabase

Step = str | Callable[[sqlite3.Connection], None]

# --- SQLite ------------------------------------------------------------------------------------

_SQLITE_REPORTS = """
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


_SQLITE_IDENTITY = """
CREATE TABLE IF NOT EXISTS device_certificates (
    serial         TEXT NOT NULL,
    device_id      TEXT NOT NULL REFERENCES devices(device_id),
    generation     INTEGER NOT NULL,
    issued_us      INTEGER NOT NULL,
    not_after_us   INTEGER NOT NULL,
    first_used_us  INTEGER,
    PRIMARY KEY (device_id, serial)
);

-- Every change of a device's identity: enrolled, renewed, reestablished, revoked, retired,
-- clone suspected. Append-only: the audit trail of who could speak for a device, and when.
CREATE TABLE IF NOT EXISTS device_events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL,
    action     TEXT NOT NULL,
    at_us      INTEGER NOT NULL,
    detail     TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS device_events_are_append_only_update BEFORE UPDATE ON device_events
BEGIN SELECT RAISE(ABORT, 'the device log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS device_events_are_append_only_delete BEFORE DELETE ON device_events
BEGIN SELECT RAISE(ABORT, 'the device log is append-only'); END;
"""

# Its roles as of schema 15 (the auditor): older databases have the table without 'auditor' and
# are brought up by AUDITOR_MIGRATION, which makes it again from this same statement.
_SQLITE_ADMIN_CREDENTIALS = """
CREATE TABLE IF NOT EXISTS admin_credentials (
    credential_id  TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'auditor', 'admin')),
    secret_hash    TEXT NOT NULL,
    created_us     INTEGER NOT NULL,
    revoked_us     INTEGER
)"""

_SQLITE_ADMIN = (
    _SQLITE_ADMIN_CREDENTIALS
    + """;

-- One entry per admin command, local or remote, allowed or not. Never holds a secret.
CREATE TABLE IF NOT EXISTS audit_log (
    entry_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us          INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    credential_id  TEXT,
    role           TEXT NOT NULL,
    command        TEXT NOT NULL,
    arguments      TEXT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    message        TEXT NOT NULL,
    peer           TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
)


_SQLITE_EVIDENCE = """
CREATE TABLE IF NOT EXISTS evidence_chain (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    at_us      INTEGER NOT NULL,
    record_key TEXT NOT NULL,
    payload    BLOB NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_chain_by_time ON evidence_chain(at_us);
CREATE TRIGGER IF NOT EXISTS evidence_chain_is_append_only_update BEFORE UPDATE ON evidence_chain
BEGIN SELECT RAISE(ABORT, 'the evidence chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evidence_chain_is_append_only_delete BEFORE DELETE ON evidence_chain
BEGIN SELECT RAISE(ABORT, 'the evidence chain is append-only'); END;
"""

SQLITE_SCHEMA = _SQLITE_REPORTS + _SQLITE_IDENTITY + _SQLITE_ADMIN + _SQLITE_EVIDENCE

# --- chaining a database written before the chain existed (schema 3 → 4) -------------------


def chain_existing(connection: sqlite3.Connection) -> None:
    """Chain every evidence row already in the database once, oldest first (by the record's
    own collector time, then by kind and insertion order), inside the migration's
    transaction. From then on, every record is chained as it is written."""
    cur = connection.cursor()
    if cur.execute("SELECT 1 FROM evidence_chain LIMIT 1").fetchone() is not None:
        return
    pending: list[tuple[int, int, int, str, str, dict[str, object]]] = []
    for row in cur.execute(
        "SELECT rowid, report_id, device_id, received_us, collected_us, agent_version,"
        " clock_skew_ms, body FROM reports"
    ):
        pending.append((row[3], 0, row[0], REPORT, row[1], report_payload(row[1:7], row[7])))
    for row in cur.execute(
        "SELECT rowid, device_id, check_id, state, reason, since_us, report_id FROM state_changes"
    ):
        pending.append((row[5], 1, row[0], STATE, state_key(row[1], row[2], row[5]),
                        fields(STATE_FIELDS, row[1:])))  # fmt: skip
    for row in cur.execute(
        "SELECT e.event_id, e.waiver_id, e.action, e.at_us, e.detail, w.device_id, w.check_id,"
        " w.owner, w.reason, w.created_us, w.expires_us FROM waiver_events e"
        " JOIN waivers w ON w.waiver_id = e.waiver_id"
    ):
        pending.append((row[3], 2, row[0], WAIVER, f"{row[1]}/{row[0]}",
                        fields(WAIVER_FIELDS, row)))  # fmt: skip
    for row in cur.execute("SELECT event_id, device_id, action, at_us, detail FROM device_events"):
        pending.append((row[3], 3, row[0], DEVICE, f"{row[1]}/{row[0]}",
                        fields(DEVICE_FIELDS, row)))  # fmt: skip
    for row in cur.execute(
        "SELECT entry_id, at_us, actor, credential_id, role, command, arguments, outcome,"
        " message, peer FROM audit_log"
    ):
        pending.append((row[1], 4, row[0], ADMIN, str(row[0]), fields(ADMIN_FIELDS, row)))
    pending.sort(key=lambda p: (p[0], p[1], p[2]))
    for at_us, _, _, kind, key, payload in pending:
        append(cur, kind, key, payload, at_us=at_us)


# Schema 1 → 2: device status, clone flag, and each device's enrollment certificate recorded
# as generation 1.
IDENTITY_MIGRATION = (
    "ALTER TABLE devices ADD COLUMN status TEXT NOT NULL DEFAULT 'active'",
    "ALTER TABLE devices ADD COLUMN status_us INTEGER",
    "ALTER TABLE devices ADD COLUMN status_reason TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE devices ADD COLUMN clone_suspected_us INTEGER",
    "ALTER TABLE devices ADD COLUMN clone_detail TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE devices ADD COLUMN reestablish_signed_us INTEGER",
    "INSERT OR IGNORE INTO device_certificates(serial, device_id, generation, issued_us,"
    " not_after_us, first_used_us) SELECT cert_serial, device_id, 1, enrolled_us,"
    " cert_not_after_us, last_report_us FROM devices",
)


# Schema 7: device groups (a department, a region): each device's, and each token's, which
# the devices it enrolls join. Empty means no group. Added here rather than in the CREATE
# TABLEs above, which older databases share through IF NOT EXISTS: a new database runs this
# step too, so a new and an upgraded database end identical. Each step may run again on a
# database that already has it (as schema 5's does), so it adds only a missing column.
def _add_group_columns(connection: sqlite3.Connection) -> None:
    for table in ("devices", "enrollment_tokens"):
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if "device_group" not in columns:
            connection.execute(
                f"ALTER TABLE {table} ADD COLUMN device_group TEXT NOT NULL DEFAULT ''"
            )


GROUPS_MIGRATION: tuple[Step, ...] = (
    _add_group_columns,
    # `device list --group` and the dashboard's group filter ask for one group's devices.
    "CREATE INDEX IF NOT EXISTS devices_by_group ON devices(device_group, device_id)",
)


SCHEMA_VERSION = 32
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
EVIDENCE_MIGRATION: tuple[Step, ...] = (chain_existing,)


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
# Schema 9: what several collectors on one database share instead of keeping it in memory
# or in their data folders: leases for work done once (store/coordination.py), the policy in
# force and its history (store/policies.py) and dashboard sessions (store/sessions.py).
SHARING_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
    " until_us INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS policy_versions (version INTEGER PRIMARY KEY,"
    " text TEXT NOT NULL, sha256 TEXT NOT NULL, applied_us INTEGER NOT NULL,"
    " applied_by TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS policy_versions_are_append_only_update BEFORE UPDATE ON"
    " policy_versions BEGIN SELECT RAISE(ABORT, 'the policy history is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS policy_versions_are_append_only_delete BEFORE DELETE ON"
    " policy_versions BEGIN SELECT RAISE(ABORT, 'the policy history is append-only'); END",
    "CREATE TABLE IF NOT EXISTS dashboard_sessions (session_hash TEXT PRIMARY KEY,"
    " credential_id TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL,"
    " created_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL, lang TEXT)",
)
# Schema 10: failed enrollments and dashboard logins by source, so that every collector (and
# worker) on the database slows a guessing source down alike (store/guesses.py). Only the
# failures within the throttle's window are kept.
GUESSES_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS failed_guesses (kind TEXT NOT NULL, source TEXT NOT NULL,"
    " at_us INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS failed_guesses_by_source ON failed_guesses(kind, source, at_us)",
)
# Schema 11: checkpoints of the evidence chain (store/checkpoints.py): an audit export opens its
# period from the latest one before it instead of walking every state change since the first.
CHECKPOINTS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS evidence_checkpoints (seq INTEGER PRIMARY KEY,"
    " at_us INTEGER NOT NULL, entries BLOB NOT NULL)",
)
# Schema 12: retention (store/retention.py). A report's body may be pruned, emptied with every
# other column unchanged, and nothing else: the append-only trigger lets only that through.
# What was pruned and when is kept beside the chain's prune entries, and the bodies still
# current (a device's latest verdicts name them) are remembered for a later pruning.
_REPORT_COLUMNS = ("report_id", "device_id", "received_us", "collected_us", "agent_version",
                   "clock_skew_ms")  # fmt: skip
RETENTION_MIGRATION: tuple[Step, ...] = (
    "DROP TRIGGER IF EXISTS reports_are_append_only_update",
    "CREATE TRIGGER reports_are_append_only_update BEFORE UPDATE ON reports WHEN NOT ("
    "length(NEW.body) = 0 AND length(OLD.body) > 0 AND "
    + " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _REPORT_COLUMNS)
    + ") BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END",
    "CREATE INDEX IF NOT EXISTS reports_by_received ON reports(received_us)",
    "CREATE TABLE IF NOT EXISTS pruned_spans (seq INTEGER PRIMARY KEY, at_us INTEGER NOT NULL,"
    " before_us INTEGER NOT NULL, reports INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS retention_kept (report_id TEXT PRIMARY KEY,"
    " received_us INTEGER NOT NULL)",
)
# Schema 13: IT alerts (store/alerts.py, collector/alerts/): what is open and was told (so a
# restart or another collector does not tell it again), each digest composed, a delivery
# outbox with one pending message per channel (a partial unique index: a digest composed while
# the last is still undelivered joins it), and each collector's own problems (certificates
# expiring, its data folder's disk filling) for whichever collector composes the digest.
ALERTS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS alert_open (item_key TEXT PRIMARY KEY, kind TEXT NOT NULL,"
    " detail TEXT NOT NULL, opened_us INTEGER NOT NULL, told_us INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alert_digests (digest_id TEXT PRIMARY KEY,"
    " composed_us INTEGER NOT NULL, new_items INTEGER NOT NULL, reminders INTEGER NOT NULL,"
    " resolved INTEGER NOT NULL, open_items INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS alert_digests_by_time ON alert_digests(composed_us)",
    "CREATE TABLE IF NOT EXISTS alert_outbox (delivery_id TEXT PRIMARY KEY,"
    " channel TEXT NOT NULL, digest_id TEXT NOT NULL, items TEXT NOT NULL,"
    " open_items INTEGER NOT NULL, composed_us INTEGER NOT NULL, created_us INTEGER NOT NULL,"
    " state TEXT NOT NULL, attempts INTEGER NOT NULL, next_us INTEGER NOT NULL,"
    " attempted_us INTEGER, done_us INTEGER, outcome TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS alert_outbox_pending ON alert_outbox(channel)"
    " WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS alert_outbox_by_attempt ON alert_outbox(channel, attempted_us)",
    "CREATE TABLE IF NOT EXISTS alert_collector_problems (reporter TEXT NOT NULL,"
    " problem_key TEXT NOT NULL, detail TEXT NOT NULL, observed_us INTEGER NOT NULL,"
    " PRIMARY KEY (reporter, problem_key))",
)
# Schema 14: reports sealed into the chain in groups (store/sealing.py). Each report is
# numbered in the order stored (`n`; NULL for those written before, each chained on its own),
# and each group entry's range is kept beside it. `n` joins the columns a pruning never changes.
_SEALED_REPORT_COLUMNS = (*_REPORT_COLUMNS, "n")


def _add_report_numbers(connection: sqlite3.Connection) -> None:
    if "n" not in {row[1] for row in connection.execute("PRAGMA table_info(reports)")}:
        connection.execute("ALTER TABLE reports ADD COLUMN n INTEGER")


SEALING_MIGRATION: tuple[Step, ...] = (
    _add_report_numbers,
    "CREATE UNIQUE INDEX IF NOT EXISTS reports_by_number ON reports(n)",
    "DROP TRIGGER IF EXISTS reports_are_append_only_update",
    "CREATE TRIGGER reports_are_append_only_update BEFORE UPDATE ON reports WHEN NOT ("
    "length(NEW.body) = 0 AND length(OLD.body) > 0 AND "
    + " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _SEALED_REPORT_COLUMNS)
    + ") BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END",
    "CREATE TABLE IF NOT EXISTS report_groups (seq INTEGER PRIMARY KEY,"
    " first_n INTEGER NOT NULL, last_n INTEGER NOT NULL, reports INTEGER NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS report_groups_are_append_only_update BEFORE UPDATE"
    " ON report_groups BEGIN SELECT RAISE(ABORT, 'report groups are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS report_groups_are_append_only_delete BEFORE DELETE"
    " ON report_groups BEGIN SELECT RAISE(ABORT, 'report groups are append-only'); END",
)


# Schema 15: the auditor role (collector/credentials.py). SQLite cannot change a CHECK, so an
# older table is made again with the new one and its rows copied (nothing refers to it). A new
# database has it already and is left alone (a rebuild would leave its old pages free).
def _allow_auditors(connection: sqlite3.Connection) -> None:
    (sql,) = connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'admin_credentials'"
    ).fetchone()
    if "'auditor'" in sql:
        return
    connection.execute("ALTER TABLE admin_credentials RENAME TO admin_credentials_14")
    connection.execute(_SQLITE_ADMIN_CREDENTIALS)
    connection.execute(
        "INSERT INTO admin_credentials SELECT credential_id, name, role, secret_hash,"
        " created_us, revoked_us FROM admin_credentials_14"
    )
    connection.execute("DROP TABLE admin_credentials_14")


AUDITOR_MIGRATION: tuple[Step, ...] = (_allow_auditors,)


# Schema 16: report bodies as their own bytes plus the parts a fleet repeats, each part kept
# once by its SHA-256 (store/fact_parts.py). A pruning empties the recipe too.
def _add_report_parts(connection: sqlite3.Connection) -> None:
    if "parts" not in {row[1] for row in connection.execute("PRAGMA table_info(reports)")}:
        connection.execute("ALTER TABLE reports ADD COLUMN parts BLOB")


PARTS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS fact_parts (digest BLOB PRIMARY KEY, part BLOB NOT NULL,"
    " last_us INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS fact_parts_by_last ON fact_parts(last_us)",
    _add_report_parts,
    "DROP TRIGGER IF EXISTS reports_are_append_only_update",
    "CREATE TRIGGER reports_are_append_only_update BEFORE UPDATE ON reports WHEN NOT ("
    "length(NEW.body) = 0 AND length(OLD.body) > 0 AND NEW.parts IS NULL AND "
    + " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _SEALED_REPORT_COLUMNS)
    + ") BEGIN SELECT RAISE(ABORT, 'reports are append-only'); END",
)


# Schema 17: each device's natural host order as one key (`host_key`), computed by the
# database from the host name and indexed, so that a listing in host order reads an index
# instead of sorting the fleet by four expressions of the name (0.14-0.18 s of a device list
# page over 100,000 devices on PostgreSQL, bench/dashboard_pages.py). The order is: the
# name without its trailing digits, case folded; then the shorter name (PC-2 before PC-10);
# then the name case folded; then the name. Joined by chr(1), which sorts before any
# character a host name has, so the key compares as those four would one after another.
def host_key(dialect: str) -> str:
    """The expression of `devices.host_key` on `dialect` ("sqlite" or "postgresql")."""
    one, width = ("char(1)", "printf('%010d', length(hostname))") if dialect == "sqlite" else (
        "chr(1)", "lpad(length(hostname)::text, 10, '0')")  # fmt: skip
    return (
        f"rtrim(lower(hostname), '0123456789') || {one} || {width} || {one}"
        f" || lower(hostname) || {one} || hostname"
    )


def _add_host_key(connection: sqlite3.Connection) -> None:
    # table_xinfo: table_info leaves generated columns out.
    if "host_key" not in {row[1] for row in connection.execute("PRAGMA table_xinfo(devices)")}:
        # SQLite adds a generated column only as VIRTUAL: computed on reading, kept in the index.
        connection.execute(
            "ALTER TABLE devices ADD COLUMN host_key TEXT"
            f" GENERATED ALWAYS AS ({host_key('sqlite')}) VIRTUAL"
        )


HOST_ORDER_MIGRATION: tuple[Step, ...] = (
    _add_host_key,
    "CREATE INDEX IF NOT EXISTS devices_by_host ON devices(host_key, device_id)",
)


# Schema 18: how many of each device's verdicts are PASS (`devices.passing`), kept by the
# database on every write to check_results (triggers, so that no writer can forget it), so
# that the overview counts the fully compliant devices in one pass over the devices instead
# of grouping every verdict by device (0.2-0.3 s over 600,000 verdicts on PostgreSQL,
# bench/dashboard_pages.py). A count, not a judgment: the standing rule (silence, waivers,
# grace) is applied where it is read (store/dashboard_reads.py).
COUNT_PASSING = (
    "UPDATE devices SET passing = (SELECT COUNT(*) FROM check_results c"
    " WHERE c.device_id = devices.device_id AND c.state = 'PASS')"
)
_PASSING_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS check_results_passing_insert AFTER INSERT ON check_results"
    " WHEN NEW.state = 'PASS'"
    " BEGIN UPDATE devices SET passing = passing + 1 WHERE device_id = NEW.device_id; END",
    "CREATE TRIGGER IF NOT EXISTS check_results_passing_delete AFTER DELETE ON check_results"
    " WHEN OLD.state = 'PASS'"
    " BEGIN UPDATE devices SET passing = passing - 1 WHERE device_id = OLD.device_id; END",
    "CREATE TRIGGER IF NOT EXISTS check_results_passing_update"
    " AFTER UPDATE OF state ON check_results WHEN (OLD.state = 'PASS') <> (NEW.state = 'PASS')"
    " BEGIN UPDATE devices SET passing = passing + CASE WHEN NEW.state = 'PASS' THEN 1 ELSE -1"
    " END WHERE device_id = NEW.device_id; END",
)


def _add_passing(connection: sqlite3.Connection) -> None:
    if "passing" not in {row[1] for row in connection.execute("PRAGMA table_xinfo(devices)")}:
        connection.execute("ALTER TABLE devices ADD COLUMN passing INTEGER NOT NULL DEFAULT 0")


PASSING_MIGRATION: tuple[Step, ...] = (_add_passing, COUNT_PASSING, *_PASSING_TRIGGERS)

# Schema 19: the fleet's standing at past moments, kept once counted (store/fleet_marks.py),
# and the trigger that voids a mark when a change dated at or before it is stored (a report
# delivered late). Marks are a summary, not evidence.
MARKS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS fleet_marks (at_us INTEGER NOT NULL, judged_by TEXT NOT NULL,"
    " check_id TEXT NOT NULL, state TEXT NOT NULL, devices INTEGER NOT NULL,"
    " PRIMARY KEY (at_us, judged_by, check_id, state))",
    "CREATE TRIGGER IF NOT EXISTS state_changes_void_marks AFTER INSERT ON state_changes"
    " BEGIN DELETE FROM fleet_marks WHERE at_us >= NEW.since_us; END",
)

# Schema 20: each device's failing verdicts in one index of their own (device, check, since;
# FAIL only), so that counting the devices that need action reads those verdicts alone, in
# device order, without their rows: 0.21 -> 0.05 s on SQLite and 0.17 -> 0.05 s on
# PostgreSQL for 190,000 failures over 100,000 devices (the overview's headline).
FAILING_BY_DEVICE = (
    "CREATE INDEX IF NOT EXISTS check_results_failing_by_device"
    " ON check_results(device_id, check_id, since_us) WHERE state = 'FAIL'"
)
# Schema 21: each device group's standing at past moments, kept once counted like the
# fleet's (store/fleet_marks.py): `report fleet --group G --as-of DATE` took 0.7-1.1 s over a
# group of 25,000 of 100,000 devices. A group's counts are of its devices as grouped now, so
# a device moving in or out of a group voids that group's marks, beside the late changes.
GROUP_MARKS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS group_marks (at_us INTEGER NOT NULL, judged_by TEXT NOT NULL,"
    " device_group TEXT NOT NULL, check_id TEXT NOT NULL, state TEXT NOT NULL,"
    " devices INTEGER NOT NULL, PRIMARY KEY (at_us, judged_by, device_group, check_id, state))",
    "CREATE TRIGGER IF NOT EXISTS state_changes_void_group_marks AFTER INSERT ON state_changes"
    " BEGIN DELETE FROM group_marks WHERE at_us >= NEW.since_us; END",
    "CREATE TRIGGER IF NOT EXISTS devices_regrouped_void_group_marks"
    " AFTER UPDATE OF device_group ON devices WHEN OLD.device_group IS NOT NEW.device_group"
    " BEGIN DELETE FROM group_marks"
    " WHERE device_group IN (OLD.device_group, NEW.device_group); END",
)
# Schema 22: one message never tried per alert channel, where there was one pending message:
# a digest composed after a failed attempt joined that message under a new digest_id, and a
# receiver that had taken the first (answered 500, or timed out) got its items again under an
# id it could not tell. A tried message now keeps its id and items; the new digest waits apart.
ALERT_RETRIES_MIGRATION: tuple[Step, ...] = (
    "DROP INDEX IF EXISTS alert_outbox_pending",
    "CREATE UNIQUE INDEX IF NOT EXISTS alert_outbox_untried ON alert_outbox(channel)"
    " WHERE state = 'pending' AND attempts = 0",
)
# Schema 23: which installation the database belongs to (store/installation.py): the
# fingerprint of the evidence-signing key that claimed it; one row at most.
INSTALLATION_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS installation (only_row INTEGER PRIMARY KEY CHECK (only_row = 1),"
    " evidence_key TEXT NOT NULL, claimed_us INTEGER NOT NULL)",
)


# Schema 24: each grant of a lease carries a fencing token, a number that rises with every new
# holder (store/coordination.py): a write done under a lease checks it in its own transaction,
# so a collector paused past its lease cannot write over the work of the one that took it.
def _add_lease_tokens(connection: sqlite3.Connection) -> None:
    columns = {row[1] for row in connection.execute("PRAGMA table_info(leases)")}
    if "token" not in columns:
        connection.execute("ALTER TABLE leases ADD COLUMN token INTEGER NOT NULL DEFAULT 0")


LEASE_TOKENS_MIGRATION: tuple[Step, ...] = (_add_lease_tokens,)

# Schema 25: a device's leaving (revoked or retired: `standing_rule.in_fleet`) changes every
# mark from its date on, and a leaving may be dated before marks already counted (a collector
# whose clock runs behind, an operator's edit of the date): a trigger on `devices` voids the
# fleet's marks and the device's group's from the earlier of its old and new leaving moments
# (an active device's: never; a status without its moment: since ever, as `sql_in_fleet`
# reads it). Like schemas 19 and 21, whoever writes the row.
_NEVER, _EVER = 1 << 62, -(1 << 62)


def _left_since(row: str) -> str:
    """When the `devices` row `row` (OLD or NEW) left the fleet, for the triggers."""
    return (
        f"CASE WHEN {row}.status = '{ACTIVE}' THEN {_NEVER}"
        f" ELSE COALESCE({row}.status_us, {_EVER}) END"
    )


_LEFT_SINCE = f"MIN({_left_since('OLD')}, {_left_since('NEW')})"
LEAVING_MIGRATION: tuple[Step, ...] = (
    "CREATE TRIGGER IF NOT EXISTS devices_left_void_marks"  # noqa: S608 (fixed texts only)
    " AFTER UPDATE OF status, status_us ON devices"
    " WHEN OLD.status IS NOT NEW.status OR OLD.status_us IS NOT NEW.status_us"
    f" BEGIN DELETE FROM fleet_marks WHERE at_us >= {_LEFT_SINCE};"
    " DELETE FROM group_marks WHERE device_group IN (OLD.device_group, NEW.device_group)"
    f" AND at_us >= {_LEFT_SINCE}; END",
)


# Schema 26: a device's arrival (`enrolled_us`: it counts from then on) changes every mark from
# its date on too, and an enrollment may be dated before marks already counted (a collector
# whose clock runs behind, a migration's or an operator's row, an edit of the date): triggers
# on `devices` void the fleet's marks and the device's group's from its enrollment when a row
# is inserted or deleted, and from the earlier of its old and new dates when `enrolled_us` is
# edited. A deletion the collector never makes (the foreign keys of a device's certificates
# and history refuse it) but an operator's shell without them may. Like schemas 19, 21 and
# 25, whoever writes the row.
def _void_marks_from(since: str, groups: str) -> str:
    """A trigger's body voiding the fleet's marks and `groups`' from `since` on."""
    return (
        f" BEGIN DELETE FROM fleet_marks WHERE at_us >= {since};"  # noqa: S608 (fixed texts)
        f" DELETE FROM group_marks WHERE device_group IN ({groups}) AND at_us >= {since}; END"
    )


ARRIVAL_MIGRATION: tuple[Step, ...] = (
    "CREATE TRIGGER IF NOT EXISTS devices_enrolled_void_marks AFTER INSERT ON devices"
    + _void_marks_from("NEW.enrolled_us", "NEW.device_group"),
    "CREATE TRIGGER IF NOT EXISTS devices_enrollment_moved_void_marks"
    " AFTER UPDATE OF enrolled_us ON devices WHEN OLD.enrolled_us IS NOT NEW.enrolled_us"
    + _void_marks_from(
        "MIN(OLD.enrolled_us, NEW.enrolled_us)", "OLD.device_group, NEW.device_group"
    ),
    "CREATE TRIGGER IF NOT EXISTS devices_deleted_void_marks AFTER DELETE ON devices"
    + _void_marks_from("OLD.enrolled_us", "OLD.device_group"),
)
# Schema 27: whether a device was STALE at a moment depends on the reports received by then
# (`received_us`), and a report may be received, by the clock of a collector that runs
# behind, before marks already counted, changing no verdict (so no state change voids them):
# a trigger on `reports` voids the fleet's marks and every group's from its receipt on. A
# report received now (every mark is an hour old at least) voids nothing: an index seek on
# each table (bench/store_reports.py, SQLite: 81-86 us of CPU per report with or without it).
RECEIPT_MIGRATION: tuple[Step, ...] = (
    "CREATE TRIGGER IF NOT EXISTS reports_received_void_marks AFTER INSERT ON reports"
    " BEGIN DELETE FROM fleet_marks WHERE at_us >= NEW.received_us;"
    " DELETE FROM group_marks WHERE at_us >= NEW.received_us; END",
)


# Schema 28: the CA that signed each device certificate (`issuer`, its `sha256:` fingerprint,
# `pki.fingerprint`), written with the certificate by whichever collector signed it, so that
# `ca rollover finish` sees a certificate a collector still signed with the previous CA after
# `activate` (store/identity.py, `held_by_other_cas`). The database never kept certificates,
# only their serials: a row written before this schema cannot be verified here and stays NULL
# (not recorded) until its device presents it, when the collector verifies its signature
# against the CAs of its data folder (`Identity.admit`).
def _add_issuer(connection: sqlite3.Connection) -> None:
    columns = {row[1] for row in connection.execute("PRAGMA table_info(device_certificates)")}
    if "issuer" not in columns:
        connection.execute("ALTER TABLE device_certificates ADD COLUMN issuer TEXT")


ISSUER_MIGRATION: tuple[Step, ...] = (_add_issuer,)
# Schema 29: what each collector's `ca/` folder holds, one row per data folder (`collector`:
# its host and a hash of the folder, no path), rewritten by its `serve` every half minute
# (collector/ca_holdings.py): the fingerprints of the CA it signs with and of the CAs it
# trusts, and of the CA that signed its server certificate. `ca rollover activate` and
# `finish` read it to name a collector that missed the `ca/` copy (store/identity.py).
CA_HOLDINGS_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS collector_cas (collector TEXT PRIMARY KEY, host TEXT NOT NULL,"
    " address TEXT NOT NULL, signing TEXT, trusted TEXT NOT NULL, server_issuer TEXT,"
    " seen_us INTEGER NOT NULL)",
)
# Schema 30: which records the seal writes and how bodies are stored (store/report_format.py:
# one row at most; none, format 4's).
REPORT_FORMAT_MIGRATION: tuple[Step, ...] = (
    "CREATE TABLE IF NOT EXISTS report_format (only_row INTEGER PRIMARY KEY"
    " CHECK (only_row = 1), records INTEGER NOT NULL)",
)
# Schema 31: format 5 on (store/report_format.py), now that each report and each group is
# stored and sealed in the format that exports faster (`fact_parts.cut_chosen`,
# `sealing.as_facts`): no row in `report_format` now means format 5 (a store set to 4 stays
# so). No statement: a collector of schema 30, which read no row as format 4, refuses the
# database (NewerSchema), and a fresh database, or one `migrate` makes, holds no row.
# Schema 32: each device's verdicts with their standing, in one index (device, check, state,
# since), so that counting a group's verdicts (`fleet.group_figures`, the silent devices'
# in `fleet_figures`) reads the index alone, not each verdict's row beside it: a group of
# 25,000 of 100,000 devices, its 150,000 verdicts, 0.16 -> 0.11 s on SQLite
# (bench/fleet_report.py). Ingest refreshes an unchanged verdict without touching it (the
# refresh writes none of its columns); only a verdict's change or a new one writes it.
VERDICTS_BY_DEVICE = (
    "CREATE INDEX IF NOT EXISTS check_results_by_device"
    " ON check_results(device_id, check_id, state, since_us)"
)
MIGRATIONS: dict[int, tuple[Step, ...]] = {
    2: IDENTITY_MIGRATION, 3: DELIVERY_MIGRATION, 4: EVIDENCE_MIGRATION, 5: STANDING_MIGRATION,
    6: FLEET_DAYS_MIGRATION, 7: GROUPS_MIGRATION,  # schema 7: device groups (store.identity)
    8: FAILING_MIGRATION, 9: SHARING_MIGRATION, 10: GUESSES_MIGRATION,
    11: CHECKPOINTS_MIGRATION, 12: RETENTION_MIGRATION, 13: ALERTS_MIGRATION,
    14: SEALING_MIGRATION, 15: AUDITOR_MIGRATION, 16: PARTS_MIGRATION,
    17: HOST_ORDER_MIGRATION, 18: PASSING_MIGRATION, 19: MARKS_MIGRATION,
    20: (FAILING_BY_DEVICE,), 21: GROUP_MARKS_MIGRATION, 22: ALERT_RETRIES_MIGRATION,
    23: INSTALLATION_MIGRATION, 24: LEASE_TOKENS_MIGRATION, 25: LEAVING_MIGRATION,
    26: ARRIVAL_MIGRATION, 27: RECEIPT_MIGRATION, 28: ISSUER_MIGRATION,
    29: CA_HOLDINGS_MIGRATION, 30: REPORT_FORMAT_MIGRATION, 31: (),
    32: (VERDICTS_BY_DEVICE,),
}  # fmt: skip


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


def _prepare_sqlite(database: SqliteDatabase) -> None:
    connection = database.connection
    connection.executescript(SQLITE_SCHEMA)
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        connection.execute("INSERT INTO schema_version(version) VALUES (1)")
        version = 1
    else:
        version = row[0]
    _refuse_newer(version)
    _migrate(connection, version)


def _refuse_newer(version: int) -> None:
    """A newer schema than this collector knows is refused (NewerSchema, a RuntimeError
    worded in the reader's language)."""
    from devposture.collector.store.target import NewerSchema  # noqa: PLC0415

    if version > SCHEMA_VERSION:
        raise NewerSchema(
            "the database was written by a newer collector (schema {version}); upgrade"
            " devposture before opening it",
            version=version,
        )


# --- PostgreSQL ----------------------------------------------------------------------------------

_C = 'TEXT COLLATE "C"'

POSTGRES_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE OR REPLACE FUNCTION devposture_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation'; END $$;
-- Reports: append-only, but for retention emptying a body with every other column unchanged.
CREATE OR REPLACE FUNCTION devposture_body_pruned_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND octet_length(NEW.body) = 0 AND octet_length(OLD.body) > 0
     AND NEW.parts IS NULL
     AND (to_jsonb(NEW) - 'body' - 'parts') = (to_jsonb(OLD) - 'body' - 'parts') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END $$;

CREATE TABLE IF NOT EXISTS enrollment_tokens (
    token_id     {_C} PRIMARY KEY,
    secret_hash  {_C} NOT NULL,
    created_us   BIGINT NOT NULL,
    expires_us   BIGINT NOT NULL,
    uses_left    BIGINT NOT NULL,
    revoked_us   BIGINT,
    device_group {_C} NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS devices (
    device_id         {_C} PRIMARY KEY,
    enrolled_us       BIGINT NOT NULL,
    token_id          {_C} NOT NULL,
    cert_serial       {_C} NOT NULL,
    cert_not_after_us BIGINT NOT NULL,
    hostname          {_C} NOT NULL DEFAULT '',
    os_family         {_C} NOT NULL DEFAULT '',
    os_name           {_C} NOT NULL DEFAULT '',
    os_version        {_C} NOT NULL DEFAULT '',
    agent_version     {_C} NOT NULL DEFAULT '',
    last_report_us    BIGINT,
    status            {_C} NOT NULL DEFAULT 'active',
    status_us         BIGINT,
    status_reason     {_C} NOT NULL DEFAULT '',
    clone_suspected_us BIGINT,
    clone_detail      {_C} NOT NULL DEFAULT '',
    reestablish_signed_us BIGINT,
    clock_skew_ms     BIGINT,
    outbox_pending    BIGINT NOT NULL DEFAULT 0,
    outbox_coalesced_total BIGINT NOT NULL DEFAULT 0,
    outbox_dropped_total BIGINT NOT NULL DEFAULT 0,
    outbox_corrupt_total BIGINT NOT NULL DEFAULT 0,
    device_group      {_C} NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS devices_by_group ON devices(device_group, device_id);

CREATE TABLE IF NOT EXISTS reports (
    report_id     {_C} PRIMARY KEY,
    device_id     {_C} NOT NULL REFERENCES devices(device_id),
    received_us   BIGINT NOT NULL,
    collected_us  BIGINT NOT NULL,
    agent_version {_C} NOT NULL,
    body          BYTEA NOT NULL,
    clock_skew_ms BIGINT
);
CREATE INDEX IF NOT EXISTS reports_by_device ON reports(device_id, received_us);
CREATE INDEX IF NOT EXISTS reports_by_collection ON reports(device_id, collected_us);

CREATE TABLE IF NOT EXISTS check_results (
    device_id     {_C} NOT NULL REFERENCES devices(device_id),
    check_id      {_C} NOT NULL,
    state         {_C} NOT NULL,
    reason        {_C} NOT NULL,
    report_id     {_C} NOT NULL REFERENCES reports(report_id),
    collected_us  BIGINT NOT NULL,
    evaluated_us  BIGINT NOT NULL,
    since_us      BIGINT,
    PRIMARY KEY (device_id, check_id)
);
CREATE INDEX IF NOT EXISTS check_results_by_standing ON check_results(check_id, state, since_us);
CREATE INDEX IF NOT EXISTS check_results_failing ON check_results(since_us) WHERE state = 'FAIL';

CREATE TABLE IF NOT EXISTS state_changes (
    device_id  {_C} NOT NULL REFERENCES devices(device_id),
    check_id   {_C} NOT NULL,
    state      {_C} NOT NULL,
    reason     {_C} NOT NULL,
    since_us   BIGINT NOT NULL,
    report_id  {_C} NOT NULL,
    PRIMARY KEY (device_id, check_id, since_us)
);
CREATE INDEX IF NOT EXISTS state_changes_by_time ON state_changes(since_us);

CREATE TABLE IF NOT EXISTS waivers (
    waiver_id   {_C} PRIMARY KEY,
    device_id   {_C} NOT NULL REFERENCES devices(device_id),
    check_id    {_C} NOT NULL,
    owner       {_C} NOT NULL,
    reason      {_C} NOT NULL,
    created_us  BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL,
    revoked_us  BIGINT
);
CREATE TABLE IF NOT EXISTS waiver_events (
    event_id    BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    waiver_id   {_C} NOT NULL REFERENCES waivers(waiver_id),
    action      {_C} NOT NULL,
    at_us       BIGINT NOT NULL,
    detail      {_C} NOT NULL
);

CREATE TABLE IF NOT EXISTS fleet_days (
    day         {_C} NOT NULL,
    check_id    {_C} NOT NULL,
    state       {_C} NOT NULL,
    devices     BIGINT NOT NULL,
    recorded_us BIGINT NOT NULL,
    PRIMARY KEY (day, check_id, state)
);

CREATE TABLE IF NOT EXISTS device_certificates (
    serial         {_C} NOT NULL,
    device_id      {_C} NOT NULL REFERENCES devices(device_id),
    generation     BIGINT NOT NULL,
    issued_us      BIGINT NOT NULL,
    not_after_us   BIGINT NOT NULL,
    first_used_us  BIGINT,
    PRIMARY KEY (device_id, serial)
);
ALTER TABLE device_certificates ADD COLUMN IF NOT EXISTS issuer {_C};
CREATE TABLE IF NOT EXISTS device_events (
    event_id   BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    device_id  {_C} NOT NULL,
    action     {_C} NOT NULL,
    at_us      BIGINT NOT NULL,
    detail     {_C} NOT NULL
);

CREATE TABLE IF NOT EXISTS admin_credentials (
    credential_id  {_C} PRIMARY KEY,
    name           {_C} NOT NULL,
    role           {_C} NOT NULL CHECK (role IN ('viewer', 'auditor', 'admin')),
    secret_hash    {_C} NOT NULL,
    created_us     BIGINT NOT NULL,
    revoked_us     BIGINT
);
-- Schema 15: the auditor role. This runs only while the schema is raised (see
-- _current_postgres), so the constraint is made again once per upgrade.
ALTER TABLE admin_credentials DROP CONSTRAINT IF EXISTS admin_credentials_role_check;
ALTER TABLE admin_credentials ADD CONSTRAINT admin_credentials_role_check
    CHECK (role IN ('viewer', 'auditor', 'admin'));
CREATE TABLE IF NOT EXISTS audit_log (
    entry_id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at_us          BIGINT NOT NULL,
    actor          {_C} NOT NULL,
    credential_id  {_C},
    role           {_C} NOT NULL,
    command        {_C} NOT NULL,
    arguments      {_C} NOT NULL,
    outcome        {_C} NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    message        {_C} NOT NULL,
    peer           {_C} NOT NULL
);

CREATE TABLE IF NOT EXISTS leases (
    name      {_C} PRIMARY KEY,
    holder    {_C} NOT NULL,
    until_us  BIGINT NOT NULL
);
ALTER TABLE leases ADD COLUMN IF NOT EXISTS token BIGINT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS policy_versions (
    version     BIGINT PRIMARY KEY,
    text        {_C} NOT NULL,
    sha256      {_C} NOT NULL,
    applied_us  BIGINT NOT NULL,
    applied_by  {_C} NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence_checkpoints (
    seq      BIGINT PRIMARY KEY,
    at_us    BIGINT NOT NULL,
    entries  BYTEA NOT NULL
);

CREATE TABLE IF NOT EXISTS failed_guesses (
    kind    {_C} NOT NULL,
    source  {_C} NOT NULL,
    at_us   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS failed_guesses_by_source ON failed_guesses(kind, source, at_us);

CREATE TABLE IF NOT EXISTS dashboard_sessions (
    session_hash  {_C} PRIMARY KEY,
    credential_id {_C} NOT NULL,
    name          {_C} NOT NULL,
    role          {_C} NOT NULL,
    csrf          {_C} NOT NULL,
    created_us    BIGINT NOT NULL,
    last_seen_us  BIGINT NOT NULL,
    lang          {_C}
);

CREATE TABLE IF NOT EXISTS evidence_chain (
    seq        BIGINT PRIMARY KEY,
    kind       {_C} NOT NULL,
    at_us      BIGINT NOT NULL,
    record_key {_C} NOT NULL,
    payload    BYTEA NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_chain_by_time ON evidence_chain(at_us);

CREATE INDEX IF NOT EXISTS reports_by_received ON reports(received_us);
ALTER TABLE reports ADD COLUMN IF NOT EXISTS n BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS reports_by_number ON reports(n);
ALTER TABLE reports ADD COLUMN IF NOT EXISTS parts BYTEA;
CREATE TABLE IF NOT EXISTS fact_parts (
    digest   BYTEA PRIMARY KEY,
    part     BYTEA NOT NULL,
    last_us  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS fact_parts_by_last ON fact_parts(last_us);
CREATE TABLE IF NOT EXISTS report_format (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    records  INTEGER NOT NULL
);
ALTER TABLE devices ADD COLUMN IF NOT EXISTS host_key {_C}
    GENERATED ALWAYS AS ({host_key("postgresql")}) STORED;
CREATE INDEX IF NOT EXISTS devices_by_host ON devices(host_key, device_id);
ALTER TABLE devices ADD COLUMN IF NOT EXISTS passing BIGINT NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION devposture_count_passing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE devices SET passing = passing + 1 WHERE device_id = NEW.device_id;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE devices SET passing = passing - 1 WHERE device_id = OLD.device_id;
  ELSE
    UPDATE devices SET passing = passing + CASE WHEN NEW.state = 'PASS' THEN 1 ELSE -1 END
    WHERE device_id = NEW.device_id;
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER check_results_passing_insert AFTER INSERT ON check_results
    FOR EACH ROW WHEN (NEW.state = 'PASS') EXECUTE FUNCTION devposture_count_passing();
CREATE OR REPLACE TRIGGER check_results_passing_delete AFTER DELETE ON check_results
    FOR EACH ROW WHEN (OLD.state = 'PASS') EXECUTE FUNCTION devposture_count_passing();
CREATE OR REPLACE TRIGGER check_results_passing_update AFTER UPDATE OF state ON check_results
    FOR EACH ROW WHEN ((OLD.state = 'PASS') <> (NEW.state = 'PASS'))
    EXECUTE FUNCTION devposture_count_passing();
{COUNT_PASSING};
CREATE TABLE IF NOT EXISTS fleet_marks (
    at_us      BIGINT NOT NULL,
    judged_by  {_C} NOT NULL,
    check_id   {_C} NOT NULL,
    state      {_C} NOT NULL,
    devices    BIGINT NOT NULL,
    PRIMARY KEY (at_us, judged_by, check_id, state)
);
CREATE TABLE IF NOT EXISTS group_marks (
    at_us        BIGINT NOT NULL,
    judged_by    {_C} NOT NULL,
    device_group {_C} NOT NULL,
    check_id     {_C} NOT NULL,
    state        {_C} NOT NULL,
    devices      BIGINT NOT NULL,
    PRIMARY KEY (at_us, judged_by, device_group, check_id, state)
);
CREATE OR REPLACE FUNCTION devposture_void_marks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM fleet_marks WHERE at_us >= NEW.since_us;
  DELETE FROM group_marks WHERE at_us >= NEW.since_us;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER state_changes_void_marks AFTER INSERT ON state_changes
    FOR EACH ROW EXECUTE FUNCTION devposture_void_marks();
CREATE OR REPLACE FUNCTION devposture_void_group_marks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM group_marks WHERE device_group IN (OLD.device_group, NEW.device_group);
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER devices_regrouped_void_group_marks
    AFTER UPDATE OF device_group ON devices FOR EACH ROW
    WHEN (OLD.device_group IS DISTINCT FROM NEW.device_group)
    EXECUTE FUNCTION devposture_void_group_marks();
CREATE OR REPLACE FUNCTION devposture_void_marks_of_leaving() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  since BIGINT := LEAST({_left_since("OLD")}, {_left_since("NEW")});
BEGIN
  DELETE FROM fleet_marks WHERE at_us >= since;
  DELETE FROM group_marks
  WHERE device_group IN (OLD.device_group, NEW.device_group) AND at_us >= since;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER devices_left_void_marks
    AFTER UPDATE OF status, status_us ON devices FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.status_us IS DISTINCT FROM NEW.status_us)
    EXECUTE FUNCTION devposture_void_marks_of_leaving();
CREATE OR REPLACE FUNCTION devposture_void_marks_of_arrival() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  since BIGINT;
  of_groups TEXT[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    since := NEW.enrolled_us;
    of_groups := ARRAY[NEW.device_group];
  ELSIF TG_OP = 'DELETE' THEN
    since := OLD.enrolled_us;
    of_groups := ARRAY[OLD.device_group];
  ELSE
    since := LEAST(OLD.enrolled_us, NEW.enrolled_us);
    of_groups := ARRAY[OLD.device_group, NEW.device_group];
  END IF;
  DELETE FROM fleet_marks WHERE at_us >= since;
  DELETE FROM group_marks WHERE device_group = ANY(of_groups) AND at_us >= since;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER devices_enrolled_void_marks AFTER INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION devposture_void_marks_of_arrival();
CREATE OR REPLACE TRIGGER devices_enrollment_moved_void_marks
    AFTER UPDATE OF enrolled_us ON devices FOR EACH ROW
    WHEN (OLD.enrolled_us IS DISTINCT FROM NEW.enrolled_us)
    EXECUTE FUNCTION devposture_void_marks_of_arrival();
CREATE OR REPLACE TRIGGER devices_deleted_void_marks AFTER DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION devposture_void_marks_of_arrival();
CREATE OR REPLACE FUNCTION devposture_void_marks_of_receipt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM fleet_marks WHERE at_us >= NEW.received_us;
  DELETE FROM group_marks WHERE at_us >= NEW.received_us;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER reports_received_void_marks AFTER INSERT ON reports
    FOR EACH ROW EXECUTE FUNCTION devposture_void_marks_of_receipt();
{FAILING_BY_DEVICE};
{VERDICTS_BY_DEVICE};
CREATE TABLE IF NOT EXISTS report_groups (
    seq      BIGINT PRIMARY KEY,
    first_n  BIGINT NOT NULL,
    last_n   BIGINT NOT NULL,
    reports  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pruned_spans (
    seq        BIGINT PRIMARY KEY,
    at_us      BIGINT NOT NULL,
    before_us  BIGINT NOT NULL,
    reports    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS retention_kept (
    report_id    {_C} PRIMARY KEY,
    received_us  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS alert_open (
    item_key   {_C} PRIMARY KEY,
    kind       {_C} NOT NULL,
    detail     {_C} NOT NULL,
    opened_us  BIGINT NOT NULL,
    told_us    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_digests (
    digest_id    {_C} PRIMARY KEY,
    composed_us  BIGINT NOT NULL,
    new_items    BIGINT NOT NULL,
    reminders    BIGINT NOT NULL,
    resolved     BIGINT NOT NULL,
    open_items   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_digests_by_time ON alert_digests(composed_us);
CREATE TABLE IF NOT EXISTS alert_outbox (
    delivery_id   {_C} PRIMARY KEY,
    channel       {_C} NOT NULL,
    digest_id     {_C} NOT NULL,
    items         {_C} NOT NULL,
    open_items    BIGINT NOT NULL,
    composed_us   BIGINT NOT NULL,
    created_us    BIGINT NOT NULL,
    state         {_C} NOT NULL,
    attempts      BIGINT NOT NULL,
    next_us       BIGINT NOT NULL,
    attempted_us  BIGINT,
    done_us       BIGINT,
    outcome       {_C} NOT NULL
);
DROP INDEX IF EXISTS alert_outbox_pending;
CREATE UNIQUE INDEX IF NOT EXISTS alert_outbox_untried ON alert_outbox(channel)
    WHERE state = 'pending' AND attempts = 0;
CREATE INDEX IF NOT EXISTS alert_outbox_by_attempt ON alert_outbox(channel, attempted_us);
CREATE TABLE IF NOT EXISTS alert_collector_problems (
    reporter     {_C} NOT NULL,
    problem_key  {_C} NOT NULL,
    detail       {_C} NOT NULL,
    observed_us  BIGINT NOT NULL,
    PRIMARY KEY (reporter, problem_key)
);
CREATE TABLE IF NOT EXISTS installation (
    only_row      INTEGER PRIMARY KEY CHECK (only_row = 1),
    evidence_key  {_C} NOT NULL,
    claimed_us    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS collector_cas (
    collector      {_C} PRIMARY KEY,
    host           {_C} NOT NULL,
    address        {_C} NOT NULL,
    signing        {_C},
    trusted        {_C} NOT NULL,
    server_issuer  {_C},
    seen_us        BIGINT NOT NULL
);
"""  # noqa: S608 (fixed texts only)

# table -> what its triggers say when an UPDATE, DELETE or TRUNCATE is tried (as on SQLite).
APPEND_ONLY = {
    "reports": "reports are append-only",
    "state_changes": "state history is append-only",
    "waiver_events": "the waiver log is append-only",
    "device_events": "the device log is append-only",
    "audit_log": "the audit log is append-only",
    "evidence_chain": "the evidence chain is append-only",
    "policy_versions": "the policy history is append-only",
    "report_groups": "report groups are append-only",
}


def _postgres_triggers() -> str:
    statements = []
    for table, message in APPEND_ONLY.items():
        guard = "devposture_body_pruned_only" if table == "reports" else "devposture_append_only"
        statements.append(
            f"CREATE OR REPLACE TRIGGER {table}_are_append_only BEFORE UPDATE OR DELETE"
            f" ON {table} FOR EACH ROW EXECUTE FUNCTION {guard}('{message}');"
            f" CREATE OR REPLACE TRIGGER {table}_are_never_truncated BEFORE TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION devposture_append_only('{message}');"
        )
    return "\n".join(statements)


# Held while a collector prepares the schema, so that collectors starting together on an empty
# database do not create the same tables at once.
SCHEMA_LOCK = 0x6465_7670_7363_686D


def _current_postgres(database: PostgresDatabase) -> bool:
    """Whether the database is at this schema already: then nothing is created or replaced
    (CREATE INDEX IF NOT EXISTS still takes a lock on its table, which would wait on, and
    deadlock with, the writers of a collector already serving)."""
    with database.pool.connection() as connection:
        row = connection.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return False
        version = connection.execute("SELECT version FROM schema_version").fetchone()
    if version is None:
        return False
    _refuse_newer(int(version[0]))
    return int(version[0]) == SCHEMA_VERSION


def _prepare_postgres(database: PostgresDatabase) -> None:
    if _current_postgres(database):
        return
    with database.pool.connection() as connection, connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (database.lock_key(SCHEMA_LOCK),))
        connection.execute(POSTGRES_SCHEMA)
        connection.execute(_postgres_triggers())
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            connection.execute("INSERT INTO schema_version(version) VALUES (%s)", (SCHEMA_VERSION,))
            return
        _refuse_newer(int(row[0]))
        # The tables above are made whole and idempotently, so an older database has gained
        # the newer ones by now (schemas 9 and 10: what several collectors share).
        connection.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))


def prepare(database: AnyDatabase) -> None:
    """Create the tables of a new database, or bring an older one to this schema."""
    if isinstance(database, SqliteDatabase):
        _prepare_sqlite(database)
    else:
        _prepare_postgres(database)
