"""Group commit: reports arriving together are stored in one transaction and one disk sync.

An acknowledgement promises the report is durable (DESIGN principle 5), so every report waits
for a committed transaction with `synchronous=FULL`. One sync per report would cap ingest at
the disk's sync rate; instead, while one group is being committed, the reports that arrive
queue up and become the next group. A lone report is committed at once (no added latency);
under load each sync carries hundreds of reports. Each caller gets its own outcome, and only
after the group's COMMIT has returned.

The committer also says when it is too far behind (`overloaded`: more reports waiting than it
commits in MAX_WAIT_SECONDS at its recent rate, or than MAX_WAITING): the service then answers
UNAVAILABLE with a retry hint instead of queueing reports past their callers' deadlines, and
the agents come back later. A caller whose call ended while it waited is left out of its
group: its agent keeps the reports and sends them again.

A full disk fails a group's transaction (StorageFull): it is rolled back whole, its callers are
pushed back the same way (nothing of it is acknowledged, so the agents keep those reports), and
the next group is tried as usual, so storing resumes by itself once space is freed. The log
says so once when the disk fills and once when it has room again, not once per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from devposture.collector.log_every import LogEvery
from devposture.collector.store import CheckResult, ReportRecord, Store, StoreOutcome
from devposture.collector.store.disk_space import StorageFull

log = logging.getLogger(__name__)
T = TypeVar("T")

# Most reports in one transaction: large enough that a sync is shared widely, small enough
# that one transaction holds SQLite's write lock only briefly.
MAX_GROUP = 512
# Reports waiting beyond this make the service push back (UNAVAILABLE with a retry hint).
MAX_WAITING = 20_000
# And beyond what the store commits in this long (never fewer than a full group): agents give
# a call 30 s (Report) or 60 s (ReportBatch), and a report queued longer than that would be
# committed after its caller gave up, then sent again as a duplicate. Under an overload (a
# fleet's backlog after an outage) the queue stays within what is worth waiting for, and the
# rest are told to come back after the hint, keeping their reports.
MAX_WAIT_SECONDS = 10.0
# Under load (the group just committed held more than one caller's report and fewer than
# LINGER_BELOW are waiting), the next group waits this long for more before it commits: with
# a writer process answering in a few milliseconds, groups under unary load fell to 4-5
# reports, and each group's own statements and sync then cost more than its reports
# (bench/ingest_vs_echo.py: 37 -> 42-45 % of the echo with 1 ms). 5 ms: groups of about 10
# became about 25 and the writer's CPU per report fell by a fifth (170-182 -> 129-156 us; the
# ratio 43.7 -> 47 %, three rounds each); an acknowledgement waits 5 ms more, which an agent
# reporting hourly never notices. A lone report, or the first after a quiet spell, is
# committed at once. The linger ends early once as many reports wait as the group just
# committed held (at most LINGER_BELOW): waiting out the whole 5 ms left the writer idle
# while the next group was already as large as the last (py-spy: the writer idle 54 % of
# the time under unary load, and the event loop 35 %, each waiting for the other in turn).
# Measured side by side (bench/ingest_ab.py --batch 0, 6 rounds): 3,084 -> 3,188 calls a
# second, median; small, but the pause no longer outlasts its purpose.
LINGER_SECONDS = 0.005
LINGER_BELOW = 32

Item = tuple[ReportRecord, list[CheckResult]]
RunInDb = Callable[[Callable[[], T]], Awaitable[T]]
WriteGroup = Callable[
    [list[Item], dict[str, dict[str, int]]], Awaitable[list[StoreOutcome | Exception]]
]


class IngestClosed(RuntimeError):
    """The collector is shutting down and takes no more reports."""


@dataclass(frozen=True)
class Committed:
    """What a caller's reports came to once their group committed: one outcome per report,
    and for the stored ones that were their device's newest, since when each check's state
    holds (report id -> check -> since_us; `Reports.store_reports`' `held`, shared by the
    group): when a failure began, without reading the history back."""

    outcomes: list[StoreOutcome]
    held: dict[str, dict[str, int]]


@dataclass
class _Waiting:
    """One caller's reports, stored in one group, and its outcomes once that is committed."""

    items: list[Item]
    done: asyncio.Future[Committed]


