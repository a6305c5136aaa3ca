"""Report groups written by a process of their own, beside the one serving gRPC.

Why: in one process the store's thread and the event loop share one GIL. Measured under load
(`bench/ingest_vs_echo.py`, unary Report, 64 calls in flight): a group of 22 reports took
24 ms to commit, of which the store thread's CPU was 7 ms; the rest it waited to take the GIL
back from the event loop after each SQLite step (sqlite3 lets the GIL go for every step and
every row). The committer was busy all the time, and every acknowledgement waited for it.
Written by another process, a group costs its CPU and its sync; the event loop itself sends
the reports (pickled, about 10 us a report) and reads the outcomes as they arrive, so no
thread of this process waits for the GIL on the group's way (a first version that sent and
received from the store's thread still took 11 ms for a group of 12: each time that thread
woke it waited for the loop to let the GIL go).

The writer is a child process with its own connection to the same database
(`Store.open_for_reports`), used only for `Reports.store_reports`: everything else the
service writes (enrollment, first use, admission) stays on the store thread. It answers one
group at a time, in order (the committer has one group in flight). Each message on the
socket pair is a pickle behind its length (8 bytes, big-endian); both ends are this module's.
Its outcomes, `held` and errors are those of `store_reports` in this process: a full disk
comes back as StorageFull, a failing database as WriterFailed naming the error's class (its
text may hold a path or data, and stays in the child). Should the child die (killed, out of
memory), the group in flight fails (nothing of it is acknowledged: the agents keep those
reports) and the next group starts a new child. The child ignores SIGINT and SIGTERM, which
a terminal or a service manager sends to the whole process group: it writes the groups the
collector drains at shutdown, and ends when the collector closes it (end of file). A collector
that dies (SIGKILL, out of memory) takes its writer with it (Linux's parent-death signal): a
group being written is rolled back, never committed after the collector is gone.

`serve` uses it unless collector.toml says `[server] report_writer = "thread"`; the in-process
servers of the tests use the thread (their faults are injected into that connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import socket
import struct
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from devposture.collector import log_format
from devposture.collector.child_start import ending as ended
from devposture.collector.child_start import (
    ignore_interrupts,
    logging_now,
    received,
    socket_of,
    start_child,
)
from devposture.collector.gc_settle import settled
from devposture.collector.parent_death import die_with_parent
from devposture.collector.store import CheckResult, ReportRecord, Store, StoreOutcome, load_parts
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.store.target import DatabaseTarget

log = logging.getLogger(__name__)

Item = tuple[ReportRecord, list[CheckResult]]
Outcomes = list[StoreOutcome | Exception]

# What the child answers: ("stored", outcomes, held), ("full", folder), ("failed", class name).
_STORED, _FULL, _FAILED = "stored", "full", "failed"
_LENGTH = struct.Struct("!Q")


class WriterFailed(RuntimeError):
    """The writing process could not store a group (its transaction failed, or the process
    ended): nothing of the group is stored, nothing may be acknowledged. `sqlstate`: the
    engine's code for the failure, where it gave one (PostgreSQL's 25006, a read-only
    database), so that the collector's line can say what it is and what to do."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


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
        sqlstate = getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)
        return (_FAILED, type(exc).__name__, sqlstate if isinstance(sqlstate, str) else None)
    return (_STORED, [_portable(o) for o in outcomes], held)


def _framed(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


def write_groups(
    connection: Connection,
    target: DatabaseTarget,
    logging_as: tuple[str, int] = ("text", logging.INFO),
) -> None:
    """The child's whole life: open the store, then answer each group until the collector
    closes its end (end of file) or dies (the kernel kills the child with it)."""
    log_format.configure(logging_as[0], level=logging_as[1])
    parent = multiprocessing.parent_process()
    die_with_parent(None if parent is None else parent.pid, "report writer")
    ignore_interrupts()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket_of(connection)
    connection.close()
    store = Store.open_for_reports(target)
    load_parts()
    settled()  # what the writer keeps for its life, out of the collector's walks
    try:
        while True:
            header = received(sock, _LENGTH.size)
            payload = None if header is None else received(sock, _LENGTH.unpack(header)[0])
            if payload is None:
                return
            answer = _answer(store, pickle.loads(payload))  # noqa: S301 - from its collector
            try:
                sock.sendall(_framed(answer))
            except OSError:  # the collector died meanwhile: nothing of it was acknowledged
                return
    finally:
        store.close()
        sock.close()


class ReportWriter:
    """`store_reports` of a child process's store (see the module's docstring), awaited on
    the event loop."""

    def __init__(self, target: DatabaseTarget) -> None:
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._socket: socket.socket | None = None
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.starts = 0

    @classmethod
    def started(cls, target: DatabaseTarget) -> ReportWriter:
        """A writer whose child is starting (it opens the store while the collector goes on
        starting)."""
        writer = cls(target)
        writer.start()
        return writer

    def start(self) -> None:
        """Start the child (after one that ended, another)."""
        self._drop()
        mine, its = self._context.Pipe()
        process = self._context.Process(
            target=write_groups,
            args=(its, self._target, logging_now()),
            name="devposture-writer",
            daemon=True,
        )
        # Known before it starts: a Ctrl-C held during the start raises once it is started.
        self._process = process
        try:
            start_child(process, its)
        finally:
            self._socket = socket_of(mine)
            mine.close()
        self.starts += 1

    async def store_reports(self, items: list[Item], held: dict[str, dict[str, int]]) -> Outcomes:
        """As `Reports.store_reports`: committed on return, or raises with nothing stored.
        One call at a time."""
        if self._socket is None:
            self.start()
        try:
            if self._streams is None:
                assert self._socket is not None
                self._streams = await asyncio.open_connection(sock=self._socket)
            reader, writer = self._streams
            writer.write(_framed(items))
            await writer.drain()
            header = await reader.readexactly(_LENGTH.size)
            payload = await reader.readexactly(_LENGTH.unpack(header)[0])
        except (OSError, asyncio.IncompleteReadError) as exc:
            process = self._process
            if process is not None:  # its socket closed as it died: reaped, it tells how
                await asyncio.to_thread(process.join, REAP_SECONDS)
            ending = ended(process)
            self._drop()
            log.error("the report writer ended (%s); starting another", ending)
            raise WriterFailed("the report writer ended") from exc
        except BaseException:  # cancelled mid-message: the stream cannot be trusted after
            self._drop()
            raise
        answer = pickle.loads(payload)  # noqa: S301 - from the child this process started
        kind = answer[0]
        if kind == _FULL:
            raise StorageFull(answer[1])
        if kind == _FAILED:
            raise WriterFailed(f"the group could not be stored ({answer[1]})", answer[2])
        outcomes: Outcomes = answer[1]
        held.update(answer[2])
        return outcomes

    def close(self, timeout: float = 10.0) -> None:
        """End the child: it reads end of file once it has answered, and exits."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        if self._process is not None:
            self._process.join(timeout)
        self._drop()

    def _drop(self) -> None:
        """Forget the child and its socket (killing a child still alive: its stream is
        mid-message or it is stuck)."""
        if self._streams is not None:
            with contextlib.suppress(Exception):  # its event loop may be closed already
                self._streams[1].close()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
            self._socket.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process, self._socket, self._streams = None, None, None


# How long a writer whose socket closed is waited for, to be reaped and tell how it ended.
REAP_SECONDS = 2.0
