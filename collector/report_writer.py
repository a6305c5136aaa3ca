"""Report groups written by a process of their own, beside the one serving gRPC.

Why: in one process the store's thread and the event loop share one GIL. Measured under load
(`bench/ingest_vs_echo.py`, unary Report, 64 calls in flight): a group of 22 reports took
24 ms to commit, of which the store thread's CPU was 7 ms; the rest it waited to take the GIL
back from the event loop after each SQLite step (sqlite3 lets the GIL go for every step and
every row). The committer was busy all the time, and every acknowledgement waited for it.
Written by another process, a group costs its CPU and its sync; the event loop only sends the
reports (pickled, about 10 us a report) and receives the outcomes.

The writer is a child process with its own connection to the same database (`Store.open`),
used only for `Reports.store_reports`: everything else the service writes (enrollment,
first use, admission) stays on the store thread. It answers one group at a time, in order,
from the store thread's executor (one caller at a time, as the committer calls it).
Its outcomes, `held` and errors are those of `store_reports` in this process: a full disk
comes back as StorageFull, a failing database as WriterFailed naming the error's class (its
text may hold a path or data, and stays in the child). Should the child die (killed, out of
memory), the group in flight fails (nothing of it is acknowledged: the agents keep those
reports) and the next group starts a new child. The child ignores SIGINT and SIGTERM, which
a terminal or a service manager sends to the whole process group: it writes the groups the
collector drains at shutdown, and ends when the collector closes it or dies (end of file).

`serve` uses it unless collector.toml says `[ingest] writer = "thread"`; the in-process
servers of the tests use the thread (their faults are injected into that connection).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from devposture.collector.store import CheckResult, ReportRecord, Store, StoreOutcome
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.store.target import DatabaseTarget

log = logging.getLogger(__name__)

Item = tuple[ReportRecord, list[CheckResult]]
Outcomes = list[StoreOutcome | Exception]

# What the child answers: ("stored", outcomes, held), ("full", folder), ("failed", class name).
_STORED, _FULL, _FAILED = "stored", "full", "failed"


class WriterFailed(RuntimeError):
    """The writing process could not store a group (its transaction failed, or the process
    ended): nothing of the group is stored, nothing may be acknowledged."""


def _portable(outcome: StoreOutcome | Exception) -> StoreOutcome | Exception:
    """An outcome that crosses the pipe: a report's own failure as WriterFailed naming its
    class (the engine's exception may not pickle, and its text stays in the child)."""
    if isinstance(outcome, StoreOutcome):
        return outcome
    return WriterFailed(f"the report could not be stored ({type(outcome).__name__})")


def _answer(store: Store, items: list[Item]) -> tuple[Any, ...]:
    held: dict[str, dict[str, int]] = {}
    try:
        outcomes = store.reports.store_reports(items, held)
    except StorageFull as full:
        return (_FULL, full.folder)
    except Exception as exc:  # told to the collector, which logs it
        return (_FAILED, type(exc).__name__)
    return (_STORED, [_portable(o) for o in outcomes], held)


def write_groups(connection: Connection, target: DatabaseTarget) -> None:
    """The child's whole life: open the store, then answer each group until told to stop
    (None) or until the collector is gone (end of file)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store = Store.open(target)
    try:
        while True:
            try:
                items = connection.recv()
            except (EOFError, OSError):
                return
            if items is None:
                return
            answer = _answer(store, items)
            try:
                connection.send(answer)
            except OSError:  # the collector died meanwhile: nothing of it was acknowledged
                return
    finally:
        store.close()


class ReportWriter:
    """`store_reports` of a child process's store (see the module's docstring)."""

    def __init__(self, target: DatabaseTarget) -> None:
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self.starts = 0

    @classmethod
    def started(cls, target: DatabaseTarget) -> ReportWriter:
        """A writer whose child is starting (it opens the store while the collector goes on
        starting)."""
        writer = cls(target)
        writer.start()
        return writer

    def start(self) -> None:
        """Start the child (it opens the store while the collector goes on starting)."""
        if self._process is not None and self._process.is_alive():
            return
        self._drop()
        mine, its = self._context.Pipe()
        process = self._context.Process(
            target=write_groups, args=(its, self._target), name="devposture-writer", daemon=True
        )
        process.start()
        its.close()
        self._process, self._connection = process, mine
        self.starts += 1

    def store_reports(self, items: list[Item], held: dict[str, dict[str, int]]) -> Outcomes:
        """As `Reports.store_reports`: committed on return, or raises with nothing stored."""
        if self._connection is None:
            self.start()
        connection = self._connection
        assert connection is not None
        try:
            connection.send(items)
            answer = connection.recv()
        except (EOFError, OSError) as exc:
            code = self._process.exitcode if self._process is not None else None
            self._drop()
            log.error("the report writer ended (exit code %s); starting another", code)
            raise WriterFailed("the report writer ended") from exc
        kind = answer[0]
        if kind == _FULL:
            raise StorageFull(answer[1])
        if kind == _FAILED:
            raise WriterFailed(f"the group could not be stored ({answer[1]})")
        outcomes: Outcomes = answer[1]
        held.update(answer[2])
        return outcomes

    def close(self, timeout: float = 10.0) -> None:
        """Tell the child to stop once it has answered, and wait for it."""
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.send(None)
        if self._process is not None:
            self._process.join(timeout)
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process = self._connection = None
