"""Send reports to the collector over mutual TLS and drain the outbox.

Every call has a deadline. Which failures are worth retrying is decided here, from the gRPC
status: a report the collector refused as invalid will be refused again, so it is set aside;
an unreachable collector or an identity problem leaves the report in the outbox.

A backlog (the laptop was offline for a week) goes in batches (ReportBatch: up to 64 reports
and about a megabyte per call, oldest first), each report acknowledged or refused on its own.
A collector older than ReportBatch answers UNIMPLEMENTED; the agent then sends one report per
call (Report) to that collector for as long as the process lives.

The collector can push back: RESOURCE_EXHAUSTED (this device calls too often) or UNAVAILABLE
(the collector is overloaded or shutting down) with a `retry-after-ms` trailing metadata.
Draining stops there, the reports stay, and the wait is handed to the caller (the service
loop's backoff). Retries are the caller's: gRPC's own retries are off, so a call is never sent
twice behind the agent's back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.outbox import Outbox, Pending
from devposture.agent.state import AgentState, Enrollment
from devposture.net.address import CollectorAddress
from devposture.net.proxy import channel_options
from devposture.net.rpc_status import describe, retry_hint, status_of, worded_detail
from devposture.policy.cli_messages import Said
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

REPORT_DEADLINE_SECONDS = 30.0
BATCH_DEADLINE_SECONDS = 60.0
# The proto's limit per ReportBatch call.
MAX_BATCH_REPORTS = 64
# The collector refuses messages above its max_report_bytes (1 MiB by default); a batch stays
# below that with room for the envelope (per-report tags and lengths, sent_at, version).
MAX_BATCH_BYTES = 1_000_000
# Reports read from the outbox at a time: a full outbox is drained without holding it all.
DRAIN_CHUNK = 4 * MAX_BATCH_REPORTS
_PER_REPORT_OVERHEAD = 8
# Keepalive pings only while a call is in flight, at most one every two minutes: the collector
# accepts pings down to 30 s apart (collector/server.py KEEPALIVE_MIN_PING_MS), so an agent's
# keepalive never earns a GOAWAY "too_many_pings".
KEEPALIVE_TIME_MS = 120_000
KEEPALIVE_TIMEOUT_MS = 20_000
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
)

# The collector will never accept these reports as they are: keeping them would block the rest.
# RESOURCE_EXHAUSTED is permanent only without a retry hint (the report is too large); with a
# `retry-after-ms` trailing metadata it means "this device is sending too often: back off".
_PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
STOPPING = "the agent is stopping"
# Why a drain stopped when no call failed (`DrainResult.stopped_by`): worded by the CLI.
NONE_ANSWERED = "the collector answered for none of the reports sent"
PART_ANSWERED = "the collector answered for only part of the batch"
OUTBOX_STUCK = "the outbox could not remove delivered reports"
# How often a call in flight checks whether the agent is stopping.
STOP_POLL_SECONDS = 0.25

# Collectors (by target) that answered ReportBatch with UNIMPLEMENTED in this process.
_UNARY_ONLY: set[str] = set()
_UNARY_LOCK = threading.Lock()


def forget_unary_collectors() -> None:
    """Try ReportBatch again with every collector (for tests, and after an upgrade)."""
    with _UNARY_LOCK:
        _UNARY_ONLY.clear()


@dataclass
class DrainResult:
    acknowledged: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    # Why sending stopped early, when it did; the remaining reports stay in the outbox.
    stopped_by: str | None = None
    # The collector's words for it when it sent them worded (a refusal of the device itself,
    # shown in the reader's language); None otherwise, or from an older collector.
    stopped_worded: Said | None = None
    # The acknowledgement of the newest report sent (its verdicts, maybe a new configuration).
    last_ack: pb.ReportAck | None = None
    # The verdicts to keep for `status`, with the newest report they were judged with, when
    # this drain brought new ones or was told they stand (None: keep what is kept).
    verdicts: pb.ReportAck | None = None
    # Seconds the collector asked this device to wait before sending again (pushback).
    retry_after: float | None = None
    # A new configuration the collector handed out during this drain (already saved).
    config: pb.AgentConfig | None = None
    # The newest report acknowledged (stored or duplicate), for the Wi-Fi session log.
    newest_delivered: pb.PostureReport | None = None
    # Calls made, and whether they were batches (False: unary Report to an older collector).
    calls: int = 0
    batched: bool = True

    @property
    def delivered(self) -> int:
        return len(self.acknowledged) + len(self.duplicates)


def open_channel(state: AgentState, enrollment: Enrollment) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=state.ca_path.read_bytes(),
        private_key=state.key_path.read_bytes(),
        certificate_chain=state.cert_path.read_bytes(),
    )
    address = CollectorAddress(enrollment.collector_host, enrollment.report_port)
    options = (*CHANNEL_OPTIONS, *channel_options(state.proxy))
    return grpc.secure_channel(address.target(), credentials, options=options)


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class Stopped(Exception):
    """The agent is stopping: the call in flight was cancelled, its reports stay queued."""


def _await(call: grpc.Future[T], should_stop: Callable[[], bool] | None) -> T:
    """The result of a call in flight; cancelled as soon as `should_stop()` says so, so that
    SIGTERM does not wait out a deadline against a collector that hangs."""
    while should_stop is not None:
        try:
            return call.result(timeout=STOP_POLL_SECONDS)
        except grpc.FutureTimeoutError:
            if should_stop():
                call.cancel()
                raise Stopped(STOPPING) from None
    return call.result()


def send_report(
    channel: grpc.Channel, report: pb.PostureReport, config_version: int = 0,
    should_stop: Callable[[], bool] | None = None, verdicts_held: bytes = b"",
) -> pb.ReportAck:  # fmt: skip
    stub = pb_grpc.CollectorStub(channel)
    request = pb.ReportRequest(
        report=report, config_version=config_version, sent_at=_now(), verdicts_held=verdicts_held
    )
    call = stub.Report.future(request, timeout=REPORT_DEADLINE_SECONDS, wait_for_ready=False)
    ack = _await(call, should_stop)
    if ack.report_id != report.report_id:
        raise grpc.RpcError(f"the collector acknowledged {ack.report_id}, not {report.report_id}")
    return ack


def send_batch(
    channel: grpc.Channel, reports: Sequence[pb.PostureReport], config_version: int = 0,
    should_stop: Callable[[], bool] | None = None, verdicts_held: bytes = b"",
) -> pb.ReportBatchResponse:  # fmt: skip
    stub = pb_grpc.CollectorStub(channel)
    request = pb.ReportBatchRequest(
        reports=list(reports), config_version=config_version, sent_at=_now(),
        verdicts_held=verdicts_held,
    )  # fmt: skip
    call = stub.ReportBatch.future(request, timeout=BATCH_DEADLINE_SECONDS, wait_for_ready=False)
    response = _await(call, should_stop)
    return response


def batches(
    pending: Sequence[Pending], max_bytes: int = MAX_BATCH_BYTES, *, first_only: bool = False
) -> list[list[Pending]]:
    """Split the backlog, oldest first, into batches within the count and size limits (only
    the first batch with `first_only`). A report larger than `max_bytes` on its own goes
    alone (the collector decides about it)."""
    out: list[list[Pending]] = []
    current: list[Pending] = []
    size = 0
    for item in pending:
        cost = item.report.ByteSize() + _PER_REPORT_OVERHEAD
        if current and (len(current) >= MAX_BATCH_REPORTS or size + cost > max_bytes):
            out.append(current)
            if first_only:
                return out
            current, size = [], 0
        current.append(item)
        size += cost
    if current:
        out.append(current)
    return out


class _Drain:
    def __init__(
        self, state: AgentState, outbox: Outbox, result: DrainResult, config_version: int
    ) -> None:
        self.state = state
        self.outbox = outbox
        self.result = result
        self.config_version = config_version
        # The verdicts the agent holds (kept from an earlier drain, or this one's newest).
        self.held = state.load_verdicts()
        # Why an acknowledged report could not be removed (a state folder made read-only):
        # the drain stops after the call that found it (OUTBOX_STUCK), since every report
        # sent from then on would stay, to be sent again.
        self.stuck: OSError | None = None

    @property
    def verdicts_held(self) -> bytes:
        """What the collector is told the agent holds: it then sends verdicts only when they
        changed (an older collector sends them every time)."""
        return self.held.verdicts_digest if self.held is not None and self.held.verdicts else b""

    def delivered(self, item: Pending, ack: pb.ReportAck) -> None:
        try:
            self.outbox.remove(item)
        except OSError as exc:
            # Stored by the collector all the same: it counts as delivered, and its copy is
            # acknowledged as a duplicate once it can be removed. The exception escaped the
            # drain, and every retry sent the batch again, a traceback each time.
            if self.stuck is None:
                log.warning("acknowledged reports cannot be removed from the outbox (%s)",
                            exc.strerror or exc)  # fmt: skip
            self.stuck = exc
        (self.result.duplicates if ack.duplicate else self.result.acknowledged).append(
            ack.report_id
        )
        self.result.last_ack = ack
        self.result.newest_delivered = item.report
        self._judged(ack)

    def _judged(self, ack: pb.ReportAck) -> None:
        """Keep the verdicts an acknowledgement brings, or those it says still stand (then
        dated by its report)."""
        if ack.verdicts:
            verdicts = ack.verdicts
        elif (ack.verdicts_unchanged and self.held is not None
              and ack.verdicts_digest == self.held.verdicts_digest):  # fmt: skip
            verdicts = self.held.verdicts
        else:  # an older report's acknowledgement in a batch: no verdicts
            return
        self.held = pb.ReportAck(
            report_id=ack.report_id, stored_at=ack.stored_at, verdicts=verdicts,
            verdicts_digest=ack.verdicts_digest,
        )  # fmt: skip
        self.result.verdicts = self.held

    def new_config(self, config: pb.AgentConfig) -> None:
        try:
            self.state.save_config(config)
        except OSError as exc:  # a full or read-only state folder: the next answer brings it
            log.warning("the collector's new configuration cannot be saved (%s)",
                        exc.strerror or exc)  # fmt: skip
        self.config_version = config.version
        self.result.config = config

    def set_aside(self, item: Pending, reason: str) -> None:
        self.outbox.set_aside(item.path, reason)
        self.result.set_aside.append(item.report.report_id)

    def failed(self, exc: grpc.RpcError) -> None:
        """Record the call that stopped draining (pushback, or the collector unreachable)."""
        back_off, hint = retry_hint(exc)
        if back_off:
            self.result.retry_after = hint
        self.result.stopped_by = describe(exc)
        self.result.stopped_worded = worded_detail(exc)


def _send_unary(
    drain: _Drain, channel: grpc.Channel, items: Sequence[Pending],
    should_stop: Callable[[], bool],
) -> None:  # fmt: skip
    """One Report call per report, to a collector that does not know ReportBatch."""
    for item in items:
        if should_stop():
            drain.result.stopped_by = STOPPING
            return
        drain.result.calls += 1
        try:
            ack = send_report(
                channel, item.report, drain.config_version, should_stop, drain.verdicts_held
            )
        except Stopped:
            drain.result.stopped_by = STOPPING
            return
        except grpc.RpcError as exc:
            code, _ = status_of(exc)
            back_off, _hint = retry_hint(exc)
            if code in _PERMANENT and not back_off:
                drain.set_aside(item, describe(exc))
                continue
            drain.failed(exc)
            return
        drain.delivered(item, ack)
        if ack.HasField("config"):
            drain.new_config(ack.config)
        if drain.stuck is not None:
            drain.result.stopped_by = OUTBOX_STUCK
            return


# A rejection names its report by the first this many characters of its id: the id is not
# bounded before it is refused (collector/service.py).
_REJECTED_ID_CHARS = 64


def _apply_batch(drain: _Drain, items: Sequence[Pending], response: pb.ReportBatchResponse) -> int:
    """Act on the collector's answer to `items`; how many of them it answered for."""
    acks = {ack.report_id: ack for ack in response.acks}
    rejections = {r.report_id: r for r in response.rejections}
    named: set[str] = set()  # the ids of the answers that named one of `items`
    answered = 0
    for item in items:  # oldest first, so last_ack ends up the newest report's
        report_id = item.report.report_id
        rejected = report_id if report_id in rejections else report_id[:_REJECTED_ID_CHARS]
        if report_id in acks:
            drain.delivered(item, acks[report_id])
            named.add(report_id)
            answered += 1
        elif rejected in rejections:
            # A rejection is final for this report as it is: keeping it would block the rest.
            # (One with an id longer than the collector repeats was left, the batch taken
            # for answered, and the outbox for one that cannot delete, at every round.)
            rejection = rejections[rejected]
            name = _CODE_NAMES.get(rejection.code, f"code {rejection.code}")
            drain.set_aside(item, f"{name}: {rejection.message}")
            named.add(rejected)
            answered += 1
        # Neither: the collector did not get to it; it stays for the next drain.
    unknown = (set(acks) | set(rejections)) - named
    if unknown:
        log.warning("the collector answered for reports it was not sent: %s", sorted(unknown))
    if response.HasField("config"):
        drain.new_config(response.config)
    return answered