@dataclass
class CommitFigures:
    """Counters for benchmarks, metrics and the log: how well syncs are being shared."""

    commits: int = 0
    reports: int = 0
    largest_group: int = 0
    failures: int = 0

    def since(self, earlier: CommitFigures) -> str | None:
        """One log line on what was committed since `earlier`, or None when nothing was."""
        commits, reports = self.commits - earlier.commits, self.reports - earlier.reports
        failures = self.failures - earlier.failures
        if not (commits or failures):
            return None
        line = f"{reports} report(s) committed in {commits} transaction(s)"
        if failures:
            line += f"; {failures} transaction(s) FAILED (their reports were not acknowledged)"
        return line


# What a pushed-back agent is told while the disk is full (the retry hint follows it).
FULL_DISK_REASON = "the collector cannot store reports now (its disk is full)"


class FullDiskAlarm:
    """One log line when the disk fills and one when storing works again: while a disk is
    full every call of every agent fails, and a line per call would bury everything else
    (and fill the disk holding the log)."""

    def __init__(self) -> None:
        self.full = False
        # Writes refused since the disk filled (groups and admissions), for the recovery line.
        self.refused = 0

    def failed(self, full: StorageFull | None = None) -> None:
        """A write refused for a full disk. The line names which disk: this machine's (the
        data folder, SQLite's file) or, on PostgreSQL (`full.folder` is None), the database
        server's, which IT frees elsewhere."""
        self.refused += 1
        if self.full:
            return
        self.full = True
        server = full is not None and full.folder is None
        log.error(
            "%s is full: reports are not stored, agents are told to retry later and keep them;"
            " free space on that disk and storing resumes by itself (no restart)",
            "the PostgreSQL server's disk" if server else "the disk holding the data folder",
        )

    def succeeded(self) -> None:
        if not self.full:
            return
        log.info(
            "the disk has room again: reports are stored again (%d write(s) were refused while"
            " it was full; their agents send them again)",
            self.refused,
        )
        self.full, self.refused = False, 0


