"""Repeated failed enrollments from one address are slowed down and logged; other addresses,
and a first mistake, are not."""

from __future__ import annotations

import logging
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.enroll import make_csr
from collector.throttle import FREE_FAILURES, MAX_DELAY_SECONDS, FailureThrottle, peer_address
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import LiveCollector


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
    for _ in range(20):
        throttle.failed("10.0.0.5")
    assert throttle.delay("10.0.0.5") == MAX_DELAY_SECONDS
    assert throttle.delay("10.0.0.6") == 0  # another address is not slowed
    clock.now += 3600
    assert throttle.delay("10.0.0.5") == 0  # failures age out of the window


def test_peer_address_drops_the_port() -> None:
    assert peer_address("ipv4:10.1.2.3:51234") == "10.1.2.3"
    assert peer_address("ipv6:[::1]:51234") == "::1"


def test_a_guessing_address_is_slowed_and_logged(
    live_collector: LiveCollector, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = grpc.ssl_channel_credentials(live_collector.config.ca_cert.read_bytes())
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "guesser").decode()
    bad = pb.EnrollRequest(token="dpt_0123456789abcdef_" + "A" * 43, csr_pem=csr)
    with grpc.secure_channel(f"127.0.0.1:{live_collector.enroll_port}", credentials) as channel:
        stub = pb_grpc.CollectorStub(channel)
        timings = []
        with caplog.at_level(logging.WARNING, logger="collector.service"):
            for _ in range(FREE_FAILURES + 2):
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Enroll(bad, timeout=30)
                timings.append(time.monotonic() - started)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert max(timings[:FREE_FAILURES]) < 0.9  # honest mistakes are answered at once
    assert timings[FREE_FAILURES] >= 0.9 and timings[FREE_FAILURES + 1] >= 1.9
    assert any("failed enrollments from 127.0.0.1" in r.getMessage() for r in caplog.records)
