"""Moving a site's SQLite database to PostgreSQL (`devposture-collector migrate --to …`), with
its whole history and its evidence chain unchanged, so that the site can grow into several
collectors on one server.

Every row is copied as it is, identity numbers included (the evidence chain's payloads name
them), in one PostgreSQL transaction under the store's write lock: a move that fails leaves the
destination as empty as it was. Before committing, each table is read back on both sides in
key order and compared by SHA-256, so "moved" means every row arrived unchanged; the chain's
head hash, which an auditor may hold, is then the same on both sides (`audit verify --after`
across the move proves it to them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from devposture.collector.store.engine import PostgresDatabase, Row, SqliteDatabase, connect
from devposture.collector.store.schema import SCHEMA_VERSION, prepare
from devposture.collector.store.target import PostgresTarget, SqliteTarget
from devposture.policy.cli_messages import Worded

# Each table and its key (the order rows are compared in), parents before children.
TABLES: tuple[tuple[str, str], ...] = (
    ("installation", "only_row"),
    ("enrollment_tokens", "token_id"),
    ("devices", "device_id"),
    ("device_certificates", "device_id, serial"),
    ("fact_parts", "digest"),
    ("reports", "report_id"),
    ("check_results", "device_id, check_id"),
    ("state_changes", "device_id, check_id, since_us"),
    ("waivers", "waiver_id"),
    ("waiver_events", "event_id"),
    ("device_events", "event_id"),
    ("admin_credentials", "credential_id"),
    ("audit_log", "entry_id"),
    ("fleet_days", "day, check_id, state"),
    ("fleet_marks", "at_us, judged_by, check_id, state"),
    ("group_marks", "at_us, judged_by, device_group, check_id, state"),
    ("policy_versions", "version"),
    ("evidence_chain", "seq"),
    ("report_groups", "seq"),
    ("evidence_checkpoints", "seq"),
    ("pruned_spans", "seq"),
    ("retention_kept", "report_id"),
    ("alert_open", "item_key"),
    ("alert_digests", "digest_id"),
    ("alert_outbox", "delivery_id"),
    ("alert_collector_problems", "reporter, problem_key"),
)
# The identity columns whose next value must follow the copied rows.
IDENTITIES = (
    ("waiver_events", "event_id"), ("device_events", "event_id"), ("audit_log", "entry_id"),
)  # fmt: skip
BATCH = 5000


class MigrationError(Worded):
    """The move cannot be made, or did not arrive intact; nothing was kept. The text says why
    and what to do, in the reader's language (`str()` stays the English)."""


@dataclass(frozen=True)
class Moved:
    rows: dict[str, int]  # table -> rows copied
    chain_head: tuple[int, str] | None  # (seq, hex hash) of the newest chain entry


def _columns(database: PostgresDatabase, table: str) -> list[str]:
    """The columns a copy writes: the stored ones (a generated column is computed again)."""
    rows = database.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? AND is_generated = 'NEVER'"
        " ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [row[0] for row in rows]


def _rows(
    execute: Callable[[str], Iterable[Row]], table: str, columns: list[str], key: str
) -> Iterator[tuple[object, ...]]:
    names = ", ".join(columns)
    for row in execute(f"SELECT {names} FROM {table} ORDER BY {key}"):  # noqa: S608 (fixed names)
        yield tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)


def _digest(rows: Iterable[tuple[object, ...]]) -> tuple[int, str]:
    digest, count = hashlib.sha256(), 0
    for row in rows:
        digest.update(repr(row).encode("utf-8"))
        count += 1
    return count, digest.hexdigest()


def used_table(database: PostgresDatabase) -> str | None:
    """The first of the tables a site's data is in that holds a row (None: none does, or the
    database has no collector tables yet): a database another installation uses."""
    for table, _ in TABLES:
        if database.execute("SELECT to_regclass(?)", (table,)).fetchone()[0] is None:
            continue  # not made yet
        if database.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
            return table
    return None


def migrate(
    source: SqliteTarget, destination: PostgresTarget, progress: Callable[[str, int], None]
) -> Moved:
    """Copy the SQLite database `source` into the empty PostgreSQL database `destination`."""
    reader = SqliteDatabase(source)
    try:
        prepare(reader)  # an older site's file is brought to this schema first
    except BaseException:
        reader.close()
        raise
    target = connect(destination)
    assert isinstance(target, PostgresDatabase)
    try:
        prepare(target)
        return _copy(reader, target, progress)
    finally:
        target.close()
        reader.close()


def _copy(
    reader: SqliteDatabase, target: PostgresDatabase, progress: Callable[[str, int], None]
) -> Moved:
    with target.transaction() as cursor:
        for table, _ in TABLES:
            if cursor.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
                raise MigrationError(
                    "the PostgreSQL database already holds collector data (table {table} is"
                    " not empty): give an empty database, made for this site", table=table
                )
        version = cursor.execute("SELECT version FROM schema_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise MigrationError(
                "the PostgreSQL database is at schema {version}, not {expected}: upgrade"
                " every collector to the same devposture first",
                version=version, expected=SCHEMA_VERSION,
            )
        counts: dict[str, int] = {}
        # The rows are copied as they are, derived ones included (each device's count of
        # passing verdicts): the triggers that keep those as rows arrive would count every
        # copied verdict again. Off for this transaction only (DDL is transactional here).
        for table, _ in TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        with reader.snapshot():
            raw = reader.connection
            for table, key in TABLES:
                columns = _columns(target, table)
                names = ", ".join(columns)
                copied = 0
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in _rows(raw.execute, table, columns, key):
                        copy.write_row(row)
                        copied += 1
                        if copied % BATCH == 0:
                            progress(table, copied)
                counts[table] = copied
                progress(table, copied)
            for table, _ in TABLES:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            for table, column in IDENTITIES:
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608
                    f" COALESCE(MAX({column}), 1), MAX({column}) IS NOT NULL) FROM {table}"
                )
            for table, key in TABLES:
                columns = _columns(target, table)
                before = _digest(_rows(raw.execute, table, columns, key))
                after = _digest(_rows(target.stream, table, columns, key))
                if before != after:
                    raise MigrationError(
                        "table {table} did not arrive intact ({before} rows in SQLite,"
                        " {after} read back from PostgreSQL): nothing was kept; report this"
                        " as a bug with the collector's log",
                        table=table, before=before[0], after=after[0],
                    )
        head = cursor.execute(
            "SELECT seq, hash FROM evidence_chain ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return Moved(counts, None if head is None else (int(head[0]), bytes(head[1]).hex()))
