"""The engine the collector tests run on: SQLite files (the default), or PostgreSQL when
DEVPOSTURE_TEST_POSTGRESQL names a server (`make test` runs the collector tests a second time
so, against the server .ci/postgresql starts or finds at 127.0.0.1:5432).

On PostgreSQL, each test's database is a schema of its own in one database made for this
test run (dropped when the run ends): as empty and as separate as a new SQLite file, without
the cost of a CREATE DATABASE per test.
"""

from __future__ import annotations

import atexit
import os
import uuid
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from devposture.collector.store.engine import AnyDatabase, PostgresDatabase, connect
from devposture.collector.store.schema import APPEND_ONLY
from devposture.collector.store.target import DatabaseTarget, PostgresTarget, SqliteTarget
from tests.waiting import wait_until

if TYPE_CHECKING:
    import psycopg

ENV = "DEVPOSTURE_TEST_POSTGRESQL"
SERVER = os.environ.get(ENV, "")
_run_database: str | None = None


# The running test's id while it is marked `engine_free` (tests/conftest.py sets it around the
# test's setup, call and teardown). Such a test is left out of the PostgreSQL leg, so asking
# which engine the run is on fails it: its outcome would depend on the leg it was left out of.
engine_free_test: str | None = None


def on_postgresql() -> bool:
    """Whether this run's collector tests are on PostgreSQL. Every helper here that picks or
    reaches the engine asks this first, so a test marked engine_free that uses one fails."""
    if engine_free_test is not None:
        pytest.fail(
            f"{engine_free_test} is marked engine_free but uses the test run's database engine"
            " (tests/databases.py): take the mark off, so that the PostgreSQL leg runs it too",
            pytrace=False,
        )
    return bool(SERVER)


def _url(database: str, schema: str | None = None) -> str:
    parts = urlsplit(SERVER)
    query = f"options={quote(f'-csearch_path={schema}')}" if schema else ""
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, ""))


def _admin(sql: str) -> None:
    import psycopg  # noqa: PLC0415  (only on the PostgreSQL leg)

    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(sql)


