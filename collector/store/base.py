"""What every part of the store shares: its database, the one way to write, and times.

The store is composed of parts (reports, identity, admin, waivers, fleet, evidence), each an
object over the same database; none knows another's tables except through the evidence chain,
which every writer appends to inside its own transaction.

Work done once under a lease (store/coordination.py) writes behind a fence (`fenced`): while
a thread works under one, each of its write transactions on that database checks first, in the
transaction, that the lease is still its own, whichever part writes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from devposture.collector.store.disk_space import StorageFull, is_full
from devposture.collector.store.engine import AnyDatabase, Cursor, Dialect


def to_us(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(micros: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC)


def maybe_from_us(micros: int | None) -> dt.datetime | None:
    return None if micros is None else from_us(micros)


def text(value: str) -> str:
    """A string as both engines store it: PostgreSQL's text cannot hold NUL (SQLite's can), so
    a NUL an agent or a caller sent becomes U+FFFD on either engine, before anything (the
    evidence chain included) is derived from it. A report's body keeps its bytes as sent."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


# What each thread's write transactions check first, per database (id -> check): `fenced`.
_fences = threading.local()


@contextmanager
def fenced(database: AnyDatabase, check: Callable[[Cursor], None]) -> Iterator[None]:
    """Inside, every write transaction this thread begins on `database` through a part runs
    `check` first, holding the write lock: a check that raises leaves the transaction undone.
    Per thread, so that the same database's other threads (ingest's) write as before."""
    fences: dict[int, Callable[[Cursor], None]] | None = getattr(_fences, "by_database", None)
    if fences is None:
        fences = _fences.by_database = {}
    if id(database) in fences:
        raise RuntimeError("this thread already writes behind a fence on this database")
    fences[id(database)] = check
    try:
        yield
    finally:
        del fences[id(database)]


def _fence(database: AnyDatabase) -> Callable[[Cursor], None] | None:
    fences: dict[int, Callable[[Cursor], None]] = getattr(_fences, "by_database", {})
    return fences.get(id(database))


class Part:
    """One part of the store, over the store's database."""

    def __init__(self, database: AnyDatabase) -> None:
        self._db = database

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        """A write transaction that takes the write lock up front (no lost-update races).

        All or nothing, and the connection stays usable: when a statement or the COMMIT
        itself fails (a full disk fails either), the transaction is rolled back and the next
        write starts clean. A full disk raises StorageFull, so callers can tell "try again
        once there is space" from a bug. Behind a fence (`fenced`), its check runs first."""
        try:
            with self._db.transaction() as cursor:
                check = _fence(self._db)
                if check is not None:
                    check(cursor)
                yield cursor
        except BaseException as exc:
            if is_full(exc) and not isinstance(exc, StorageFull):
                raise StorageFull(self._db.folder()) from exc
            raise
