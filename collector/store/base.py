"""What every part of the store shares: its database, the one way to write, and times.

The store is composed of parts (reports, identity, admin, waivers, fleet, evidence), each an
object over the same database; none knows another's tables except through the evidence chain,
which every writer appends to inside its own transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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
        once there is space" from a bug."""
        try:
            with self._db.transaction() as cursor:
                yield cursor
        except BaseException as exc:
            if is_full(exc) and not isinstance(exc, StorageFull):
                raise StorageFull(self._db.folder()) from exc
            raise
