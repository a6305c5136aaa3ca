"""What every table module of the store shares: the connection, write transactions and times.

The store is split by concern (reports and verdicts in `store`, device identity in
`identity_store`, administration in `admin`), each a mixin over this base, so one module does
not have to know every table.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from devposture.collector.disk_space import StorageFull, is_full


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
        """A write transaction that takes the write lock up front (no lost-update races).

        All or nothing, and the connection stays usable: when a statement or the COMMIT
        itself fails (a full disk fails either), the transaction is rolled back, unless
        SQLite already did, and the next write starts clean. A full disk raises
        StorageFull, so callers can tell "try again once there is space" from a bug."""
        cursor = self._db.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                self._roll_back()
                raise
        except BaseException as exc:
            if is_full(exc) and not isinstance(exc, StorageFull):
                raise StorageFull(self._folder()) from exc
            raise

    def _roll_back(self) -> None:
        """End a failed transaction. After SQLITE_FULL or an I/O error SQLite may have
        rolled it back already (a ROLLBACK would then fail, hiding the real error)."""
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _folder(self) -> Path | None:
        """The folder of the database file (for "the disk holding ... is full")."""
        try:
            row = self._db.execute("PRAGMA database_list").fetchone()
        except sqlite3.Error:
            return None
        return Path(row[2]).parent if row is not None and row[2] else None
