"""What every table module of the store shares: the connection, write transactions and times.

The store is split by concern (reports and verdicts in `store`, device identity in
`identity_store`, administration in `admin`), each a mixin over this base, so one module does
not have to know every table.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


def to_us(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def from_us(micros: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC)


def maybe_from_us(micros: int | None) -> dt.datetime | None:
    return None if micros is None else from_us(micros)


class Records:
    """One SQLite connection and the one way to write through it."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction that takes the write lock up front (no lost-update races)."""
        cursor = self._db.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
