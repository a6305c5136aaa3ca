"""Per-device rate limits: the token bucket on a fake clock, then a real collector (mutual
TLS) where one flooding device is told to back off while another device is still served, and
the agent's drain keeping its reports when told to back off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devposture.agent.outbox import Outbox
from devposture.agent.transport import drain, open_channel, send_report
from devposture.collector.ratelimit import DeviceRateLimiter, retry_after_ms
from devposture.collector.service import MAX_BATCH
from tests.conftest import (
    EnrolledAgent,
    LiveCollector,
    enroll_agent,
    make_report,
    running_collector,
)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the bucket ----------------------------------------------------------------------------


def test_burst_passes_then_the_next_call_waits() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(60, 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(1.0)  # 60 a minute: one token a second


def test_tokens_refill_at_the_configured_rate() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(30, 1, clock=clock)  # one token every 2 s
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(2.0)
    clock.advance(1.5)
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.acquire("a") == 0.0


def test_a_refused_call_is_not_counted() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(60, 1, clock=clock)
    assert limiter.acquire("a") == 0.0
    for _ in range(100):
        assert limiter.acquire("a") > 0
    clock.advance(1.0)
    assert limiter.acquire("a") == 0.0


def test_refill_never_exceeds_the_burst() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(60, 2, clock=clock)
    limiter.acquire("a")
    clock.advance(3600)
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") > 0


def test_devices_have_separate_buckets() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(60, 2, clock=clock)
    limiter.acquire("flood")
    limiter.acquire("flood")
    assert limiter.acquire("flood") > 0
    assert limiter.acquire("quiet") == 0.0
    assert limiter.acquire("quiet") == 0.0


def test_idle_full_buckets_are_evicted() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(60, 5, clock=clock)  # full again after 5 s
    for n in range(1000):
        limiter.acquire(f"d{n}")
    assert len(limiter) == 1000
    clock.advance(5.0)
    limiter.acquire("new")
    assert len(limiter) == 1
    # Eviction changes nothing for a device: its bucket was full anyway.
    assert [limiter.acquire("d1") for _ in range(5)] == [0.0] * 5


def test_a_busy_bucket_is_not_evicted_by_others() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(60, 2, clock=clock)
    limiter.acquire("busy")
    limiter.acquire("busy")
    clock.advance(1.0)
    limiter.acquire("other")
    assert limiter.acquire("busy") == 0.0  # one refilled token
    assert limiter.acquire("busy") > 0  # not a fresh bucket


def test_memory_is_capped_even_under_many_active_devices() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(1, 1, clock=clock, max_devices=100)
    for n in range(10_000):
        limiter.acquire(f"d{n}")
    assert len(limiter) == 100


def test_a_share_divides_the_rate_and_the_burst_among_the_processes_serving() -> None:
    clock = FakeClock()
    limiter = DeviceRateLimiter(calls_per_minute=6, burst=5, clock=clock)
    assert limiter.acquire("dev") == 0.0  # 4 left of the whole burst
    limiter.share(3)  # three collectors serve on the database
    assert (limiter.serving, limiter.calls_per_minute, limiter.burst) == (3, 2.0, 2)
    # The bucket kept only the new burst (2 of its 4): then a call every 30 s.
    assert [limiter.acquire("dev") == 0.0 for _ in range(3)] == [True, True, False]
    assert limiter.acquire("fresh") == 0.0 and limiter.acquire("fresh") == 0.0
    assert limiter.acquire("fresh") == pytest.approx(30.0)
    clock.advance(30.0)
    assert limiter.acquire("fresh") == 0.0
    limiter.share(1)  # alone again: the whole limit, the buckets as they were
    assert (limiter.calls_per_minute, limiter.burst) == (6.0, 5)
    clock.advance(10.0)
    assert limiter.acquire("fresh") == 0.0
    limiter.share(0)  # nobody counted (a failed count): never more than the whole limit
    assert limiter.serving == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        DeviceRateLimiter(0, 1)
    with pytest.raises(ValueError):
        DeviceRateLimiter(60, 0)


def test_retry_hint_rounds_up_to_whole_milliseconds() -> None:
    assert retry_after_ms(1.0) == 1000
    assert retry_after_ms(0.0001) == 1
    assert retry_after_ms(0.0015) == 2


# --- a real collector with small limits ----------------------------------------------------


BURST = 3


@pytest.fixture
def strict_collector(tmp_path: Path) -> Iterator[LiveCollector]:
    """One call a minute after a burst of three: a retry within the test never succeeds."""
    with running_collector(
        tmp_path / "collector", device_calls_per_minute=1, device_call_burst=BURST
    ) as collector:
        yield collector


def _stored(collector: LiveCollector, device_id: str) -> list[str]:
    store = collector.store()
    try:
        return store.reports.report_ids(device_id)
    finally:
        store.close()


def test_a_flooding_device_is_told_to_back_off_and_others_are_served(
    strict_collector: LiveCollector, tmp_path: Path
) -> None:
    flood = enroll_agent(strict_collector, tmp_path / "flood", "flood-host")
    quiet = enroll_agent(strict_collector, tmp_path / "quiet", "quiet-host")
    flood_id = flood.enrollment.device_id
    sent = [make_report(flood_id) for _ in range(BURST + 1)]
    with open_channel(flood.state, flood.enrollment) as channel:
        for report in sent[:BURST]:
            assert send_report(channel, report).report_id == report.report_id
        with pytest.raises(grpc.RpcError) as caught:
            send_report(channel, sent[BURST])
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"device {flood_id} is calling too often" in str(error.details())
    hints = dict(error.trailing_metadata() or ())
    wait_ms = int(hints["retry-after-ms"])
    assert 55_000 <= wait_ms <= 60_000  # one call a minute
    assert _stored(strict_collector, flood_id) == [r.report_id for r in sent[:BURST]]
    # The other device is not slowed down by the flood.
    with open_channel(quiet.state, quiet.enrollment) as channel:
        for _ in range(BURST):
            report = make_report(quiet.enrollment.device_id)
            assert send_report(channel, report).report_id == report.report_id
    assert len(_stored(strict_collector, quiet.enrollment.device_id)) == BURST


def test_drain_keeps_reports_and_returns_the_hint_when_rate_limited(
    strict_collector: LiveCollector, tmp_path: Path
) -> None:
    """A backlog goes in batches, one call of the device's rate each: past the burst the
    collector says wait, and the agent keeps the rest and hands back the wait."""
    agent = enroll_agent(strict_collector, tmp_path / "agent")
    outbox = Outbox(agent.state.outbox_dir)
    reports = [make_report(agent.enrollment.device_id) for _ in range(BURST * MAX_BATCH + 2)]
    for report in reports:
        outbox.put(report)
    result = drain(agent.state, agent.enrollment, outbox)
    assert len(result.acknowledged) == BURST * MAX_BATCH
    assert result.set_aside == []
    assert outbox.rejected_count() == 0
    assert result.stopped_by is not None and result.stopped_by.startswith("RESOURCE_EXHAUSTED")
    assert result.retry_after is not None and 55.0 <= result.retry_after <= 60.0
    left = {p.report.report_id for p in outbox.pending()}
    assert len(left) == 2 and left.isdisjoint(result.acknowledged)
    assert set(_stored(strict_collector, agent.enrollment.device_id)) == set(result.acknowledged)


def test_drain_sets_aside_a_report_too_large_without_a_hint(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    """RESOURCE_EXHAUSTED without retry-after-ms is grpc's "message too large": permanent."""
    outbox = Outbox(agent.state.outbox_dir)
    huge = make_report(agent.enrollment.device_id)
    huge.host.hostname = "x" * (live_collector.config.max_report_bytes + 1)
    fine = make_report(agent.enrollment.device_id)
    outbox.put(huge)
    outbox.put(fine)
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.set_aside == [huge.report_id]
    assert result.acknowledged == [fine.report_id]
    assert result.retry_after is None and result.stopped_by is None
    assert outbox.pending() == []
