"""Requests whose bytes are not the message they should be (issue 14, item 1), sent by an
independent raw client: grpcio's generic unary-unary call with no serializers, so the bytes
go out exactly as written, over real TLS and real mutual TLS with real enrolled devices.

Two bodies: random bytes, and a valid message's serialization with the UTF-8 of one string
patched in place into bytes that are not UTF-8 (every length still right). Each is refused
INVALID_ARGUMENT saying what is wrong, after the same admission as any call of that peer: the
per-device rate limit on the report port, the enrollment throttle, the refusal counters, one
log line and no traceback, an audit entry on the admin port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import urllib.request
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError, Message
from prometheus_client.parser import text_string_to_metric_families

from devposture.agent.enroll import make_csr
from devposture.collector.admin.service import (
    UNAUTHENTICATED_ACTOR,
    AdminServer,
    start_admin_server,
)
from devposture.collector.credentials import ADMIN
from devposture.collector.ratelimit import DeviceRateLimiter
from devposture.collector.store.admin import AuditEntry
from devposture.collector.throttle import FREE_FAILURES
from devposture.v1 import admin_pb2 as admin_pb
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import (
    EnrolledAgent,
    LiveCollector,
    enroll_agent,
    host_info,
    make_report,
    running_collector,
)

DEADLINE = 30.0
COLLECTOR = "/devposture.v1.Collector/"
ADMIN_RUN = "/devposture.v1.Admin/Run"
# Seeded: the same bytes on every run (checked below to be no message of any type used).
RANDOM_BYTES = random.Random(14).randbytes(64)
# Written into a string field, then broken in place: its UTF-8 (c3 a9, four times) becomes
# ff fe, four times, the field's length unchanged. Eight bytes with the high bit set never
# occur in the varints around it (a timestamp's seconds once held c3 a9 as a single "é"
# would: a test failing by the clock), nor, but by a 2**-64 chance, elsewhere.
MARK = "éééé"
PYTHON_INTERNALS = re.compile(r"<class|DecodeError|Traceback|Unexpected|google\.protobuf")

Metadata = tuple[tuple[str, str | bytes], ...]
T = TypeVar("T")


# --- the raw client --------------------------------------------------------------------------


def raw_call(
    channel: grpc.Channel, path: str, body: bytes, metadata: Metadata = ()
) -> tuple[grpc.StatusCode, str, bytes]:
    """Send `body` as the request of `path`, byte for byte; the status, its message, and the
    response's bytes."""
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        path, request_serializer=None, response_deserializer=None
    )
    try:
        answer = call(body, timeout=DEADLINE, metadata=metadata)
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code(), exc.details() or "", b""
    assert isinstance(answer, bytes)
    return grpc.StatusCode.OK, "", answer


def raw_future(channel: grpc.Channel, path: str, body: bytes) -> grpc.Future[bytes]:
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        path, request_serializer=None, response_deserializer=None
    )
    return call.future(body, timeout=DEADLINE)


def code_of(future: grpc.Future[bytes]) -> grpc.StatusCode:
    try:
        future.result()
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code()
    return grpc.StatusCode.OK


def device_channel(live: LiveCollector, device: EnrolledAgent) -> grpc.Channel:
    """Mutual TLS to the report port with the device's own enrolled certificate and key."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=live.config.ca_cert.read_bytes(),
        private_key=device.state.key_path.read_bytes(),
        certificate_chain=device.state.cert_path.read_bytes(),
    )
    return grpc.secure_channel(f"127.0.0.1:{live.report_port}", credentials)


def tls_channel(live: LiveCollector, port: int) -> grpc.Channel:
    """TLS verifying the collector's CA, no client certificate (enrollment, admin)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=live.config.ca_cert.read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


# --- the bodies ------------------------------------------------------------------------------


def broken_utf8(message: Message) -> bytes:
    """`message` serialized, with the one MARK in its strings patched into invalid UTF-8."""
    data = message.SerializeToString()
    encoded = MARK.encode()
    assert data.count(encoded) == 1
    broken = data.replace(encoded, b"\xff\xfe" * 4)
    with pytest.raises(DecodeError):
        type(message).FromString(broken)
    return broken


def report_request(device: EnrolledAgent) -> pb.ReportRequest:
    report = make_report(device.enrollment.device_id)
    report.host.hostname = f"laptop-{MARK}"
    return pb.ReportRequest(report=report)


def batch_request(device: EnrolledAgent) -> pb.ReportBatchRequest:
    good = make_report(device.enrollment.device_id)
    bad = make_report(device.enrollment.device_id)
    bad.host.hostname = f"laptop-{MARK}"
    return pb.ReportBatchRequest(reports=[good, bad])


