"""Failed enrollments from one address: taken one at a time and slowed down, logged, with a
bounded queue; another address, and a first mistake, are not slowed.

The throttle's time is given as data (`HeldTime`): its clock moves only by the waits it asks
for, and those waits are held at a gate, so the tests read the server's own record of turns
and never measure how long anything took."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devposture.agent.enroll import enroll, make_csr
from devposture.agent.state import AgentState
from devposture.collector.server import CONNECTION_AGE_GRACE_MS
from devposture.collector.store import Store
from devposture.collector.store.guesses import DASHBOARD, ENROLLMENT, GuessLedger
from devposture.collector.throttle import (
    FREE_FAILURES,
    MAX_DELAY_SECONDS,
    MAX_LINE_SECONDS,
    MAX_QUEUED,
    WINDOW_SECONDS,
    FailureThrottle,
    Turn,
    backoff,
    peer_address,
    source,
)
from devposture.net.address import CollectorAddress
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import LiveCollector, host_info, running_collector
from tests.databases import fresh_database
from tests.throttling import SECOND_SOURCE, Forwarder, HeldTime
from tests.waiting import wait_until

GUESSER = "127.0.0.1"
BAD_TOKEN = "dpt_0123456789abcdef_" + "A" * 43


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_starts_after_the_free_failures_doubles_and_is_capped() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(clock)
    for _ in range(FREE_FAILURES):
        assert throttle.delay("10.0.0.5") == 0
        throttle.failed("10.0.0.5")
    assert throttle.delay("10.0.0.5") == 1
    throttle.failed("10.0.0.5")
    assert throttle.delay("10.0.0.5") == 2
    clock.now += 1.5
    assert throttle.delay("10.0.0.5") == 0.5  # counted from the last failure
    for _ in range(20):
        throttle.failed("10.0.0.5")
    assert throttle.delay("10.0.0.5") == MAX_DELAY_SECONDS
    assert throttle.delay("10.0.0.6") == 0  # another address is not slowed
    clock.now += 3600
    assert throttle.delay("10.0.0.5") == 0  # failures age out of the window


def test_peer_address_drops_the_port_and_a_source_is_an_address_or_an_ipv6_64() -> None:
    assert peer_address("ipv4:10.1.2.3:51234") == "10.1.2.3"
    assert peer_address("ipv6:[::1]:51234") == "::1"
    assert source("10.1.2.3") == "10.1.2.3"
    assert source("::ffff:10.1.2.3") == "10.1.2.3"
    assert source("::1") == "::1"
    # One IPv6 host can take any address of its /64: the /64 is the source.
    assert source("2001:db8:1:2::5") == source("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source("2001:db8:1:3::5") != source("2001:db8:1:2::5")
    clock = FakeClock()
    throttle = FailureThrottle(clock)
    for n in range(FREE_FAILURES + 1):
        throttle.failed(f"2001:db8:1:2::{n + 1:x}")
    assert throttle.delay("2001:db8:1:2::abcd") == backoff(FREE_FAILURES + 1)


@pytest.fixture
def held(live_collector: LiveCollector) -> Iterator[HeldTime]:
    """The live collector's enrollment throttle on held time."""
    time = HeldTime()
    throttle = live_collector.service.throttle
    throttle.clock, throttle.sleep = time.clock, time.sleep
    try:
        yield time
    finally:
        time.release()


def _bad_request() -> pb.EnrollRequest:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "guesser").decode()
    return pb.EnrollRequest(token=BAD_TOKEN, csr_pem=csr)