def _send_batches(
    drain: _Drain, channel: grpc.Channel, pending: Sequence[Pending],
    should_stop: Callable[[], bool],
) -> tuple[bool, list[Pending]]:  # fmt: skip
    """ReportBatch calls until done. Returns (go on, what is left to send unary): the second
    is non-empty when the collector does not know ReportBatch."""
    budget = MAX_BATCH_BYTES
    queue = list(pending)
    while queue:
        if should_stop():
            drain.result.stopped_by = STOPPING
            return False, []
        batch = batches(queue, budget, first_only=True)[0]
        drain.result.calls += 1
        try:
            response = send_batch(
                channel, [item.report for item in batch], drain.config_version, should_stop,
                drain.verdicts_held,
            )  # fmt: skip
        except Stopped:
            drain.result.stopped_by = STOPPING
            return False, []
        except grpc.RpcError as exc:
            code, _ = status_of(exc)
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return True, queue
            back_off, _hint = retry_hint(exc)
            if code in _PERMANENT and not back_off:
                # The call as a whole was refused: too large for this collector's message
                # limit (RESOURCE_EXHAUSTED without a hint), or more than it takes at once.
                # Smaller batches; a single report refused so is set aside, as by Report.
                if len(batch) == 1:
                    drain.set_aside(batch[0], describe(exc))
                    queue.pop(0)
                else:
                    budget = max(1, sum(i.report.ByteSize() for i in batch) // 2)
                continue
            drain.failed(exc)
            return False, []
        answered = _apply_batch(drain, batch, response)
        if drain.stuck is not None:
            drain.result.stopped_by = OUTBOX_STUCK
            return False, []
        if not answered:
            drain.result.stopped_by = NONE_ANSWERED
            return False, []
        del queue[: len(batch)]
        if answered < len(batch):
            # The collector stopped part-way (it is busy): the rest waits for the next drain.
            drain.result.stopped_by = PART_ANSWERED
            return False, []
    return True, []


def drain(
    state: AgentState, enrollment: Enrollment, outbox: Outbox,
    *, should_stop: Callable[[], bool] | None = None,
) -> DrainResult:  # fmt: skip
    """Send every pending report, oldest first; delete each only after its acknowledgement.

    `should_stop` is asked between calls (the service is shutting down)."""
    result = DrainResult()
    pending = outbox.pending(limit=DRAIN_CHUNK)
    if not pending:
        return result
    stopping = should_stop or (lambda: False)
    drainer = _Drain(state, outbox, result, state.config_version())
    address = CollectorAddress(enrollment.collector_host, enrollment.report_port).target()
    with open_channel(state, enrollment) as channel:
        while pending:
            with _UNARY_LOCK:
                unary = address in _UNARY_ONLY
            if not unary:
                go_on, rest = _send_batches(drainer, channel, pending, stopping)
                if rest:
                    log.info("the collector at %s does not know ReportBatch: one by one", address)
                    with _UNARY_LOCK:
                        _UNARY_ONLY.add(address)
                    pending, unary = rest, True
                elif not go_on:
                    return result
            if unary:
                result.batched = False
                _send_unary(drainer, channel, pending, stopping)
                if result.stopped_by is not None:
                    return result
            # The next chunk. Every report of this one left the outbox (delivered or set
            # aside); a report that is still first means the outbox cannot delete: stop.
            first = pending[0].path.name
            pending = outbox.pending(limit=DRAIN_CHUNK)
            if pending and pending[0].path.name == first:
                result.stopped_by = OUTBOX_STUCK
                return result
    return result
