"""The store's write lock on PostgreSQL is its schema's (collector/store/engine.py,
`schema_lock`).

Advisory locks belong to a whole database. The write lock was one key for every schema, so two
installations in one database (a staging and a production schema; the test suite's schema per
test) took turns at it, and a collector paused inside a write (a frozen VM, SIGSTOP) held up
the other installation's every write: found when a test that stops its collector hung the
whole PostgreSQL leg. Collectors of one installation still write one after another.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from devposture.collector.store.engine import WRITE_LOCK, PostgresDatabase, schema_lock
from devposture.collector.store.schema import SCHEMA_LOCK
from tests.databases import fresh_postgres, on_postgresql, with_lock_timeout
from tests.waiting import wait_until

needs_postgresql = pytest.mark.skipif(not on_postgresql(), reason="PostgreSQL's advisory locks")


def test_the_usual_schema_keeps_the_key_earlier_collectors_take() -> None:
    # A collector of the previous version on `public` takes WRITE_LOCK itself: both versions
    # must still exclude each other while a site upgrades one collector at a time.
    assert schema_lock(WRITE_LOCK, "public") == WRITE_LOCK
    assert schema_lock(WRITE_LOCK, None) == WRITE_LOCK


def test_each_schema_has_a_key_of_its_own_the_same_in_every_collector() -> None:
    keys = {schema_lock(base, schema) for base in (WRITE_LOCK, SCHEMA_LOCK)
            for schema in ("public", "staging", "production", "t_0123456789abcdef")}  # fmt: skip
    assert len(keys) == 8
    assert schema_lock(WRITE_LOCK, "staging") == schema_lock(WRITE_LOCK, "staging")
    assert all(-(2**63) <= key < 2**63 for key in keys)  # pg_advisory_xact_lock's bigint


@pytest.fixture
def holding() -> Iterator[tuple[PostgresDatabase, int, threading.Event]]:
    """A database whose write transaction is open (its write lock held) until released, and
    the server process holding it."""
    database = PostgresDatabase(fresh_postgres())
    held, release = threading.Event(), threading.Event()
    backend: list[int] = []

    def write() -> None:
        with database.transaction() as cursor:
            backend.append(int(cursor.execute("SELECT pg_backend_pid()").fetchone()[0]))
            held.set()
            release.wait(60)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert held.wait(60)
        yield database, backend[0], release
    finally:
        release.set()
        writer.join(60)
        database.close()


@needs_postgresql
def test_another_schema_writes_while_a_write_of_this_one_is_open(
    holding: tuple[PostgresDatabase, int, threading.Event],
) -> None:
    other = PostgresDatabase(with_lock_timeout(fresh_postgres()))
    try:
        with other.transaction() as cursor:  # not held up: its lock is another
            cursor.execute("CREATE TABLE written (n integer)")
        assert other.execute("SELECT count(*) FROM written").fetchone()[0] == 0
    finally:
        other.close()


@needs_postgresql
def test_two_collectors_of_one_schema_still_write_one_after_another(
    holding: tuple[PostgresDatabase, int, threading.Event],
) -> None:
    first, holder, release = holding
    second = PostgresDatabase(first.target)
    done = threading.Event()

    def write() -> None:
        with second.transaction():
            done.set()

    writer = threading.Thread(target=write)
    try:
        with psycopg.connect(first.target.conninfo(), autocommit=True) as watch:
            writer.start()

            def waiting_on_the_first() -> bool:
                row = watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND %s = ANY(pg_blocking_pids(pid))",
                    (holder,),
                ).fetchone()
                return row is not None and row[0] >= 1

            wait_until(waiting_on_the_first, "the second collector's write waiting")
            assert not done.is_set()
            release.set()
            writer.join(60)
            assert done.is_set()
    finally:
        release.set()
        writer.join(60)
        second.close()
