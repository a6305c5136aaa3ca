"""The service loop: when it collects (start-up, interval, events, a new policy) and how it
retries sending (backoff, the collector's hints), and that it stops promptly. The first tests
drive the loop with a scripted Work; the last ones run it against a real collector."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devposture.agent.backoff import Backoff
from devposture.agent.deliver import AgentWork
from devposture.agent.probes import ProbeConfig
from devposture.agent.service import (
    INTERVAL,
    NETWORK_CHANGE,
    NEW_BACKUP,
    POLICY_CHANGE,
    START_UP,
    Loop,
    Trigger,
)
from devposture.agent.state import StateError
from devposture.agent.transport import DrainResult, forget_unary_collectors
from devposture.collector import server as collector_server
from devposture.collector.config import CollectorConfig
from devposture.collector.store import Store
from devposture.v1 import devposture_pb2 as pb
from tests.agent.replay import ReplayHost
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, running_collector

FAILED = DrainResult(stopped_by="UNAVAILABLE: the collector is down")


class ScriptedWork:
    """Records collections; answers sends from a script (then success)."""

    def __init__(
        self, interval: float = 3600.0, sends: list[DrainResult] | None = None,
        collect_seconds: float = 0.0,
    ) -> None:  # fmt: skip
        self.collected: list[tuple[float, Trigger]] = []
        self.sent_at: list[float] = []
        self.script = deque(sends or [])
        self.intervals: Callable[[], float] = lambda: interval
        self.collect_seconds = collect_seconds
        self.fail_collect = False

    def collect(self, trigger: Trigger) -> None:
        self.collected.append((time.monotonic(), trigger))
        if self.collect_seconds:
            time.sleep(self.collect_seconds)
        if self.fail_collect:
            raise OSError("disk full")

    def send(self, should_stop: Callable[[], bool]) -> DrainResult:
        self.sent_at.append(time.monotonic())
        return self.script.popleft() if self.script else DrainResult()

    def interval(self) -> float:
        return self.intervals()

    @property
    def triggers(self) -> list[Trigger]:
        return [t for _, t in self.collected]


@contextlib.contextmanager
def serving(work: ScriptedWork | AgentWork, backoff: Backoff | None = None) -> Iterator[Loop]:
    stop = threading.Event()
    loop = Loop(work, stop, backoff)
    thread = threading.Thread(target=loop.serve, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        stopped = time.monotonic()
        stop.set()
        thread.join(5)
        assert not thread.is_alive(), "the loop did not stop"
        assert time.monotonic() - stopped < 1.5


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def quick_backoff(first: float = 0.1) -> Backoff:
    return Backoff(first=first, longest=first * 4, random=lambda: 0.999999)


def test_collects_at_start_up_then_on_every_interval() -> None:
    work = ScriptedWork(interval=0.25)
    with serving(work):
        wait_for(lambda: len(work.collected) >= 4)
    assert work.triggers[0] == START_UP
    assert set(work.triggers[1:]) == {INTERVAL}
    gaps = [b - a for (a, _), (b, _) in zip(work.collected, work.collected[1:], strict=False)]
    assert all(0.2 <= gap < 0.6 for gap in gaps), gaps
    assert len(work.sent_at) >= len(work.collected) - 1


def test_the_interval_is_read_again_after_each_acknowledgement() -> None:
    work = ScriptedWork()
    intervals = iter([3600.0])  # before the first acknowledgement; then the policy's 0.2 s
    work.intervals = lambda: next(intervals, 0.2)
    with serving(work):
        wait_for(lambda: len(work.collected) >= 3, 5)
    assert work.triggers[:3] == [START_UP, INTERVAL, INTERVAL]


def test_a_burst_of_events_is_one_collection() -> None:
    work = ScriptedWork(collect_seconds=0.3)
    with serving(work) as loop:
        wait_for(lambda: len(work.collected) == 1)
        for trigger in (NEW_BACKUP, NETWORK_CHANGE, NEW_BACKUP, NETWORK_CHANGE):
            loop.notify(trigger)
        wait_for(lambda: len(work.collected) == 2)
        time.sleep(0.5)
    # Network change outranks a new backup in the report's trigger.
    assert work.triggers == [START_UP, NETWORK_CHANGE]


def test_a_new_configuration_collects_once_more_but_not_in_a_loop() -> None:
    # Even a collector that (wrongly) hands the same configuration out every time.
    config = pb.AgentConfig(version=7)
    work = ScriptedWork(sends=[DrainResult(config=config) for _ in range(10)])
    with serving(work):
        wait_for(lambda: len(work.sent_at) >= 2)
        time.sleep(0.4)
    assert work.triggers == [START_UP, POLICY_CHANGE]
    # A later, different version: one more round.
    newer = pb.AgentConfig(version=8)
    work = ScriptedWork(sends=[DrainResult(config=config)])
    with serving(work) as loop:
        wait_for(lambda: len(work.sent_at) == 2)
        work.script.append(DrainResult(config=newer))
        loop.notify(NETWORK_CHANGE)
        wait_for(lambda: len(work.sent_at) >= 4)
        time.sleep(0.3)
    assert work.triggers == [START_UP, POLICY_CHANGE, NETWORK_CHANGE, POLICY_CHANGE]


def test_a_failed_delivery_is_retried_on_the_backoff_without_collecting_again() -> None:
    work = ScriptedWork(sends=[FAILED, FAILED, FAILED, DrainResult()])
    with serving(work, quick_backoff(0.1)) as loop:
        wait_for(lambda: len(work.sent_at) == 4)
        time.sleep(0.5)
        assert loop.backoff.failures == 0  # reset by the success
    assert work.triggers == [START_UP]
    assert len(work.sent_at) == 4
    gaps = [b - a for a, b in zip(work.sent_at, work.sent_at[1:], strict=False)]
    assert 0.09 <= gaps[0] < 0.3 and 0.19 <= gaps[1] < 0.45 and 0.39 <= gaps[2] < 0.7, gaps


def test_an_exception_while_sending_is_a_failed_delivery_too() -> None:
    work = ScriptedWork()
    calls = []

    def boom(should_stop: Callable[[], bool]) -> DrainResult:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("state folder unreadable")
        return DrainResult()

    work.send = boom  # type: ignore[method-assign]
    with serving(work, quick_backoff(0.1)):
        wait_for(lambda: len(calls) == 2)


def test_a_retry_hint_is_obeyed_even_for_a_fresh_report() -> None:
    pushed_back = DrainResult(stopped_by="RESOURCE_EXHAUSTED: too often", retry_after=0.8)
    work = ScriptedWork(sends=[pushed_back])
    with serving(work, quick_backoff(0.05)) as loop:
        wait_for(lambda: len(work.sent_at) == 1)
        time.sleep(0.1)
        loop.notify(NEW_BACKUP)  # collected now, but not sent before the hint has passed
        wait_for(lambda: len(work.collected) == 2)
        time.sleep(0.2)
        assert len(work.sent_at) == 1
        wait_for(lambda: len(work.sent_at) == 2, 3)
    assert work.sent_at[1] - work.sent_at[0] >= 0.79
    assert work.triggers == [START_UP, NEW_BACKUP]


def test_a_failed_collection_does_not_stop_the_service() -> None:
    work = ScriptedWork(interval=0.2)
    work.fail_collect = True
    with serving(work):
        wait_for(lambda: len(work.collected) >= 3)
    assert len(work.sent_at) >= 2  # the backlog is still sent


def test_a_collection_that_says_what_is_wrong_is_logged_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A full state disk, worded with the folder and the fix (agent.deliver.state_unwritable),
    # was logged as a traceback, the words buried under it.
    work = ScriptedWork(interval=0.2)
    full = StateError("the disk holding the state folder {path} is full", path="/var/lib/x")

    def collect(trigger: Trigger) -> None:
        work.collected.append((time.monotonic(), trigger))
        raise full

    work.collect = collect  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="devposture.agent.service"), serving(work):
        wait_for(lambda: len(work.collected) >= 2)
    lines = [r for r in caplog.records if r.name == "devposture.agent.service"]
    assert lines and all(r.exc_info is None for r in lines)
    assert (lines[0].getMessage() ==
            "collection (start_up) failed: the disk holding the state folder /var/lib/x is full")


@pytest.mark.parametrize("while_", ["waiting", "backing off"])
def test_stop_is_prompt(while_: str) -> None:
    sends = [FAILED] * 5 if while_ == "backing off" else []
    work = ScriptedWork(sends=sends)
    # serving() asserts the loop ended within 1.5 s of stop.
    with serving(work, Backoff(first=60.0, random=lambda: 0.999999)) as loop:
        wait_for(lambda: len(work.sent_at) == 1)
        time.sleep(0.2)
        assert (loop.backoff.failures == 1) == (while_ == "backing off")


class SlowCollection(ScriptedWork):
    """A collection that lasts until the test lets it end (a probe at its deadline, a
    loaded machine): it writes its report only then."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()
        self.written = False

    def collect(self, trigger: Trigger) -> None:
        super().collect(trigger)
        self.started.set()
        self.release.wait(30)
        self.written = True


