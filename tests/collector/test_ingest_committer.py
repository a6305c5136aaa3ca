"""The group committer (collector/ingest.py) and a caller whose call ends while it waits."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pytest

from devposture.collector.ingest import LINGER_SECONDS, Committed, GroupCommitter
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


def test_under_load_the_next_group_lingers_for_more_and_a_lone_report_never_waits() -> None:
    """After a group of several callers, the committer pauses (LINGER_SECONDS) so that the
    callers arriving meanwhile share the next commit; after a group of one it commits what
    comes next at once. The pause is the test's: callers arrive while it lasts."""

    async def scenario() -> tuple[list[list[str]], list[float]]:
        store = _Store()
        paused: list[float] = []
        gate = asyncio.Event()
        arrivals: list[asyncio.Task[Committed]] = []

        async def run_in_db(work: Callable[[], T]) -> T:
            await gate.wait()
            return work()

        async def pause(seconds: float) -> None:
            paused.append(seconds)
            if len(paused) > 1:
                return
            # Three callers come while the committer lingers: one group, not three.
            arrivals.extend(asyncio.create_task(committer.store([_item(f"late{i}")]))
                            for i in range(3))  # fmt: skip
            for _ in range(3):
                await asyncio.sleep(0)

        committer = GroupCommitter(cast(Store, store), cast(Any, run_in_db), pause=pause)
        alone = asyncio.create_task(committer.store([_item("alone")]))
        gate.set()
        await alone  # a group of one: no pause after it
        gate.clear()
        pair = [asyncio.create_task(committer.store([_item(n)])) for n in ("a", "b")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*pair)
        while len(store.reports.groups) < 3:
            await asyncio.sleep(0)
        await asyncio.gather(*arrivals)
        await committer.close()
        return store.reports.groups, paused

    groups, paused = asyncio.run(scenario())
    assert groups == [["alone"], ["a", "b"], ["late0", "late1", "late2"]]
    # After the pair and after the late three: several callers each time.
    assert paused == [LINGER_SECONDS, LINGER_SECONDS]


def test_the_linger_ends_once_as_many_wait_as_the_last_group_held() -> None:
    """Under load the pause after a group ends as soon as as many reports wait as that group
    held, not when its time is out: the test's pause never ends by itself, so only the
    callers arriving can end it. Fewer than that leave it pausing."""

    async def scenario() -> tuple[list[list[str]], int]:
        store = _Store()
        gate = asyncio.Event()
        never = asyncio.Event()
        pauses = 0

        async def run_in_db(work: Callable[[], T]) -> T:
            await gate.wait()
            return work()

        async def pause(seconds: float) -> None:
            nonlocal pauses
            pauses += 1
            await never.wait()

        committer = GroupCommitter(cast(Store, store), cast(Any, run_in_db), pause=pause)
        trio = [asyncio.create_task(committer.store([_item(n)])) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*trio)
        while pauses == 0:  # lingering after a group of three
            await asyncio.sleep(0)
        late = [asyncio.create_task(committer.store([_item("d")])),
                asyncio.create_task(committer.store([_item("e")]))]  # fmt: skip
        for _ in range(5):
            await asyncio.sleep(0)
        still = len(store.reports.groups)  # two waiting of three: still lingering
        late.append(asyncio.create_task(committer.store([_item("f")])))
        for _ in range(100):  # loop turns, not time: the pause itself never ends
            if len(store.reports.groups) == 2:
                break
            await asyncio.sleep(0)
        groups = list(store.reports.groups)
        never.set()
        await asyncio.gather(*late)
        await committer.close()
        return groups, still

    groups, still = asyncio.run(scenario())
    assert still == 1
    assert groups == [["a", "b", "c"], ["d", "e", "f"]]