def enroll_request(live: LiveCollector) -> pb.EnrollRequest:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "laptop").decode()
    host = host_info(f"laptop-{MARK}")
    return pb.EnrollRequest(token=live.token(), csr_pem=csr, host=host, agent_version="test")


def renew_request() -> pb.RenewRequest:
    return pb.RenewRequest(csr_pem=f"-----BEGIN CERTIFICATE REQUEST----- {MARK}")


def admin_request() -> admin_pb.AdminCommand:
    return admin_pb.AdminCommand(command=["device", f"list{MARK}"])


@dataclass(frozen=True)
class Undecodable:
    """One undecodable call: where it goes, its bytes, and what the refusal must say."""

    path: str
    body: bytes
    type_name: str
    what: str  # the field path for broken UTF-8; "" for random bytes

    def expected(self) -> str:
        return f"the request is not a valid devposture.v1.{self.type_name}: "

    def check(self, code: grpc.StatusCode, message: str) -> None:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, message)
        assert message.startswith(self.expected()), message
        if self.what:
            assert f"{self.what} is not valid UTF-8 text" in message, message
        else:
            reason = message.removeprefix(self.expected())
            assert "not protobuf" in reason or "the data ends" in reason, message
        assert not PYTHON_INTERNALS.search(message), message


def both(path: str, good: Message, what: str) -> list[Undecodable]:
    """Random bytes and `good` with broken UTF-8, for `path`."""
    name = good.DESCRIPTOR.name
    with pytest.raises(DecodeError):
        type(good).FromString(RANDOM_BYTES)
    return [
        Undecodable(path, RANDOM_BYTES, name, ""),
        Undecodable(path, broken_utf8(good), name, what),
    ]


# --- collectors ------------------------------------------------------------------------------


@contextlib.contextmanager
def serving_admin(live: LiveCollector) -> Iterator[int]:
    """The admin port of `live`, started on its event loop as `serve` starts it."""
    server: AdminServer = run_on(live, start_admin_server(live.config, 0, "127.0.0.1"))
    try:
        yield server.port
    finally:
        run_on(live, server.stop(0.5))


def run_on(live: LiveCollector, work: Awaitable[T]) -> T:
    async def wrapped() -> T:
        return await work

    return asyncio.run_coroutine_threadsafe(wrapped(), live._loop).result(DEADLINE)


def scrape(live: LiveCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://{live.config.metrics_host}:{live._running.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def rejected(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], rpc: str,
             reason: str) -> float:  # fmt: skip
    labels = tuple(sorted({"rpc": rpc, "reason": reason}.items()))
    return samples.get(("devposture_reports_rejected_total", labels), 0.0)


def counted(live: LiveCollector, expected: dict[tuple[str, str], float]) -> dict[str, float]:
    """The refusal counters named in `expected`, once they reach it (each is counted as its
    call's status leaves, so the client may hear it first) or DEADLINE passes."""
    deadline = time.monotonic() + DEADLINE
    while True:
        samples = scrape(live)
        found = {key: rejected(samples, *key) for key in expected}
        if found == expected or time.monotonic() > deadline:
            return {f"{rpc} {reason}": value for (rpc, reason), value in found.items()}
        time.sleep(0.05)


def audit(live: LiveCollector) -> list[AuditEntry]:
    store = live.store()
    try:
        return store.admin.audit_entries()
    finally:
        store.close()


# --- the tests -------------------------------------------------------------------------------


