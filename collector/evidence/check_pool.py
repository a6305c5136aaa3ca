"""Batches of an export held to their rows beside the export, in processes of their own.

Half of a quarter's export was holding each report to its row (reading the rows, putting the
bodies together from their parts, hashing and comparing them) and writing the bodies' lines:
one report at a time in Python, so on one core whatever the machine has. That work needs
nothing of the batches before it (`batch_work`), so a period of many entries hands its
batches to worker processes, one after another, and takes their results back in the same
order, while the export's own pass writes the chain, the index and the report's figures.

Every worker reads the state the export reads: on PostgreSQL it joins the export's snapshot
(`SET TRANSACTION SNAPSHOT`, as pg_dump -j does); SQLite cannot share a read transaction, so a
worker opens its own just after the export's, and what could differ between the two is held
equal. The chain's entries and the rows they are held to never change once written, but a
retention pruning between the two reads empties bodies: the workers must see the export's
newest pruning, or the export stops and says to run it again.

A small period is done in the export's own process (`InProcess`): starting a Python costs
about a third of a second, which only a large period wins back.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import pickle
import socket
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Protocol, cast

from devposture.collector.child_start import (
    cores_usable,
    ending,
    ignore_interrupts,
    logging_now,
    received,
    socket_of,
    start_child,
)
from devposture.collector.evidence import stopping
from devposture.collector.evidence.batch_work import RunDone, Terms, write_run
from devposture.collector.evidence.crosscheck import Tables
from devposture.collector.gc_settle import batch_process
from devposture.collector.store.target import DatabaseTarget
from devposture.policy.cli_messages import Worded, said

log = logging.getLogger(__name__)

# A period of at least this many records (a report group counted as its reports) is checked
# by workers (fewer: in the export).
WORKERS_FROM = 20_000
# Workers at most, one per core. On two cores two beside the export measured best (15.8 s
# against 20.8 s with one and 16.6 s with three, the daily quarter of bench/README.md). Two
# at most on any machine: the export and its workers hold at most 300 MB together (issue 18),
# 233 MB measured with two on SQLite and 265 MB on PostgreSQL (each worker 60-75 MB, the
# multiprocessing's resource tracker 12 MB); and with two, the export's own pass
# (about 7 s of the daily quarter's 22 s of CPU) is about as long as a worker's share.
MOST_WORKERS = 2
# How much lower a worker's scheduling priority is than the export's (os.nice).
NICENESS = 10
# Reports a worker's run holds at most (`batches.BATCH_REPORTS` in the export's own process):
# each worker and the export hold a run's rows, bodies and lines at once, and together they
# must stay within the export's memory bound (300 MB for a quarter, issue 18). 2,500 until
# the daily quarter on PostgreSQL was seen at 300-304 MB: 2,000 took 5 MB off each worker.
RUN_REPORTS = 2000
# Runs handed to each worker ahead of the one the export waits for (each run's result holds
# up to RUN_REPORTS reports' bodies, about 3 MB): enough that none waits for work.
AHEAD = 2


class CheckFailed(Worded, RuntimeError):
    """A worker could not check its batch, or ended: the export stops, written nowhere."""


class Checker(Protocol):
    """Runs of the chain in, what each makes of the bundle out, in the same order."""

    def submit(self, first: int, last: int) -> None: ...
    def ready(self) -> Iterator[RunDone]: ...
    def rest(self) -> Iterator[RunDone]: ...


def workers_for(records: int) -> int:
    """How many workers a period of `records` is checked by (0: in the export's process)."""
    if records < WORKERS_FROM:
        return 0
    cores = cores_usable()
    return 0 if cores < 2 else min(MOST_WORKERS, cores)


class InProcess:
    """Each run made at once, in the export's process."""

    def __init__(self, tables: Tables, terms: Terms) -> None:
        self._tables, self._terms = tables, terms
        self._done: collections.deque[RunDone] = collections.deque()

    def submit(self, first: int, last: int) -> None:
        self._done.append(write_run(self._tables, first, last, self._terms))

    def ready(self) -> Iterator[RunDone]:
        while self._done:
            yield self._done.popleft()

    def rest(self) -> Iterator[RunDone]:
        return self.ready()


_OPEN, _BATCH, _READY, _DONE, _ERROR, _ENDED = "open", "batch", "ready", "done", "error", "ended"


# A run's lines, nearly all of what a worker sends back (1.6 GB for the daily quarter of
# bench/audit_quarter.py), cross as raw bytes behind the run's pickle, which gives their
# lengths: multiprocessing's send and recv copied them into a pickle and out of a buffer on
# each side, in reads of the socket's size (a 800 MB scratch transfer: 2 s of CPU between the
# two processes, against 0.15 s read into place by recv_into). Where the connection is no
# socket (multiprocessing's pipes on Windows) they stay in the pickle, as the export decides
# and tells each worker (`_OPEN`).
def _raw(connection: Connection) -> socket.socket | None:
    """The socket under `connection`, for the lines' raw bytes; None where it is none."""
    try:
        return socket_of(connection)
    except OSError:
        return None


def _send_done(connection: Connection, raw: socket.socket | None, done: RunDone) -> None:
    if raw is None:
        connection.send((_DONE, done))
        return
    lines = (done.chain_lines, done.index_lines, done.report_lines)
    bare = dataclasses.replace(done, chain_lines=b"", index_lines=b"", report_lines=b"")
    connection.send((_DONE, (bare, [len(chunk) for chunk in lines])))
    for chunk in lines:
        raw.sendall(chunk)


def _with_lines(raw: socket.socket, done: RunDone, sizes: list[int]) -> RunDone:
    """`done` with its lines (the chain's, the index's, the reports') read from `raw`."""
    lines: list[bytes] = []
    for size in sizes:
        chunk = received(raw, size)
        if chunk is None:
            raise EOFError("the worker ended in the middle of a run's lines")
        lines.append(chunk)
    chain_lines, index_lines, report_lines = lines
    return dataclasses.replace(
        done, chain_lines=chain_lines, index_lines=index_lines, report_lines=report_lines
    )


class Workers:
    """Batches handed to worker processes in turn, their results taken back in order. Use as
    a context manager: leaving it ends the workers. `stop` (`stopping.Stop`), once set, ends
    them at once: the export waiting for one raises `stopping.Stopped`."""

    def __init__(
        self, target: DatabaseTarget, snapshot: str | None, count: int,
        stop: stopping.Stop | None = None,
    ) -> None:  # fmt: skip
        self._stop = stop
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[BaseProcess, Connection]] = []
        self._raws: list[socket.socket | None] = []  # each worker's socket for its lines
        self._order: collections.deque[int] = collections.deque()
        self._next = 0
        # The pool's warnings as the export's own (a command line keeps them for --verbose:
        # one line says what failed, see cli.py).
        pool = logging.getLogger("psycopg.pool").level
        self._open = (target, snapshot, logging_now(), pool)
        try:
            for number in range(count):
                stopping.check(stop)  # each start costs a third of a second
                self._start(number)
        except BaseException:  # a Ctrl-C between two starts, or held during one: none is left
            self.__exit__()
            raise

    def _start(self, number: int) -> None:
        mine, its = self._context.Pipe()
        process = self._context.Process(
            target=check_batches, args=(its,), name=f"devposture-export-check-{number}",
            daemon=True,
        )  # fmt: skip
        # Known before it starts: a Ctrl-C held during the start raises once it is started.
        self._workers.append((process, mine))
        self._raws.append(_raw(mine))
        start_child(process, its)

    def opened(self, terms: Terms) -> None:
        """Open each worker's store on the export's state; stop unless each sees the
        prunings the export sees (`terms.pruned_before`, `terms.last_pruning`)."""
        for number in range(len(self._workers)):
            raw = self._raws[number] is not None  # the lines sent beside the pickle
            self._send(number, (_OPEN, (*self._open, terms, raw)))
        for number in range(len(self._workers)):
            seen = self._answer(number, _READY)
            if seen != (terms.pruned_before, terms.last_pruning):
                raise CheckFailed(said(
                    "audit export stopped: the retention policy pruned reports while the export"
                    " began (导出已停止：导出开始时保留期清理删除了上报内容). Run the same"
                    " `audit export` again."))  # fmt: skip

    def submit(self, first: int, last: int) -> None:
        """Hand a run of the chain to the next worker, which reads it from its store: a few
        bytes, so that the export never waits to send while a worker waits to answer."""
        number = self._next
        self._next = (self._next + 1) % len(self._workers)
        self._send(number, (_BATCH, (first, last)))
        self._order.append(number)

    def _send(self, number: int, message: tuple[str, object]) -> None:
        try:
            self._workers[number][1].send(message)
        except OSError:  # its end closed: it ended
            raise self._ended(number) from None

    def ready(self) -> Iterator[RunDone]:
        """The results the export takes now: it waits only once every worker has `AHEAD`
        runs besides the one it is on."""
        while len(self._order) > len(self._workers) * AHEAD:
            yield self._done(self._order.popleft())

    def rest(self) -> Iterator[RunDone]:
        while self._order:
            yield self._done(self._order.popleft())

    def _done(self, number: int) -> RunDone:
        answer = self._answer(number, _DONE)
        raw = self._raws[number]
        if raw is None or isinstance(answer, RunDone):  # its lines in the pickle
            return cast("RunDone", answer)
        done, sizes = cast("tuple[RunDone, list[int]]", answer)
        try:
            return _with_lines(raw, done, sizes)
        except (EOFError, OSError):
            raise self._ended(number) from None

    def _answer(self, number: int, kind: str) -> object:
        # Read by the export's own thread (the read lets the GIL go): a thread reading
        # beside the pass took turns with it for the GIL and passed 13 MB/s.
        connection = self._workers[number][1]
        try:
            # Told to stop while it waits: a worker's run takes seconds, a quarter minutes.
            while self._stop is not None and not connection.poll(stopping.LOOK_SECONDS):
                stopping.check(self._stop)
            got, value = connection.recv()
        except (EOFError, OSError):
            got, value = _ENDED, None
        if got == kind:
            return value
        if got == _ERROR and isinstance(value, Exception):
            raise value  # as the export's own process would have raised it
        if got == _ERROR:
            raise CheckFailed(said(
                "audit export stopped: checking the period's rows failed in a process beside the"
                " export (导出已停止：核对本期记录的进程出错): {error}", error=value))  # fmt: skip
        raise self._ended(number)

    def _ended(self, number: int) -> CheckFailed:
        process = self._workers[number][0]
        process.join(5)
        return CheckFailed(said(
            "audit export stopped: a process checking the period's rows beside it ended ({how})"
            " (导出已停止：核对进程意外结束); nothing was written. Run it again; if it ends again,"
            " see the system log (out of memory?)", how=ending(process)))  # fmt: skip

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        # A stopped export's workers are ended at once: nobody waits for what they make, and
        # a run they are on would keep a core busy for seconds more.
        stopped = self._stop is not None and self._stop.is_set()
        for raw in self._raws:
            if raw is not None:
                raw.close()  # a duplicate: the worker reads end of file once both are closed
        for _, connection in self._workers:
            connection.close()  # end of file: each worker returns
        for process, _ in self._workers:
            if process.pid is None:  # its start failed
                continue
            if not stopped:
                process.join(5)
            if process.is_alive():  # still on a batch of a failed or stopped export
                process.kill()
                process.join()


