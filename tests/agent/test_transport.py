"""Draining the outbox against a real collector (in-process, real mutual TLS): batches, the
fallback to one report per call for an older collector, and obeying the collector's pushback."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devposture.agent.deliver import deliver
from devposture.agent.outbox import Outbox, Pending
from devposture.agent.transport import (
    CHANNEL_OPTIONS,
    DRAIN_CHUNK,
    MAX_BATCH_REPORTS,
    STOPPING,
    DrainResult,
    batches,
    drain,
    forget_unary_collectors,
)
from devposture.collector.server import KEEPALIVE_MIN_PING_MS
from devposture.collector.service import CollectorService
from devposture.policy.cli_messages import said
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import (
    EnrolledAgent,
    LiveCollector,
    enroll_agent,
    make_report,
    running_collector,
)


@pytest.fixture(autouse=True)
def _fresh_fallbacks() -> Iterator[None]:
    forget_unary_collectors()
    yield
    forget_unary_collectors()


def _queue(agent: EnrolledAgent, count: int, padding: int = 0) -> list[pb.PostureReport]:
    """`count` valid reports in the outbox, oldest first, each about `padding` bytes larger."""
    outbox = Outbox(agent.state.outbox_dir)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=count)
    reports = []
    for n in range(count):
        report = make_report(agent.enrollment.device_id, start + dt.timedelta(minutes=n))
        for _ in range(padding // 1000):
            report.firewall.profiles.add(name="p" * 1000, enabled=True)
        outbox.put(report)
        reports.append(report)
    return reports


def _stored(collector: LiveCollector) -> list[str]:
    store = collector.store()
    try:
        return list(store.reports.report_ids())
    finally:
        store.close()


def test_batches_respect_count_and_size() -> None:
    small = [Pending(Path(f"{n}"), make_report("d")) for n in range(150)]
    assert [len(b) for b in batches(small)] == [64, 64, 22]
    big = make_report("d")
    big.host.hostname = "x" * 400_000
    mixed = [Pending(Path("a"), big), Pending(Path("b"), big), Pending(Path("c"), big)]
    assert [len(b) for b in batches(mixed)] == [2, 1]
    huge = make_report("d")
    huge.host.hostname = "x" * 2_000_000
    assert [len(b) for b in batches([Pending(Path("h"), huge), *small[:3]])] == [1, 3]


def test_verdicts_that_stand_are_kept_dated_by_the_newest_report(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # The agent says which verdicts it holds; the collector answers that they stand instead of
    # sending them again, and `status` still has them, judged with the newest report.
    outbox = Outbox(agent.state.outbox_dir)
    device = agent.enrollment.device_id
    now = dt.datetime.now(dt.UTC)
    first = [make_report(device, now - dt.timedelta(minutes=m)) for m in (50, 40)]
    for report in first:
        outbox.put(report)
    deliver(agent.state, agent.enrollment, outbox)
    kept = agent.state.load_verdicts()
    assert kept is not None and kept.report_id == first[-1].report_id
    assert kept.verdicts and kept.verdicts_digest
    later = [make_report(device, now - dt.timedelta(minutes=m)) for m in (20, 10)]
    for report in later:
        outbox.put(report)
    result = deliver(agent.state, agent.enrollment, outbox)
    assert result.last_ack is not None and result.last_ack.verdicts_unchanged
    assert not result.last_ack.verdicts
    again = agent.state.load_verdicts()
    assert again is not None and again.report_id == later[-1].report_id
    assert list(again.verdicts) == list(kept.verdicts)
    assert again.verdicts_digest == kept.verdicts_digest
    assert again.stored_at.ToDatetime() >= kept.stored_at.ToDatetime()


def test_a_backlog_drains_in_batches_each_report_stored_once(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    reports = _queue(agent, 150)
    outbox = Outbox(agent.state.outbox_dir)
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.stopped_by is None and result.batched
    assert result.calls == 3  # 64 + 64 + 22
    assert result.acknowledged == [r.report_id for r in reports]  # oldest first
    assert outbox.pending() == []
    stored = _stored(live_collector)
    assert sorted(stored) == sorted(r.report_id for r in reports)
    assert len(stored) == len(set(stored)) == 150
    # Only the newest report's acknowledgement in a batch carries verdicts, and after the
    # first batch only when they changed: these reports change nothing, so the last batch's
    # says they stand. Those of the first are kept, dated by the newest report.
    assert result.last_ack is not None and result.last_ack.report_id == reports[-1].report_id
    assert result.last_ack.verdicts_unchanged and not result.last_ack.verdicts
    assert result.verdicts is not None and result.verdicts.report_id == reports[-1].report_id
    assert result.verdicts.verdicts and result.verdicts.verdicts_digest
    assert result.verdicts.verdicts_digest == result.last_ack.verdicts_digest
    assert result.newest_delivered is not None
    assert result.newest_delivered.report_id == reports[-1].report_id
    # A fresh agent had no configuration: the batch brought one, and it was saved.
    assert result.config is not None and agent.state.config_version() == result.config.version


def test_a_resent_batch_is_acknowledged_as_duplicates_and_stored_once(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    reports = _queue(agent, 5)
    first = drain(agent.state, agent.enrollment, Outbox(agent.state.outbox_dir))
    assert len(first.acknowledged) == 5
    # As if the acknowledgement had been lost: the same reports are queued again.
    outbox = Outbox(agent.state.outbox_dir)
    for report in reports:
        outbox.put(report)
    again = drain(agent.state, agent.enrollment, outbox)
    assert again.duplicates == [r.report_id for r in reports] and again.acknowledged == []
    assert outbox.pending() == []
    assert sorted(_stored(live_collector)) == sorted(r.report_id for r in reports)


def test_rejected_reports_are_set_aside_and_the_rest_delivered(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    reports = _queue(agent, 3)
    outbox = Outbox(agent.state.outbox_dir)
    invalid = make_report(agent.enrollment.device_id)
    invalid.report_id = "not-a-uuid"
    outbox.put(invalid)
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.set_aside == ["not-a-uuid"]
    assert result.acknowledged == [r.report_id for r in reports]
    assert result.stopped_by is None
    assert outbox.pending() == [] and outbox.rejected_count() == 1


def test_batches_too_large_for_the_collector_are_split(tmp_path: Path) -> None:
    """A collector with a smaller message limit than the agent assumes: RESOURCE_EXHAUSTED
    without a hint makes the batches smaller; nothing is lost or set aside."""
    with running_collector(tmp_path / "collector", max_report_bytes=64 * 1024) as collector:
        agent = enroll_agent(collector, tmp_path / "agent")
        reports = _queue(agent, 100, padding=3000)  # a batch of 64 is ~200 KB
        outbox_dir = agent.state.outbox_dir
        result = drain(agent.state, agent.enrollment, Outbox(outbox_dir))
        assert result.stopped_by is None and result.set_aside == []
        assert result.acknowledged == [r.report_id for r in reports]
        assert result.calls > 3
        assert sorted(_stored(collector)) == sorted(r.report_id for r in reports)


async def _unimplemented(
    self: CollectorService,
    request: pb.ReportBatchRequest,
    context: grpc.aio.ServicerContext[object, object],
) -> pb.ReportBatchResponse:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
    raise AssertionError("unreachable")


def test_an_older_collector_without_report_batch_gets_one_report_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A collector from before ReportBatch: the call is answered UNIMPLEMENTED.
    monkeypatch.setattr(CollectorService, "ReportBatch", _unimplemented)
    with running_collector(tmp_path / "collector") as collector:
        agent = enroll_agent(collector, tmp_path / "agent")
        reports = _queue(agent, 5)
        outbox = Outbox(agent.state.outbox_dir)
        result = drain(agent.state, agent.enrollment, outbox)
        assert result.stopped_by is None and not result.batched
        assert result.calls == 1 + 5  # the refused batch, then one Report each
        assert result.acknowledged == [r.report_id for r in reports]
        assert outbox.pending() == []
        assert sorted(_stored(collector)) == sorted(r.report_id for r in reports)
        # Remembered: the next drain does not try ReportBatch again.
        more = _queue(agent, 2)
        again = drain(agent.state, agent.enrollment, outbox)
        assert not again.batched and again.calls == 2
        assert again.acknowledged == [r.report_id for r in more]


def test_rate_limit_pushback_keeps_the_reports_and_hands_back_the_wait(tmp_path: Path) -> None:
    """One call a minute after a burst of two: two batches go, the third is refused with
    RESOURCE_EXHAUSTED and retry-after-ms; its reports stay, nothing is set aside."""
    with running_collector(
        tmp_path / "collector", device_calls_per_minute=1, device_call_burst=2
    ) as collector:
        agent = enroll_agent(collector, tmp_path / "agent")
        reports = _queue(agent, 150)
        outbox = Outbox(agent.state.outbox_dir)
        result = drain(agent.state, agent.enrollment, outbox)
        sent = 2 * MAX_BATCH_REPORTS
        assert result.acknowledged == [r.report_id for r in reports[:sent]]
        assert result.stopped_by is not None
        assert result.stopped_by.startswith("RESOURCE_EXHAUSTED")
        assert result.retry_after is not None and 55.0 <= result.retry_after <= 60.0
        assert result.set_aside == [] and outbox.rejected_count() == 0
        left = [p.report.report_id for p in outbox.pending()]
        assert left == [r.report_id for r in reports[sent:]]
        assert sorted(_stored(collector)) == sorted(r.report_id for r in reports[:sent])


def test_unavailable_pushback_keeps_the_reports_and_hands_back_the_wait(
    live_collector: LiveCollector, agent: EnrolledAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector is restarting (or too far behind): UNAVAILABLE with retry-after-ms."""
    reports = _queue(agent, 3)
    outbox = Outbox(agent.state.outbox_dir)
    monkeypatch.setattr(CollectorService, "_accepting", lambda self: "the collector is restarting")
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.stopped_by is not None and result.stopped_by.startswith("UNAVAILABLE")
    assert result.retry_after is not None and result.retry_after > 0
    assert result.acknowledged == [] and result.set_aside == []
    assert [p.report.report_id for p in outbox.pending()] == [r.report_id for r in reports]
    monkeypatch.undo()
    done = drain(agent.state, agent.enrollment, outbox)
    assert done.acknowledged == [r.report_id for r in reports] and done.retry_after is None