def test_undecodable_calls_are_refused_invalid_argument_in_one_log_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_collector(tmp_path / "collector") as live, serving_admin(live) as admin_port:
        device = enroll_agent(live, tmp_path / "device")
        credential = live.credential("Li Wei (IT)", ADMIN)
        bearer = (("authorization", f"Bearer {credential}"),)
        reports = device_channel(live, device)
        enrollment = tls_channel(live, live.enroll_port)
        administration = tls_channel(live, admin_port)
        with reports, enrollment, administration:
            # The raw client is sound: a valid report's bytes are acknowledged.
            valid = make_report(device.enrollment.device_id)
            code, _, answer = raw_call(
                reports, COLLECTOR + "Report", pb.ReportRequest(report=valid).SerializeToString()
            )
            assert code == grpc.StatusCode.OK
            assert pb.ReportAck.FromString(answer).report_id == valid.report_id

            calls = [
                *((reports, (), c) for c in both(
                    COLLECTOR + "Report", report_request(device), "report.host.hostname")),
                *((reports, (), c) for c in both(
                    COLLECTOR + "ReportBatch", batch_request(device), "reports[1].host.hostname")),
                *((reports, (), c) for c in both(
                    COLLECTOR + "Renew", renew_request(), "csr_pem")),
                *((enrollment, (), c) for c in both(
                    COLLECTOR + "Enroll", enroll_request(live), "host.hostname")),
                *((administration, bearer, c) for c in both(
                    ADMIN_RUN, admin_request(), "command[1]")),
            ]  # fmt: skip
            # Fewer failed enrollments than the throttle forgives: it has nothing to say.
            assert sum(c.path.endswith("/Enroll") for _, _, c in calls) < FREE_FAILURES
            with caplog.at_level(logging.INFO):
                caplog.clear()
                for channel, metadata, call in calls:
                    code, message, _ = raw_call(channel, call.path, call.body, metadata)
                    call.check(code, message)
                records = list(caplog.records)

    # One line per call, at WARNING, saying what was refused; nothing else worth a warning,
    # no traceback, no line from gRPC's own decoding.
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == len(calls), [r.getMessage() for r in warnings]
    for record, (_, _, call) in zip(warnings, calls, strict=True):
        text = record.getMessage()
        assert call.expected() in text and "\n" not in text, text
        assert record.name.startswith("devposture.collector."), record.name
    for record in records:
        assert record.exc_info is None and record.exc_text is None, record.getMessage()
        assert "Traceback" not in record.getMessage()
        assert "deserializ" not in record.getMessage().lower()


def test_the_rate_limit_answers_undecodable_calls_like_any_other(tmp_path: Path) -> None:
    burst = 4
    with running_collector(tmp_path / "collector", serve_metrics=True) as live:
        # The device's bucket on a clock that stands still: no token comes back during the
        # test, however long it takes.
        live.service._limiter = DeviceRateLimiter(1, burst, clock=lambda: 1000.0)
        flooder = enroll_agent(live, tmp_path / "flooder", "flooder")
        other = enroll_agent(live, tmp_path / "other", "other")
        report_calls = both(COLLECTOR + "Report", report_request(flooder), "report.host.hostname")
        batch_calls = both(
            COLLECTOR + "ReportBatch", batch_request(flooder), "reports[1].host.hostname"
        )
        renew_calls = both(COLLECTOR + "Renew", renew_request(), "csr_pem")
        with device_channel(live, flooder) as channel:
            # The burst is spent by undecodable calls, each refused for what it is ...
            for call in [*report_calls, batch_calls[0], renew_calls[0]]:
                code, message, _ = raw_call(channel, call.path, call.body)
                call.check(code, message)
            # ... then undecodable calls are rate-limited like any call of that device,
            for call in [*report_calls, *batch_calls, renew_calls[1]]:
                code, message, _ = raw_call(channel, call.path, call.body)
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (call.path, code, message)
                assert "is calling too often" in message
            # and so are its next valid report and batch.
            valid = pb.ReportRequest(report=make_report(flooder.enrollment.device_id))
            code, _, _ = raw_call(channel, COLLECTOR + "Report", valid.SerializeToString())
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            three = [make_report(flooder.enrollment.device_id) for _ in range(3)]
            batch = pb.ReportBatchRequest(reports=three).SerializeToString()
            code, _, _ = raw_call(channel, COLLECTOR + "ReportBatch", batch)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        with device_channel(live, other) as channel:  # another device is not held back
            valid = pb.ReportRequest(report=make_report(other.enrollment.device_id))
            code, _, _ = raw_call(channel, COLLECTOR + "Report", valid.SerializeToString())
            assert code == grpc.StatusCode.OK

        # Counted as refused. A rate-limited batch counts each of its reports; one that
        # cannot be decoded counts one.
        assert counted(live, {
            ("Report", "INVALID_ARGUMENT"): 2, ("ReportBatch", "INVALID_ARGUMENT"): 1,
            ("Report", "RESOURCE_EXHAUSTED"): 3, ("ReportBatch", "RESOURCE_EXHAUSTED"): 1 + 1 + 3,
        }) == {
            "Report INVALID_ARGUMENT": 2, "ReportBatch INVALID_ARGUMENT": 1,
            "Report RESOURCE_EXHAUSTED": 3, "ReportBatch RESOURCE_EXHAUSTED": 5,
        }  # fmt: skip


