"""Group commit: reports arriving together are stored in one transaction and one disk sync.

An acknowledgement promises the report is durable (DESIGN principle 5), so every report waits
for a committed transaction with `synchronous=FULL`. One sync per report would cap ingest at
the disk's sync rate; instead, while one group is being committed, the reports that arrive
queue up and become the next group. A lone report is committed at once (no added latency);
under load each sync carries hundreds of reports. Each caller gets its own outcome, and only
after the group's COMMIT has returned.

The committer also says when it is too far behind (`overloaded`): the service then answers
UNAVAILABLE with a retry hint instead of queueing without end, and the agents come back later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from collector.store import CheckResult, ReportRecord, Store, StoreOutcome

log = logging.getLogger(__name__)
T = TypeVar("T")

# Most reports in one transaction: large enough that a sync is shared widely, small enough
# that one transaction holds SQLite's write lock only briefly.
MAX_GROUP = 512
# Reports waiting beyond this make the service push back (UNAVAILABLE with a retry hint).
MAX_WAITING = 20_000

Item = tuple[ReportRecord, list[CheckResult]]
RunInDb = Callable[[Callable[[], T]], Awaitable[T]]


class IngestClosed(RuntimeError):
    """The collector is shutting down and takes no more reports."""


@dataclass
class _Waiting:
    item: Item
    done: asyncio.Future[StoreOutcome]


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


class GroupCommitter:
    """Queue reports for storage and commit them in groups on the store's thread."""

    def __init__(
        self,
        store: Store,
        run_in_db: RunInDb[list[StoreOutcome | Exception]],
        *,
        max_group: int = MAX_GROUP,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._store = store
        self._run_in_db = run_in_db
        self._max_group = max_group
        self.max_waiting = max_waiting
        self._queue: asyncio.Queue[_Waiting | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.figures = CommitFigures()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def overloaded(self) -> bool:
        return self._queue.qsize() >= self.max_waiting

    async def store(self, items: list[Item]) -> list[StoreOutcome]:
        """Store `items`; each outcome is known only once its group is committed.

        Raises IngestClosed during shutdown, and the store's exception when the group's
        transaction failed (nothing of that group is stored, so nothing may be acknowledged).
        """
        if self._closed:
            raise IngestClosed("the collector is shutting down")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(item, loop.create_future()) for item in items]
        for entry in waiting:
            self._queue.put_nowait(entry)
        return [await entry.done for entry in waiting]

    async def close(self) -> None:
        """Commit everything already queued, then take no more."""
        self._closed = True
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._max_group and not self._queue.empty():
                entry = self._queue.get_nowait()
                if entry is None:
                    stop = True
                    break
                group.append(entry)
            await self._commit(group)
            if stop:
                return

    async def _commit(self, group: list[_Waiting]) -> None:
        items = [entry.item for entry in group]
        try:
            outcomes = await self._run_in_db(lambda: self._store.store_reports(items))
        except Exception as exc:  # the transaction failed: no report in it may be acknowledged
            self.figures.failures += 1
            log.error("could not commit %d report(s): %s", len(group), exc)
            for entry in group:
                if not entry.done.done():
                    entry.done.set_exception(exc)
            return
        figures = self.figures
        figures.commits += 1
        figures.reports += len(group)
        figures.largest_group = max(figures.largest_group, len(group))
        for entry, outcome in zip(group, outcomes, strict=True):
            if entry.done.done():  # the caller went away (its call was cancelled)
                continue
            if isinstance(outcome, Exception):
                entry.done.set_exception(outcome)
            else:
                entry.done.set_result(outcome)
