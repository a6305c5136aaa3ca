"""The PostgreSQL engine after the server closed its connections (a restart, a failover, an
operator's pg_terminate_backend): collector/store/engine.py.

A read and the start of a write transaction are done again, once, on a new connection; a
write outside a transaction is not (it may have been done before the connection died), and
the pool's other dead connections are replaced at the first failure, not one call each.
While the server cannot be reached at all, statements fail at once until it answers again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

from devposture.collector.store.engine import PostgresDatabase, reads_only
from devposture.collector.store.target import PostgresTarget
from tests.databases import fresh_postgres, on_postgresql, terminate_backends
from tests.tcp_cut import CuttableRelay
from tests.waiting import wait_until

needs_postgresql = pytest.mark.skipif(not on_postgresql(), reason="PostgreSQL's connections")


@pytest.fixture
def database() -> Iterator[PostgresDatabase]:
    db = PostgresDatabase(fresh_postgres())
    try:
        db.execute("CREATE TABLE notes (n integer)")
        yield db
    finally:
        db.close()


def _terminate(pids: set[int]) -> None:
    assert pids and terminate_backends(pids=pids) == len(pids)


def _pooled_backends(db: PostgresDatabase, count: int) -> set[int]:
    """Make the pool hold `count` connections, and their server processes."""
    connections = [db.pool.getconn() for _ in range(count)]
    pids = {c.info.backend_pid for c in connections}
    for connection in connections:
        db.pool.putconn(connection)
    return pids


def test_plain_selects_are_the_only_statements_asked_again() -> None:
    assert reads_only("SELECT 1") and reads_only("  select n FROM notes")
    for write in ("INSERT INTO notes VALUES (1)", "UPDATE notes SET n = 2", "DELETE FROM notes",
                  "WITH x AS (SELECT 1) INSERT INTO notes SELECT * FROM x"):  # fmt: skip
        assert not reads_only(write)


@needs_postgresql
def test_a_read_after_the_server_closed_every_connection_is_answered(
    database: PostgresDatabase,
) -> None:
    pids = _pooled_backends(database, 3)
    _terminate(pids)
    assert database.execute("SELECT 41 + 1").fetchone()[0] == 42
    # The pool was checked at that first failure: the next reads find live connections.
    for _ in range(3):
        assert database.execute("SELECT pg_backend_pid()").fetchone()[0] not in pids


@needs_postgresql
def test_a_transaction_begun_on_a_dead_connection_begins_again_on_a_new_one(
    database: PostgresDatabase,
) -> None:
    pids = _pooled_backends(database, 2)
    _terminate(pids)
    with database.transaction() as cursor:
        cursor.execute("INSERT INTO notes VALUES (7)")
    assert [tuple(r) for r in database.execute("SELECT n FROM notes").fetchall()] == [(7,)]


@needs_postgresql
def test_a_write_outside_a_transaction_is_not_sent_twice(database: PostgresDatabase) -> None:
    pids = _pooled_backends(database, 1)
    _terminate(pids)
    with pytest.raises(psycopg.OperationalError):
        database.execute("INSERT INTO notes VALUES (1)")
    # The failure is the caller's to answer; the engine itself is usable again.
    database.execute("INSERT INTO notes VALUES (2)")
    assert [tuple(r) for r in database.execute("SELECT n FROM notes").fetchall()] == [(2,)]


@needs_postgresql
def test_while_the_server_cannot_be_reached_statements_fail_at_once_until_it_answers() -> None:
    """The network to the server cut (tests/tcp_cut.py), then back: the first statement waits
    for a connection and fails; the engine is then known unreachable, and the next ones fail
    without waiting (on the event loop, admission must not stand still through an outage),
    until its own tries find the server again."""
    relay = CuttableRelay(("127.0.0.1", 5432))
    target = fresh_postgres()
    db = PostgresDatabase(PostgresTarget(relay.url_through(target.url)))
    try:
        assert db.reachable and db.execute("SELECT 1").fetchone()[0] == 1
        relay.cut()
        with pytest.raises(psycopg.OperationalError) as first:
            db.execute("SELECT 1")
        assert "could not be reached a moment ago" not in str(first.value)  # it waited
        assert not db.reachable
        fast = "could not be reached a moment ago"
        for _ in range(3):
            with pytest.raises(psycopg.OperationalError, match=fast):
                db.execute("SELECT 1")
            with pytest.raises(psycopg.OperationalError, match=fast), db.transaction():
                pass
        relay.restore()
        wait_until(lambda: db.reachable, "the engine finding the server again")
        assert db.execute("SELECT 41 + 1").fetchone()[0] == 42
    finally:
        db.close()
        relay.close()


@needs_postgresql
def test_a_server_slow_to_answer_the_first_connection_is_waited_for() -> None:
    # The pool asks the server why it has no connection after half a second (a mistyped
    # address is told at once). With both cores busy a first connection took longer, and
    # psycopg_pool's own wait, used for that first look, closed the pool when its time was up:
    # the collector (or a dashboard page, a CLI command) failed with "pool initialization
    # incomplete after 0.5 sec" against a server that was only slow.
    target = fresh_postgres()
    relay = CuttableRelay(("127.0.0.1", urlsplit(target.url).port or 5432))
    relay.hold_first()
    opened: list[PostgresDatabase] = []
    failed: list[BaseException] = []

    def open_it() -> None:
        try:
            opened.append(PostgresDatabase(PostgresTarget(relay.url_through(target.url))))
        except BaseException as exc:
            failed.append(exc)

    opener = threading.Thread(target=open_it)
    opener.start()
    try:
        # A second connection: the first look has found none and asks the server why.
        wait_until(lambda: relay.accepted >= 2 or not opener.is_alive(), "the first look")
        relay.release()
        opener.join(60)
        assert not failed, failed
        (database,) = opened
        try:
            assert database.execute("SELECT 1").fetchone()[0] == 1
        finally:
            database.close()
    finally:
        relay.release()
        opener.join(60)
        relay.close()
