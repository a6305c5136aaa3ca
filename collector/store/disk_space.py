"""A full disk under the data folder: how it is recognised, and what people are told.

SQLite answers SQLITE_FULL ("database or disk is full") when a write cannot grow the database
or its write-ahead log; PostgreSQL answers disk_full (SQLSTATE 53100). The store then rolls the
whole transaction back (`Part._write`), so
nothing half-written stays, and raises `StorageFull`: the same write succeeds once space is
freed, without a restart. Agents are pushed back with a retry hint and keep their reports;
people running a command are told the disk is full, not that they lack permissions.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from devposture.policy.cli_messages import Said, said

# SQLite's primary result code for "database or disk is full" (sqlite3.h).
SQLITE_FULL = 13
# PostgreSQL's SQLSTATE for "could not extend file ... No space left on device".
POSTGRES_DISK_FULL = "53100"
# Below this much free space a failed database call is put down to the full disk: SQLite
# needs room for a few pages of write-ahead log (and 32 KB of shared memory index) to write.
LOW_SPACE_BYTES = 1024 * 1024


def full_disk_said(folder: Path | None) -> Said:
    """What a person is told: which disk, and what to do, worded in their language."""
    return said("the disk holding {where} is full: free space, then try again",
                where=folder if folder is not None else said("the collector's data folder"))


def full_disk_message(folder: Path | None) -> str:
    """`full_disk_said`'s English (logs, an older command line)."""
    return str(full_disk_said(folder))


class StorageFull(Exception):
    """A write failed because the disk holding the database is full; it was rolled back
    whole. The store's callers treat it as a failing database (the group commit does).

    Its text names no path (a call that does not map it would show it to the caller, an
    agent perhaps); `advice` names the folder, for administrators."""

    def __init__(self, folder: Path | None) -> None:
        super().__init__(full_disk_message(None))
        self.folder = folder

    @property
    def advice(self) -> str:
        return full_disk_message(self.folder)

    @property
    def worded_advice(self) -> Said:
        return full_disk_said(self.folder)


def is_full(exc: BaseException) -> bool:
    """Whether `exc` is a write refused for lack of space (SQLite's or the OS's)."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF == SQLITE_FULL
    if getattr(exc, "sqlstate", None) == POSTGRES_DISK_FULL:  # psycopg's errors carry it
        return True
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def no_space_left(path: Path) -> bool:
    """Whether the file system holding `path` has (almost) no room left for this process:
    to explain a failure whose own error does not say (SQLite answers "disk I/O error" when
    it cannot even make its shared memory index)."""
    try:
        figures = os.statvfs(path)
    except OSError:
        return False
    # root may use the blocks a file system reserves for it; anyone else may not.
    blocks = figures.f_bfree if os.geteuid() == 0 else figures.f_bavail
    return blocks * figures.f_frsize < LOW_SPACE_BYTES