def test_undecodable_report_calls_are_counted_invalid_argument(tmp_path: Path) -> None:
    with running_collector(tmp_path / "collector", serve_metrics=True) as live:
        device = enroll_agent(live, tmp_path / "device")
        calls = [
            *both(COLLECTOR + "Report", report_request(device), "report.host.hostname"),
            *both(COLLECTOR + "ReportBatch", batch_request(device), "reports[1].host.hostname"),
            Undecodable(COLLECTOR + "Report", RANDOM_BYTES[::-1], "ReportRequest", ""),
        ]
        with device_channel(live, device) as channel:
            for call in calls:
                code, message, _ = raw_call(channel, call.path, call.body)
                assert code == grpc.StatusCode.INVALID_ARGUMENT, message
        # An undecodable batch counts once: how many reports it held cannot be known.
        assert counted(live, {
            ("Report", "INVALID_ARGUMENT"): 3, ("ReportBatch", "INVALID_ARGUMENT"): 2,
            ("Report", "UNKNOWN"): 0, ("ReportBatch", "UNKNOWN"): 0,
        }) == {
            "Report INVALID_ARGUMENT": 3, "ReportBatch INVALID_ARGUMENT": 2,
            "Report UNKNOWN": 0, "ReportBatch UNKNOWN": 0,
        }  # fmt: skip


def _turns_of_parallel_enrollments(
    live: LiveCollector, bodies: list[bytes]
) -> tuple[list[grpc.StatusCode], list[tuple[int, bool]]]:
    """Send `bodies` to Enroll all at once; their answers, and the throttle's turns: the
    address's failures when each turn came, and whether it was made to wait. The wait
    itself is recorded, not slept (time as data)."""
    throttle = live.service.throttle
    waits: list[float] = []

    async def recorded(seconds: float) -> None:
        waits.append(seconds)

    throttle.sleep = recorded
    # The line's bound (turning away an attempt that would wait past it) is tested on its own
    # (test_enrollment_throttle.py): here, however the attempts happen to arrive under load,
    # each takes its turn.
    throttle.max_line_seconds = None
    with tls_channel(live, live.enroll_port) as channel:
        futures = [raw_future(channel, COLLECTOR + "Enroll", body) for body in bodies]
        codes = [code_of(f) for f in futures]
    turns = [(t.failures, t.waited > 0) for t in throttle.turns]
    assert len(waits) == sum(1 for _, waited in turns if waited)
    return codes, turns


def test_parallel_undecodable_enrollments_are_throttled_like_decodable_ones(
    tmp_path: Path,
) -> None:
    attempts = FREE_FAILURES + 3
    with running_collector(tmp_path / "garbage") as live:
        garbage = both(COLLECTOR + "Enroll", enroll_request(live), "host.hostname")
        codes, undecodable_turns = _turns_of_parallel_enrollments(
            live, [garbage[i % 2].body for i in range(attempts)]
        )
        assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * attempts
    with running_collector(tmp_path / "guesses") as live:
        guess = pb.EnrollRequest(
            token="dpt_0123456789abcdef_" + "A" * 43,
            csr_pem=make_csr(ec.generate_private_key(ec.SECP256R1()), "guess").decode(),
        )
        codes, decodable_turns = _turns_of_parallel_enrollments(
            live, [guess.SerializeToString()] * attempts
        )
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * attempts
    # One at a time, each seeing the failures before it; from FREE_FAILURES on, each waits.
    expected = [(n, n >= FREE_FAILURES) for n in range(attempts)]
    assert undecodable_turns == expected
    assert decodable_turns == expected


def test_an_undecodable_admin_call_is_refused_and_audited(tmp_path: Path) -> None:
    with running_collector(tmp_path / "collector") as live, serving_admin(live) as admin_port:
        credential = live.credential("Li Wei (IT)", ADMIN)
        bearer = (("authorization", f"Bearer {credential}"),)
        calls = both(ADMIN_RUN, admin_request(), "command[1]")
        with tls_channel(live, admin_port) as channel:
            for call in calls:
                code, message, _ = raw_call(channel, call.path, call.body, bearer)
                call.check(code, message)
            # Without a credential it is refused as unauthenticated, audited as such.
            code, _, _ = raw_call(channel, ADMIN_RUN, RANDOM_BYTES)
            assert code == grpc.StatusCode.UNAUTHENTICATED
        entries = audit(live)
    assert len(entries) == 3  # one per call
    for entry, call in zip(entries[:2], calls, strict=True):
        assert (entry.actor, entry.role, entry.outcome) == ("Li Wei (IT)", ADMIN, "error")
        assert entry.message.startswith(call.expected()), entry.message
        assert entry.command == "" and entry.peer.startswith("ipv4:127.0.0.1:")
    assert "command[1] is not valid UTF-8 text" in entries[1].message
    assert (entries[2].actor, entries[2].outcome) == (UNAUTHENTICATED_ACTOR, "denied")
