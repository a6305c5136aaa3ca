"""Moving a site's SQLite database to PostgreSQL (`devposture-collector migrate --to …`), with
its whole history and its evidence chain unchanged, so that the site can grow into several
collectors on one server.

Every row is copied as it is, identity numbers included (the evidence chain's payloads name
them), in one PostgreSQL transaction under the store's write lock: a move that fails leaves the
destination as empty as it was. Before committing, each table is read back on both sides in
key order and compared by SHA-256, so "moved" means every row arrived unchanged; the chain's
head hash, which an auditor may hold, is then the same on both sides (`audit verify --after`
across the move proves it to them).

The SQLite file is held for writing (its write lock, BEGIN IMMEDIATE) from before the copy is
read until collector.toml names the new database: a local command that writes without the data
folder's lock (`token create --data`) waits for the move instead of writing a row after the
copy was read, which the site would lose once it runs on PostgreSQL.

A move whose copy committed but whose last step, rewriting collector.toml, did not happen (a
full disk, a kill at that moment) is finished by running it again: a destination holding this
site, every table identical, is taken as its copy. One that holds an earlier copy (the
collector ran on SQLite since), a copy the site went on from (it ran on PostgreSQL, then
collector.toml was put back), or anything else is refused, each in its own words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from devposture.collector.store.engine import PostgresDatabase, Row, SqliteDatabase, connect
from devposture.collector.store.schema import SCHEMA_VERSION, prepare
from devposture.collector.store.target import PostgresTarget, SqliteTarget
from devposture.log_format import redact
from devposture.policy.cli_messages import Worded

# Each table and its key (the order rows are compared in), parents before children.
TABLES: tuple[tuple[str, str], ...] = (
    ("installation", "only_row"),
    ("report_format", "only_row"),
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
# The tables a move leaves behind, and why: none holds the site's history or its evidence.
# Every other table of the schema is in TABLES (test_migrate_faults holds the two to it, so
# that a table added later is not left behind unnoticed under "every table read back").
LEFT_BEHIND: dict[str, str] = {
    "schema_version": "each database's own, written when its tables are made",
    "leases": "which collector does once-only work now: taken afresh on PostgreSQL",
    "failed_guesses": "the guessing throttle's last minutes",
    "dashboard_sessions": "dashboard sign-ins: people sign in again",
    "collector_cas": "what each serving collector's ca/ folder holds: each says it again",
}
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
    # The destination already held this site, every table identical: an earlier run copied
    # it and stopped before rewriting collector.toml; nothing was copied this time.
    already: bool = False


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
    source: SqliteTarget,
    destination: PostgresTarget,
    progress: Callable[[str, int], None],
    switch: Callable[[], None],
) -> Moved:
    """Copy the SQLite database `source` into the empty PostgreSQL database `destination`,
    then call `switch` (which makes collector.toml name it) while the source is still held
    for writing: no write to the site can fall between the copy and the switch."""
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
        # The write lock, held through the switch: a reader of the site goes on reading.
        with reader.transaction():
            moved = _copy(reader, target, progress)
            switch()
        return moved
    finally:
        target.close()
        reader.close()


def _differing(
    reader: SqliteDatabase, target: PostgresDatabase
) -> tuple[str, tuple[int, str], tuple[int, str]] | None:
    """The first table whose rows differ between the two databases (its count and digest on
    each side), or None: every table identical."""
    raw = reader.connection
    for table, key in TABLES:
        columns = _columns(target, table)
        before = _digest(_rows(raw.execute, table, columns, key))
        after = _digest(_rows(target.stream, table, columns, key))
        if before != after:
            return table, before, after
    return None


def _same_site(reader: SqliteDatabase, target: PostgresDatabase, used: str) -> Moved:
    """The destination holds collector data (table `used` is not empty): this site's whole
    copy, from a move that stopped before its switch (taken as moved), or MigrationError."""
    ours, theirs = (
        None if row is None else str(row[0])
        for row in (reader.execute("SELECT evidence_key FROM installation").fetchone(),
                    target.execute("SELECT evidence_key FROM installation").fetchone())
    )  # fmt: skip
    if ours != theirs:  # another installation's (or one's that claimed none, and this one did)
        raise _not_empty(used)
    counts: dict[str, int] = {}
    differs: str | None = None
    for table, _ in TABLES:
        (mine,) = reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
        (copied,) = target.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
        counts[table] = int(mine)
        if differs is None and mine != copied:
            differs = table
    if differs is None:
        found = _differing(reader, target)
        differs = None if found is None else found[0]
    if differs is None:
        return Moved(counts, _head(target), already=True)
    if ours is None:  # no installation named on either side: nothing says whose it is
        raise _not_empty(used)
    raise _another_copy(reader, target, differs)


def _hash_at(database: SqliteDatabase | PostgresDatabase, seq: int) -> str | None:
    row = database.execute("SELECT hash FROM evidence_chain WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else bytes(row[0]).hex()


def _another_copy(reader: SqliteDatabase, target: PostgresDatabase, differs: str) -> MigrationError:
    """The destination holds this site, not as the file holds it now. Which of the two went
    on is read from the evidence chain (each entry's hash covers every entry before it): only
    a copy the file has gone on from may be emptied; one that went on itself holds the site's
    newer evidence (the site ran on PostgreSQL, then collector.toml was put back)."""
    copied = _head(target)
    if copied is None or _hash_at(reader, copied[0]) == copied[1]:
        return MigrationError(
            "the PostgreSQL database holds an earlier copy of this site, from a move that did"
            " not finish, and the site has changed since (table {table} differs). Make sure no"
            " collector uses that database, empty it (drop the database and create it again),"
            " then run migrate again",
            table=differs,
        )
    mine = reader.execute("SELECT seq, hash FROM evidence_chain ORDER BY seq DESC LIMIT 1")
    head = mine.fetchone()
    if head is None or _hash_at(target, int(head[0])) == bytes(head[1]).hex():
        return MigrationError(
            "the PostgreSQL database holds this site with evidence its SQLite file does not"
            " have (the chain goes on there to seq {seq}): the site ran on PostgreSQL after an"
            " earlier move, and collector.toml was put back. Nothing was moved. Do not empty"
            " that database: set [database] url in collector.toml to it again",
            seq=copied[0],
        )
    return MigrationError(
        "the PostgreSQL database and the SQLite file each hold evidence of this site the other"
        " does not (their evidence chains differ): the site ran on both since an earlier move."
        " Nothing was moved. Empty neither; keep both, and ask your devposture support how to"
        " bring them together",
    )


def _not_empty(table: str) -> MigrationError:
    return MigrationError(
        "the PostgreSQL database already holds collector data (table {table} is"
        " not empty): give an empty database, made for this site",
        table=table,
    )


def _head(database: PostgresDatabase) -> tuple[int, str] | None:
    head = database.execute(
        "SELECT seq, hash FROM evidence_chain ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return None if head is None else (int(head[0]), bytes(head[1]).hex())


def _refused_row(table: str, exc: Exception) -> MigrationError:
    """A row of `table` in the SQLite file that PostgreSQL refuses to store (text typed into
    an INTEGER column, a NUL in a text): the site's data, not the server, is at fault."""
    problem = " ".join(redact(str(exc)).split())
    return MigrationError(
        "table {table} of the SQLite file holds a row PostgreSQL cannot store ({problem}): it"
        " was edited outside the collector, and nothing was moved. Keep a copy of the file,"
        " correct or restore that row (the site's backup), then run migrate again",
        table=table,
        problem=problem,
    )


def _copy(
    reader: SqliteDatabase, target: PostgresDatabase, progress: Callable[[str, int], None]
) -> Moved:
    """The copy, in one PostgreSQL transaction; the caller holds the SQLite file's write
    transaction, so what is read is one state, and stays the site's until the switch."""
    import psycopg  # noqa: PLC0415 (installed where PostgreSQL is used: target is one)

    refused = (psycopg.DataError, psycopg.IntegrityError)
    raw = reader.connection
    with target.transaction() as cursor:
        for table, _ in TABLES:
            if cursor.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
                return _same_site(reader, target, table)
        version = cursor.execute("SELECT version FROM schema_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise MigrationError(
                "the PostgreSQL database is at schema {version}, not {expected}: upgrade"
                " every collector to the same devposture first",
                version=version,
                expected=SCHEMA_VERSION,
            )
        counts: dict[str, int] = {}
        # The rows are copied as they are, derived ones included (each device's count of
        # passing verdicts): the triggers that keep those as rows arrive would count every
        # copied verdict again. Off for this transaction only (DDL is transactional here).
        for table, _ in TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for table, key in TABLES:
            columns = _columns(target, table)
            names = ", ".join(columns)
            copied = 0
            try:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in _rows(raw.execute, table, columns, key):
                        copy.write_row(row)
                        copied += 1
                        if copied % BATCH == 0:
                            progress(table, copied)
            except refused as exc:
                raise _refused_row(table, exc) from exc
            counts[table] = copied
            progress(table, copied)
        for table, _ in TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        for table, column in IDENTITIES:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608
                f" COALESCE(MAX({column}), 1), MAX({column}) IS NOT NULL) FROM {table}"
            )
        differs = _differing(reader, target)
        if differs is not None:
            table, before, after = differs
            raise MigrationError(
                "table {table} did not arrive intact ({before} rows in SQLite,"
                " {after} read back from PostgreSQL): nothing was kept; report this"
                " as a bug with the collector's log",
                table=table,
                before=before[0],
                after=after[0],
            )
        head = _head(target)
    return Moved(counts, head)