class GroupCommitter:
    """Queue reports for storage and commit them in groups on the store's thread."""

    def __init__(
        self,
        store: Store,
        run_in_db: RunInDb[list[StoreOutcome | Exception]],
        *,
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
        max_wait: float = MAX_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        write: WriteGroup | None = None,
        linger: float = LINGER_SECONDS,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        # What stores a group: a writer process (collector/report_writer.py), or when None
        # the store's own store_reports on its thread.
        self._write = write
        self._linger = linger
        self._pause = pause
        self._run_in_db = run_in_db
        self._max_group = max_group
        self.max_waiting = max_waiting
        self._max_wait = max_wait
        self._clock = clock
        # Reports committed per second while committing, smoothed over the last groups (None
        # before the first): how fast the queue drains under load.
        self.commit_rate: float | None = None
        # Callers in arrival order, and how many reports they hold; the runner sleeps on
        # `_wakeup` while there are none (cheaper than an asyncio.Queue of single reports).
        self._queue: deque[_Waiting] = deque()
        self._waiting = 0
        self._wakeup: asyncio.Future[None] | None = None
        # While the committer lingers: what ends the linger early, and at how many waiting.
        self._filled: asyncio.Future[None] | None = None
        self._fill_to = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.figures = CommitFigures()
        self.full_disk = FullDiskAlarm()
        self._failing = LogEvery()

    @property
    def waiting(self) -> int:
        """Reports queued for a group that has not begun committing."""
        return self._waiting

    def overloaded(self) -> bool:
        """Whether more reports than are worth queueing are waiting: `max_waiting`, or what
        the store commits in `max_wait` seconds at its recent rate (at least a full group)."""
        limit = self.max_waiting
        if self.commit_rate is not None:
            limit = min(limit, max(self._max_group, int(self.commit_rate * self._max_wait)))
        return self._waiting >= limit

    def disk_full(self, full: StorageFull | None = None) -> str:
        """Note a write refused for a full disk outside a group (an admission), logged once
        with the groups' failures; what the pushed-back agent is told."""
        self.full_disk.failed(full)
        return FULL_DISK_REASON

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def store(self, items: list[Item]) -> Committed:
        """Store `items`; each outcome is known only once its group is committed.

        Raises IngestClosed during shutdown, and the store's exception when the group's
        transaction failed (nothing of that group is stored, so nothing may be acknowledged).
        """
        if self._closed:
            raise IngestClosed("the collector is shutting down")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._run(), name="group-commit")
        # One future per caller, not per report: a batch is woken once, with all its outcomes.
        entry = _Waiting(items, loop.create_future())
        self._queue.append(entry)
        self._waiting += len(items)
        self._wake()
        filled = self._filled
        if filled is not None and self._waiting >= self._fill_to and not filled.done():
            filled.set_result(None)
        return await entry.done

    async def close(self) -> None:
        """Commit everything already queued, then take no more."""
        self._closed = True
        if self._task is None:
            return
        self._wake()
        await self._task

    async def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closed:
                    return
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
                self._wakeup = None
                continue
            # Whole callers, up to max_group reports (a caller with more goes alone): a batch
            # is never split over two transactions. A caller whose call already ended (its
            # deadline passed while it waited: the agent was told nothing and keeps its
            # reports) is left out: storing its reports now would only make its next attempt a
            # duplicate, and a backlog under load would store much of itself twice over.
            group: list[_Waiting] = []
            size = 0
            while queue and (not group or size + len(queue[0].items) <= self._max_group):
                entry = queue.popleft()
                self._waiting -= len(entry.items)
                if entry.done.done():
                    continue
                group.append(entry)
                size += len(entry.items)
            if group:
                await self._commit(group, size)
                if self._linger and len(group) > 1 and self._waiting < LINGER_BELOW:
                    await self._linger_for(min(size, LINGER_BELOW))  # let the next group fill

    async def _linger_for(self, enough: int) -> None:
        """Pause `self._linger` seconds, or less: until `enough` reports are waiting."""
        if self._waiting >= enough:
            return
        self._filled, self._fill_to = asyncio.get_running_loop().create_future(), enough
        pause = asyncio.ensure_future(self._pause(self._linger))
        try:
            await asyncio.wait((pause, self._filled), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._filled = None
            pause.cancel()

    async def _commit(self, group: list[_Waiting], size: int) -> None:
        items = [item for entry in group for item in entry.items]
        began = self._clock()
        held: dict[str, dict[str, int]] = {}
        try:
            if self._write is not None:
                outcomes = await self._write(items, held)
            else:
                outcomes = await self._run_in_db(
                    lambda: self._store.reports.store_reports(items, held)
                )
        except Exception as exc:  # the transaction failed: no report in it may be acknowledged
            self.figures.failures += 1
            if isinstance(exc, StorageFull):  # rolled back whole; the next group tries again
                self.full_disk.failed(exc)
            else:
                since = self._failing.due()  # one line every few seconds through an outage
                if since is not None:
                    log.error("could not commit %d report(s): %s%s", size, exc, since)
            for entry in group:
                if not entry.done.done():
                    entry.done.set_exception(exc)
            return
        self.full_disk.succeeded()
        took = self._clock() - began
        if took > 0:
            rate = size / took
            self.commit_rate = rate if self.commit_rate is None else (
                0.8 * self.commit_rate + 0.2 * rate
            )  # fmt: skip
        figures = self.figures
        figures.commits += 1
        figures.reports += size
        figures.largest_group = max(figures.largest_group, size)
        start = 0
        for entry in group:
            mine = outcomes[start : start + len(entry.items)]
            start += len(entry.items)
            if entry.done.done():  # the caller went away (its call was cancelled)
                continue
            # A report that failed inside its savepoint fails its caller's call (the others
            # of the group are committed, and a retried one is acknowledged as a duplicate).
            failed = next((o for o in mine if isinstance(o, Exception)), None)
            if failed is not None:
                entry.done.set_exception(failed)
            else:
                entry.done.set_result(
                    Committed([o for o in mine if not isinstance(o, Exception)], held)
                )
        assert start == len(outcomes), "the store returns one outcome per report"