def test_stop_is_prompt_while_collecting_and_the_unfinished_report_is_not_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    work = SlowCollection()
    try:
        # serving() asserts the loop ended within 1.5 s of stop, the collection under way.
        with caplog.at_level("INFO"), serving(work):
            assert work.started.wait(10)
        assert not work.written and work.sent_at == []
        assert "the collection under way (start_up) is left unfinished" in caplog.text
    finally:
        work.release.set()


# -- against a real collector -------------------------------------------------------------


class NowHost(ReplayHost):
    """A replayed Linux computer (no OS access) whose clock is the real one."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _reports(config: CollectorConfig) -> list[pb.PostureReport]:
    store = Store.open_reader(config.database)
    try:
        bodies = [store.reports.report_body(i) for i in store.reports.report_ids()]
    finally:
        store.close()
    return [pb.PostureReport.FromString(b) for b in bodies if b is not None]


def _work(agent: EnrolledAgent) -> AgentWork:
    return AgentWork(agent.state, agent.enrollment, NowHost(), ProbeConfig)


def test_a_fresh_agent_reports_at_start_up_and_again_under_the_policy_it_was_handed(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    forget_unary_collectors()
    assert agent.state.config_version() == 0
    with serving(_work(agent)) as loop:
        wait_for(lambda: len(_reports(live_collector.config)) >= 2)
        time.sleep(0.5)  # and no third
        assert loop.rounds == [START_UP, POLICY_CHANGE]
    reports = sorted(_reports(live_collector.config), key=lambda r: r.collected_at.ToNanoseconds())
    assert [r.trigger for r in reports] == [START_UP, POLICY_CHANGE]
    assert agent.state.config_version() > 0
    # Each report says what the outbox held when it was collected.
    assert all(r.delivery.max_bytes > 0 for r in reports)
    assert list(agent.state.outbox_dir.glob("*.report")) == []
    assert agent.state.load_verdicts() is not None


@contextlib.contextmanager
def collector_on(config: CollectorConfig, report_port: int) -> Iterator[None]:
    """The same collector (data folder) started again, on a given report port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(
        collector_server.start(config, 0, report_port, "127.0.0.1"), loop
    ).result(30)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0.5, drain=0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_reports_collected_while_the_collector_is_down_are_sent_once_it_is_up(
    tmp_path: Path,
) -> None:
    with running_collector(tmp_path / "collector") as collector:
        agent = enroll_agent(collector, tmp_path / "agent")
        config, port = collector.config, collector.report_port
    # The collector is down when the agent starts.
    work = _work(agent)
    with serving(work, quick_backoff(0.2)) as loop:
        # A send is counted when it begins, its failure when it ends: wait for both.
        wait_for(lambda: loop.sends >= 2 and loop.backoff.failures >= 2)
        assert loop.rounds == [START_UP]
        assert len(list(agent.state.outbox_dir.glob("*.report"))) == 1
        with collector_on(config, port):
            wait_for(lambda: len(_reports(config)) >= 1)
            wait_for(lambda: loop.backoff.failures == 0)
            wait_for(lambda: len(_reports(config)) >= 2)  # then the policy's round
            assert loop.rounds == [START_UP, POLICY_CHANGE]
    triggers = sorted((r.collected_at.ToNanoseconds(), r.trigger) for r in _reports(config))
    assert [t for _, t in triggers] == [START_UP, POLICY_CHANGE]
    (start_up,) = [r for r in _reports(config) if r.trigger == START_UP]
    assert start_up.delivery.pending_reports == 0
    assert list(agent.state.outbox_dir.glob("*.report")) == []