def _channel(collector: LiveCollector) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(collector.config.ca_cert.read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{collector.enroll_port}", credentials)


def _turns(collector: LiveCollector, address: str) -> list[Turn]:
    return [t for t in collector.service.throttle.turns if t.address == address]


def test_a_guessing_address_is_slowed_and_logged(
    live_collector: LiveCollector, held: HeldTime, caplog: pytest.LogCaptureFixture
) -> None:
    stub = pb_grpc.CollectorStub(_channel(live_collector))
    with caplog.at_level(logging.WARNING, logger="devposture.collector.service"):
        for _ in range(FREE_FAILURES + 3):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Enroll(_bad_request(), timeout=60)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    turns = _turns(live_collector, GUESSER)
    # Honest mistakes are answered at once; then each attempt waits 1, 2, 4 s.
    assert [t.waited for t in turns] == [0.0] * FREE_FAILURES + [1.0, 2.0, 4.0]
    assert [t.failures for t in turns] == list(range(FREE_FAILURES + 3))
    assert held.waits == [1.0, 2.0, 4.0]
    assert any("failed enrollments from 127.0.0.1" in r.getMessage() for r in caplog.records)


def test_parallel_guesses_are_taken_one_at_a_time_and_another_address_enrolls_at_once(
    live_collector: LiveCollector, held: HeldTime, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Forty-odd guesses sent at once from one address: each waits its turn and out the delay
    its predecessors' failures earned; past the queue's bound they are turned away at once.
    Meanwhile another address enrolls without waiting."""
    live_collector.service.throttle.max_line_seconds = None  # the queue's bound alone here
    channel = _channel(live_collector)
    stub = pb_grpc.CollectorStub(channel)
    for _ in range(FREE_FAILURES):  # the free failures: answered at once, one by one
        with pytest.raises(grpc.RpcError):
            stub.Enroll(_bad_request(), timeout=60)

    held.hold()  # from now on the guesser's waits stay in progress until released
    extra = 4
    calls = [stub.Enroll.future(_bad_request(), timeout=120) for _ in range(MAX_QUEUED + extra)]
    wait_until(lambda: sum(c.done() for c in calls) == extra, "the turned-away answers")
    turned_away = [c for c in calls if c.done()]
    for call in turned_away:
        error = call.exception()
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "one at a time" in (error.details() or "")
        assert dict(error.trailing_metadata() or ())["retry-after-ms"] == str(
            int(backoff(FREE_FAILURES) * 1000)
        )
    assert live_collector.service.throttle.turned_away == extra
    wait_until(lambda: held.waits == [1.0], "the first queued guess to be held in its wait")

    # The guesser is held in its wait with fifteen more queued behind it; a second address
    # enrolls through a real TLS connection from 127.0.0.2 and is not kept waiting.
    with Forwarder(("127.0.0.1", live_collector.enroll_port)) as forwarder:
        enrolled = enroll(
            AgentState(tmp_path / "neighbour"), CollectorAddress("127.0.0.1", forwarder.port),
            live_collector.token(), live_collector.ca_fingerprint, host_info("neighbour"),
        )  # fmt: skip
    assert enrolled.device_id
    assert _turns(live_collector, SECOND_SOURCE) == [Turn(SECOND_SOURCE, 0, 0.0)]
    assert not any(c.done() for c in calls if c not in turned_away)
    assert held.waits == [1.0]  # nothing of the guesser moved meanwhile

    held.release()
    with caplog.at_level(logging.WARNING, logger="devposture.collector.service"):
        for call in calls:
            if call not in turned_away:
                assert call.exception() is not None
                assert call.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    guesses = _turns(live_collector, GUESSER)[FREE_FAILURES:]
    # One at a time: each guess saw every failure before it, and waited what they earned.
    assert [t.failures for t in guesses] == list(range(FREE_FAILURES, FREE_FAILURES + MAX_QUEUED))
    assert [t.waited for t in guesses] == [backoff(t.failures) for t in guesses]
    assert [t.waited for t in guesses][:6] == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY_SECONDS]
    assert held.waits == [t.waited for t in guesses]


def test_a_guess_that_would_outwait_its_connection_is_turned_away_with_a_hint(
    live_collector: LiveCollector, held: HeldTime
) -> None:
    """Queued attempts wait 1, 2, 4, 8, 16, 30 s... one after another: past MAX_LINE_SECONDS
    in line, the end of the connection at its age (10 s of grace for a call in flight) would
    end the call UNAVAILABLE with no hint. Such an attempt is told at once when to come back;
    those within it are served."""
    assert live_collector.service.throttle.max_line_seconds == MAX_LINE_SECONDS
    channel = _channel(live_collector)
    stub = pb_grpc.CollectorStub(channel)
    for _ in range(FREE_FAILURES):
        with pytest.raises(grpc.RpcError):
            stub.Enroll(_bad_request(), timeout=60)
    held.hold()
    calls = [stub.Enroll.future(_bad_request(), timeout=120) for _ in range(10)]
    # In line: waits of 1, then 1+2, 1+2+4 = 7 s; the fourth's 15 s is past the bound.
    within = 3
    wait_until(lambda: sum(c.done() for c in calls) == len(calls) - within, "the turned away")
    turned_away = [c for c in calls if c.done()]
    for call in turned_away:
        error = call.exception()
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        hint = int(dict(error.trailing_metadata() or ())["retry-after-ms"])
        assert hint > MAX_LINE_SECONDS * 1000, hint
    held.release()
    for call in calls:
        if call not in turned_away:
            assert call.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    waited = [t.waited for t in _turns(live_collector, GUESSER)[FREE_FAILURES:]]
    assert waited == [1.0, 2.0, 4.0] and sum(waited) <= MAX_LINE_SECONDS


@pytest.mark.parametrize("counted_here", [True, False], ids=["here", "by-another-collector"])
def test_a_guess_on_a_connection_at_its_age_is_told_when_to_come_back_not_cut(
    tmp_path: Path, counted_here: bool
) -> None:
    """Found by a grpc-js client, whose clients share one connection: an attempt that came
    late in its connection's life and waited 16 s in line was cut by the connection's age
    (10 s of grace), UNAVAILABLE "max connection age" with no hint, as the 40 s bound on the
    line assumed a new connection; and failures counted by another collector on the database
    were not weighed against the bound at all. Here the connection reaches its age after
    1 s: the attempt is told at once when to come back."""
    assert MAX_LINE_SECONDS < CONNECTION_AGE_GRACE_MS / 1000
    with running_collector(tmp_path / "c", max_connection_age_seconds=1.0) as collector:
        store = collector.store()
        try:  # nine failures from this address a moment ago: its next attempt waits 16 s
            ledger = GuessLedger(store.guesses, ENROLLMENT, WINDOW_SECONDS)
            for _ in range(FREE_FAILURES + 4):
                ledger.add(GUESSER, time.time())
        finally:
            store.close()
        if counted_here:  # this collector saw them too: its memory measures the line
            for _ in range(FREE_FAILURES + 4):  # (no call is in flight to race with)
                collector.service.throttle.failed(GUESSER)
        assert backoff(FREE_FAILURES + 4) > CONNECTION_AGE_GRACE_MS / 1000
        with _channel(collector) as channel, pytest.raises(grpc.RpcError) as refused:
            pb_grpc.CollectorStub(channel).Enroll(_bad_request(), timeout=60)
        error = refused.value
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        hint = int(dict(error.trailing_metadata() or ())["retry-after-ms"])
        assert MAX_LINE_SECONDS * 1000 < hint <= backoff(FREE_FAILURES + 4) * 1000


def test_failures_counted_by_one_collector_slow_the_source_down_at_another(
    tmp_path: Path,
) -> None:
    """Two collectors (or workers) on one database, each with its own throttle: a source's
    failures at one count at the other, so spreading guesses over a load balancer's
    collectors earns the same waits as guessing at one. Enrollments and dashboard logins are
    counted apart, and failures age out of the window alike everywhere."""
    target = fresh_database(tmp_path)
    first, second = Store.open(target), Store.open(target)
    clock = FakeClock()
    try:
        throttles = [
            FailureThrottle(clock, ledger=GuessLedger(store.guesses, ENROLLMENT, WINDOW_SECONDS))
            for store in (first, second)
        ]
        logins = FailureThrottle(
            clock, ledger=GuessLedger(second.guesses, DASHBOARD, WINDOW_SECONDS)
        )

        async def guesses() -> list[tuple[int, float]]:
            seen: list[tuple[int, float]] = []
            for n in range(FREE_FAILURES + 2):  # alternately at each collector
                async with throttles[n % 2].attempt("10.0.0.5") as turn:
                    seen.append((turn.failures, turn.waited))
                    await throttles[n % 2].record_failure("10.0.0.5")
            async with logins.attempt("10.0.0.5") as login:
                seen.append((login.failures, login.waited))
            clock.now += WINDOW_SECONDS + 1
            async with throttles[0].attempt("10.0.0.5") as later:
                seen.append((later.failures, later.waited))
            return seen

        seen = asyncio.run(guesses())
        # Each turn sees every failure before it, whichever collector counted it; the held
        # clock does not move, so a slowed turn's wait is its whole delay.
        assert seen[: FREE_FAILURES + 2] == [
            (n, backoff(n)) for n in range(FREE_FAILURES + 2)
        ]
        assert seen[-2] == (0, 0.0)  # the dashboard's logins are counted apart
        assert seen[-1] == (0, 0.0)  # aged out of the window
    finally:
        first.close()
        second.close()
