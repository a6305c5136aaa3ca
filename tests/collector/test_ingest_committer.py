"""The group committer (collector/ingest.py) and a caller whose call ends while it waits."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pytest

from devposture.collector.ingest import GroupCommitter
from devposture.collector.store import CheckResult, ReportRecord, Store, StoreOutcome

T = TypeVar("T")
NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)


def _item(report_id: str) -> tuple[ReportRecord, list[CheckResult]]:
    record = ReportRecord(report_id, "d1", NOW, NOW, "1", b"body", "h", "linux", "Debian", "12")
    return record, []


class _Reports:
    """Stands in for Store.reports: notes each group it is asked to store."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []

    def store_reports(
        self, group: list[tuple[ReportRecord, list[CheckResult]]],
        held: dict[str, dict[str, int]] | None = None,
    ) -> list[StoreOutcome]:  # fmt: skip
        self.groups.append([record.report_id for record, _ in group])
        return [StoreOutcome.STORED] * len(group)


class _Store:
    def __init__(self) -> None:
        self.reports = _Reports()


def test_a_caller_whose_call_ended_while_queued_is_not_stored() -> None:
    """Its agent heard nothing and keeps its reports: storing them would only make its next
    attempt a duplicate. The callers around it are stored and answered as usual."""

    async def scenario() -> list[list[str]]:
        store = _Store()
        gate = asyncio.Event()

        async def run_in_db(work: Callable[[], T]) -> T:
            await gate.wait()  # the first group's commit takes a while
            return work()

        committer = GroupCommitter(cast(Store, store), cast(Any, run_in_db))
        first = asyncio.create_task(committer.store([_item("first")]))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        gone = asyncio.create_task(committer.store([_item("gone")]))
        kept = asyncio.create_task(committer.store([_item("kept")]))
        await asyncio.sleep(0)
        gone.cancel()  # its deadline passed while it waited for the next group
        with pytest.raises(asyncio.CancelledError):
            await gone
        gate.set()
        assert (await first).outcomes == [StoreOutcome.STORED]
        assert (await kept).outcomes == [StoreOutcome.STORED]
        assert committer.waiting == 0
        await committer.close()
        return store.reports.groups

    assert asyncio.run(scenario()) == [["first"], ["kept"]]


def test_the_queue_is_bounded_by_what_the_store_commits_in_max_wait_seconds() -> None:
    """Under a backlog the queue holds what is worth waiting for: the reports the store
    commits in `max_wait` seconds at its recent rate (never fewer than a full group); beyond
    it the service pushes back, and the agents keep their reports."""

    async def scenario() -> list[bool]:
        store = _Store()
        now = [100.0]

        async def run_in_db(work: Callable[[], T]) -> T:
            now[0] += 0.5  # a group of 100 reports commits in half a second: 200 reports/s
            return work()

        committer = GroupCommitter(
            cast(Store, store), cast(Any, run_in_db), max_group=100, max_wait=10.0,
            clock=lambda: now[0],
        )  # fmt: skip
        seen = [committer.overloaded()]
        await committer.store([_item(f"r{i}") for i in range(100)])
        assert committer.commit_rate == pytest.approx(200.0)
        committer._waiting = 1999  # queued, as callers would have left them
        seen.append(committer.overloaded())
        committer._waiting = 2000  # 10 s at 200 reports/s
        seen.append(committer.overloaded())
        committer._waiting = 0
        await committer.close()
        return seen

    assert asyncio.run(scenario()) == [False, False, True]