def test_an_unreachable_collector_leaves_everything_queued_without_a_hint(
    agent: EnrolledAgent,
) -> None:
    reports = _queue(agent, 2)
    closed = dataclasses.replace(agent.enrollment, report_port=1)
    result: DrainResult = drain(agent.state, closed, Outbox(agent.state.outbox_dir))
    assert result.stopped_by is not None and result.stopped_by.startswith("UNAVAILABLE")
    assert result.retry_after is None
    pending = Outbox(agent.state.outbox_dir).pending()
    assert [p.report.report_id for p in pending] == [r.report_id for r in reports]


def test_draining_stops_between_batches_when_asked(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    _queue(agent, 130)
    calls = []

    def stop_after_first() -> bool:
        calls.append(1)
        return len(calls) > 1

    outbox = Outbox(agent.state.outbox_dir)
    result = drain(agent.state, agent.enrollment, outbox, should_stop=stop_after_first)
    assert len(result.acknowledged) == MAX_BATCH_REPORTS
    assert result.stopped_by == "the agent is stopping"
    assert len(outbox.pending()) == 130 - MAX_BATCH_REPORTS


def test_a_backlog_larger_than_one_chunk_drains_a_chunk_at_a_time(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """The outbox is read DRAIN_CHUNK reports at a time, so a full outbox never sits in memory
    whole; every chunk still goes, oldest first."""
    count = DRAIN_CHUNK + MAX_BATCH_REPORTS + 7
    reports = _queue(agent, count)
    outbox = Outbox(agent.state.outbox_dir)
    assert [p.report.report_id for p in outbox.pending(limit=5)] == [
        r.report_id for r in reports[:5]
    ]
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.stopped_by is None
    assert result.acknowledged == [r.report_id for r in reports]
    assert outbox.pending() == []
    assert len(set(_stored(live_collector))) == count


def test_the_agents_keepalive_is_one_the_collector_accepts() -> None:
    """A ping faster than the collector accepts earns a GOAWAY (too_many_pings); the agent pings
    at most every KEEPALIVE_TIME_MS and only with a call in flight."""
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.keepalive_time_ms"] >= 2 * KEEPALIVE_MIN_PING_MS
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.enable_retries"] == 0


def test_stopping_cancels_a_call_the_collector_does_not_answer(
    live_collector: LiveCollector, agent: EnrolledAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while the collector hangs: the call in flight is cancelled within a fraction of
    a second instead of waiting out its 60 s deadline, and every report stays queued."""
    reports = _queue(agent, 3)

    async def hang(self: CollectorService, context: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(CollectorService, "_admit", hang)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    result = drain(agent.state, agent.enrollment, Outbox(agent.state.outbox_dir),
                   should_stop=stop.is_set)  # fmt: skip
    took = time.monotonic() - started
    assert result.stopped_by == STOPPING
    assert took < 2.0, f"took {took:.1f} s to stop"
    pending = Outbox(agent.state.outbox_dir).pending()
    assert [p.report.report_id for p in pending] == [r.report_id for r in reports]


def test_a_refusal_kept_for_status_is_forgotten_once_a_report_is_acknowledged(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # A device refused once (revoked, then enrolled again by IT with the same state folder
    # restored, say) must not keep telling the employee it is refused.
    revoked = said("device {device} was {status} by IT: it can no longer report. Ask IT; a new"
                   " enrollment needs a new token and a new key (enroll --force)", device="d",
                   status=said("revoked"))  # fmt: skip
    agent.state.save_refusal(revoked, 1_764_900_000_000_000)
    kept = agent.state.load_refusal()
    assert kept is not None and kept[1] == 1_764_900_000_000_000
    assert kept[0].worded("en") == str(revoked) and kept[0].worded("zh").startswith(
        "设备 d 的状态为“已吊销”（由 IT 设置）")
    # As an agent before worded refusals kept it: its text, shown as it is.
    agent.state.refusal_path.write_text('{"reason": "device d was revoked by IT", "at_us": 5}')
    kept = agent.state.load_refusal()
    assert kept is not None and (kept[0].worded("zh"), kept[1]) == ("device d was revoked by IT", 5)
    outbox = Outbox(agent.state.outbox_dir)
    outbox.put(make_report(agent.enrollment.device_id))
    result = deliver(agent.state, agent.enrollment, outbox)
    assert result.acknowledged
    assert agent.state.load_refusal() is None