def _drop_orphans() -> None:
    """Drop the databases of test runs whose process is gone (killed before its exit hook)."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(SERVER, autocommit=True) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'devposture_test_%'"
        )]  # fmt: skip
        roles = [row[0] for row in connection.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'devposture_test_%'"
        )]  # fmt: skip
    for name in names:
        pid = name.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for name in roles:  # a role_database's, its schema gone with its run's database
        pid = name.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _admin(f'DROP ROLE IF EXISTS "{name}"')


def _database_of_this_run() -> str:
    """The database this test run's schemas go in, made on first use."""
    global _run_database  # noqa: PLW0603
    if _run_database is None:
        _drop_orphans()
        name = f"devposture_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _admin(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\'')
        _run_database = name
        atexit.register(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return _run_database


def terminate_backends(
    *, pids: AbstractSet[int] = frozenset(), client_ports: AbstractSet[int] = frozenset()
) -> int:
    """Have the server end the backends with these process ids or serving these client ports
    (what a restart or a failover does to a collector's connections); how many it ended."""
    on_postgresql()  # an engine_free test may not
    import psycopg  # noqa: PLC0415  (only on the PostgreSQL leg)

    with psycopg.connect(SERVER, autocommit=True) as connection:
        return len(_ended(
            connection, "pid = ANY(%s) OR client_port = ANY(%s)",
            (sorted(pids), sorted(client_ports)),
        ))  # fmt: skip


def _ended(
    connection: psycopg.Connection[Any], where: str, parameters: tuple[object, ...]
) -> list[int]:
    """End the backends `where` picks (a fixed condition, never from input), all at once as a
    restart or a failover does, and return their pids once they are gone: told to end, a
    backend goes a moment later, and a connection a test used meanwhile (its pool's check
    still passing) was closed under the one read its engine asks again."""
    ended = [pid for pid, told in connection.execute(
        f"SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}",
        parameters,
    ) if told]  # fmt: skip

    def gone() -> bool:
        left = connection.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", (ended,))
        return not left.fetchall()

    wait_until(gone, "the ended backends to be gone")
    return ended


def fresh_postgres() -> PostgresTarget:
    """A new, empty schema of this run's database, as a collector's database address."""
    on_postgresql()  # an engine_free test may not
    import psycopg  # noqa: PLC0415

    database = _database_of_this_run()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_url(database), autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    return PostgresTarget(_url(database, schema))


def with_lock_timeout(target: PostgresTarget, seconds: int = 20) -> PostgresTarget:
    """`target` whose statements give up waiting on a lock after `seconds`: where a fault in
    the code under test would leave a test waiting on a lock for ever, it fails instead."""
    parts = urlsplit(target.url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -clock_timeout={seconds * 1000}".strip()
    return PostgresTarget(urlunsplit(parts._replace(query=urlencode(query, quote_via=quote))))


def _end_sessions(role: str) -> None:
    """End the role's sessions (`_ended`)."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(SERVER, autocommit=True) as connection:
        _ended(connection, "usename = %s", (role,))


@contextmanager
def role_database() -> Iterator[tuple[PostgresTarget, Callable[[bool], None]]]:
    """A new, empty database (a schema in this run's database) of a role made for it, and
    `read_only(on)`: the role's sessions from then on refuse writes (`default_transaction_
    read_only`, as an operator may set it; a standby answers writes alike) or take them
    again. Its sessions are ended at each change, as a failover ends them, so the next take
    the setting. The role and its schema are dropped on leaving; the server's own settings
    are never touched."""
    on_postgresql()  # an engine_free test may not
    import psycopg  # noqa: PLC0415

    database = _database_of_this_run()
    role = f"devposture_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE ROLE "{role}" LOGIN')
    try:
        with psycopg.connect(_url(database), autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"')

        def read_only(on: bool) -> None:
            value = "on" if on else "off"
            _admin(f'ALTER ROLE "{role}" SET default_transaction_read_only = {value}')
            _end_sessions(role)

        parts = urlsplit(_url(database, role))
        netloc = f"{role}@{parts.netloc.rpartition('@')[2]}"
        yield PostgresTarget(urlunsplit(parts._replace(netloc=netloc))), read_only
    finally:
        _end_sessions(role)
        with psycopg.connect(_url(database), autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{role}" CASCADE')
        _admin(f'DROP ROLE IF EXISTS "{role}"')


def fresh_database(folder: Path, name: str = "devposture.db") -> DatabaseTarget:
    """A new database for one test: `folder/name` on SQLite, a new schema on PostgreSQL."""
    if on_postgresql():
        return fresh_postgres()
    return SqliteTarget(folder / name)


def collector_database() -> PostgresTarget | None:
    """What `initialize(database=…)` is given: None keeps the data folder's SQLite file."""
    return fresh_postgres() if on_postgresql() else None


def init_arguments() -> list[str]:
    """What `devposture-collector init` is given besides the folder: a new database on
    PostgreSQL, nothing on SQLite (the data folder's own file)."""
    return ["--database", fresh_postgres().url] if on_postgresql() else []


def columns(database: AnyDatabase, table: str) -> list[str]:
    """A table's columns, in order, on either engine."""
    if isinstance(database, PostgresDatabase):
        rows = database.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [row[0] for row in rows]
    # table_xinfo: table_info leaves generated columns out.
    return [row[1] for row in database.execute(f"PRAGMA table_xinfo({table})").fetchall()]


def raw(target: DatabaseTarget) -> AnyDatabase:
    """A plain connection to a test's database, beside the collector's (for what a test reads
    or tries directly: the engine's placeholders, its errors)."""
    return connect(target)


@contextmanager
def unguarded(target: DatabaseTarget) -> Iterator[AnyDatabase]:
    """A connection on which the append-only triggers are off, to tamper with a database as
    an attacker with its files or its server would (the tests that prove the evidence chain
    catches it). Committed and the triggers restored on leaving."""
    database = connect(target)
    try:
        if isinstance(database, PostgresDatabase):
            with database.transaction():
                for table in APPEND_ONLY:
                    database.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                yield database
                for table in APPEND_ONLY:
                    database.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            raw = database.connection
            triggers = raw.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
            ).fetchall()
            with database.transaction():
                for trigger, _ in triggers:
                    database.execute(f'DROP TRIGGER "{trigger}"')
                yield database
                for _, sql in triggers:
                    database.execute(sql)
    finally:
        database.close()


def statements_issued(traced: list[str]) -> list[str]:
    """The statements SQLite's trace saw issued: it repeats a statement for each trigger step
    the statement runs (the counts the database keeps, schemas 18 and 19), so a statement is
    one run of repeats."""
    return [s for k, s in enumerate(traced) if k == 0 or s != traced[k - 1]]
