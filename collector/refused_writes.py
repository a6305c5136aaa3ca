"""A background task of `serve` whose writes the database refuses, said once in the operator's
words, and once more when it writes again.

Why: on a full disk (SQLite's file, or the PostgreSQL server's) or a database that takes no
writes (a PostgreSQL standby after a failover, `default_transaction_read_only` for the
collector's role), every task that writes on a timer failed at each of its rounds, and each
logged the store's error at each round: the presence every 30 s, the fleet's day every hour,
alerts every 30 s, sealing every few seconds. The log filled (on the disk that was full) with
lines that neither said what waits nor that it comes back by itself. Now each task says which
work waits, the problem and the fix in one warning; again only when the problem changes or
after SAY_AGAIN_SECONDS (with the count since); and one line when its writes go through
again. Nothing owed is lost: each task keeps its work owed and tries again (ingest's own line,
collector/ingest.py, speaks for the reports).

The lines name no path (the database's folder, a server's address): they go to logs that
are collected elsewhere. Any other failure is left to the task's own handling. The alert
task also tells IT, on its channels, without a record (collector/alerts/unrecorded.py): a
log on the disk that is full is not where IT looks first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from devposture.collector.log_every import LogEvery
from devposture.collector.store.disk_space import POSTGRES_DISK_FULL, StorageFull, is_full
from devposture.policy.cli_messages import told

log = logging.getLogger(__name__)

# PostgreSQL's SQLSTATE for a write in a read-only transaction: a hot standby (a failover
# that left the collectors on the old primary, now a replica) or default_transaction_read_only.
POSTGRES_READ_ONLY = "25006"
# A problem still going on is said again this often, with the count of refusals since.
SAY_AGAIN_SECONDS = 3600.0


@dataclass(frozen=True)
class Refusal:
    """Why the database refused a write, and what the operator does about it. `code` names it
    for programs (the urgent alert's webhook document); `problem` and `fix` are `told`: the
    English that logs keep, worded in Chinese for the urgent alert
    (collector/alerts/urgent.py)."""

    code: str
    problem: str
    fix: str


DISK_FULL = Refusal(
    "disk_full", told("the disk holding the collector's SQLite database is full"),
    told("free space on that disk"),
)  # fmt: skip
# A file of the data folder's own (a copy of the policy in force) refused: on PostgreSQL too.
FOLDER_FULL = Refusal(
    "folder_full", told("the disk holding the collector's data folder is full"),
    told("free space on that disk"),
)  # fmt: skip
SERVER_DISK_FULL = Refusal(
    "server_disk_full", told("the PostgreSQL server's disk is full"),
    told("free space on the database server's disk"),
)  # fmt: skip
READ_ONLY = Refusal(
    "read_only",
    told("the database refuses writes (a read-only transaction: a standby server, or"
         " default_transaction_read_only for the collector's role or database)"),
    told("point [database] url at the primary server, or make the database writable"),
)  # fmt: skip


def refusal_of(exc: BaseException) -> Refusal | None:
    """Why `exc` is a write the database refused, or None: another failure."""
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)
    if sqlstate == POSTGRES_READ_ONLY:
        return READ_ONLY
    if not is_full(exc):
        return None
    if isinstance(exc, OSError):
        return FOLDER_FULL
    # StorageFull names no folder on PostgreSQL (the server's disk, not this machine's).
    server = sqlstate == POSTGRES_DISK_FULL or (isinstance(exc, StorageFull) and exc.folder is None)
    return SERVER_DISK_FULL if server else DISK_FULL


class RefusedWrites:
    """One task's refused writes: `failed` says whether a failure was one (and says it when
    due), `wrote` says the task writes again. `work` names what waits, as the operator knows
    it ("recording the fleet's day for the trend"). `again_after` and `clock` are read at
    each refusal (a test gives time as data)."""

    def __init__(
        self, work: str, *, again_after: Callable[[], float] = lambda: SAY_AGAIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.work = work
        self._again_after, self._clock = again_after, clock
        self._every = LogEvery(again_after, clock)
        self.said: Refusal | None = None  # the refusal said last, while it lasts
        self.refused = 0  # refusals since the task last wrote

    def failed(self, exc: BaseException) -> bool:
        """Whether `exc` is a refused write. If so it is counted, and said when it is the
        first, another problem than the one said, or SAY_AGAIN_SECONDS after the last line."""
        why = refusal_of(exc)
        if why is None:
            return False
        self.refused += 1
        if why != self.said:  # a new problem is said at once
            self._every = LogEvery(self._again_after, self._clock)
        since = self._every.due()
        if since is not None:
            log.warning(
                "%s waits: %s; %s, and it resumes by itself (no restart)%s",
                self.work, why.problem, why.fix, since,
            )  # fmt: skip
        self.said = why
        return True

    def wrote(self) -> None:
        """The task's writes went through: said once if a refusal had been said."""
        if self.said is None:
            return
        log.info(
            "%s resumed: the database takes writes again (%d attempt(s) were refused)",
            self.work, self.refused,
        )  # fmt: skip
        self.said, self.refused = None, 0
        self._every = LogEvery(self._again_after, self._clock)