def check_batches(connection: Connection) -> None:
    """A worker's whole life: open the store on the export's state, then check each batch
    it is given until the export closes its end (or dies: the kernel ends the worker)."""
    # Imported here: a worker needs the store, which the module's importers already have.
    from devposture.collector import log_format  # noqa: PLC0415
    from devposture.collector.parent_death import die_with_parent  # noqa: PLC0415
    from devposture.collector.store import Store  # noqa: PLC0415

    parent = multiprocessing.parent_process()
    die_with_parent(None if parent is None else parent.pid, "export's checking process")
    ignore_interrupts()
    batch_process()  # its runs' rows, thousands of tuples at once
    if hasattr(os, "nice"):
        # An export usually runs on the collector's own machine, beside `serve`: its workers
        # take whatever the machine has, but give way to the agents' reports.
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
    try:
        _, (target, snapshot, logging_as, pool, terms, beside) = connection.recv()
    except (EOFError, OSError):
        return
    log_format.configure(logging_as[0], level=logging_as[1])
    logging.getLogger("psycopg.pool").setLevel(pool)
    raw = _raw(connection) if beside else None
    try:
        store = Store.open_reader(target)
        with store.snapshot(joining=snapshot):
            tables = store.crosscheck
            # The first read pins a SQLite read transaction: from here the state is fixed.
            pruned_before = tables.pruned_before()
            # What this reader sees of the prunings: where it differs from the export's
            # `terms`, the export stops (`opened`) before handing over any run.
            connection.send((_READY, (pruned_before, tables.last_pruning())))
            while True:
                try:
                    _, (first, last) = connection.recv()
                except (EOFError, OSError):
                    return
                done = write_run(tables, first, last, terms)
                _send_done(connection, raw, done)
    except Exception as exc:  # told to the export, which stops with it
        log.debug("the export's checking process failed: %s", traceback.format_exc())
        try:
            connection.send((_ERROR, exc))  # raised again by the export, as its own would be
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            with contextlib.suppress(OSError):
                connection.send((_ERROR, f"{type(exc).__name__}: {exc}"))
