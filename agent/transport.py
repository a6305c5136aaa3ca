"""Send reports to the collector over mutual TLS and drain the outbox.

Every call has a deadline. Which failures are worth retrying is decided here, from the gRPC
status: a report the collector refused as invalid will be refused again, so it is set aside;
an unreachable collector or an identity problem leaves the report in the outbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import grpc

from agent.enroll import CollectorAddress
from agent.outbox import Outbox
from agent.rpc_status import describe, status_of
from agent.state import AgentState, Enrollment
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

REPORT_DEADLINE_SECONDS = 30.0
# The collector will never accept these reports as they are: keeping them would block the rest.
# RESOURCE_EXHAUSTED is permanent only without a retry hint (the report is too large); with a
# `retry-after-ms` trailing metadata it means "this device is sending too often: back off".
_PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
RETRY_AFTER_KEY = "retry-after-ms"


def _retry_hint(exc: grpc.RpcError) -> tuple[bool, float | None]:
    """Whether the collector asked us to back off (a `retry-after-ms` trailing metadata on
    RESOURCE_EXHAUSTED), and for how many seconds when the hint is a number."""
    if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return False, None
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            try:
                millis = int(text)
            except ValueError:
                return True, None
            return True, max(0, millis) / 1000.0
    return False, None


@dataclass
class DrainResult:
    acknowledged: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    # Why sending stopped early, when it did; the remaining reports stay in the outbox.
    stopped_by: str | None = None
    # The acknowledgement of the newest report sent (its verdicts, maybe a new configuration).
    last_ack: pb.ReportAck | None = None
    # Seconds the collector asked this device to wait before sending again (rate limited).
    retry_after: float | None = None


def open_channel(state: AgentState, enrollment: Enrollment) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=state.ca_path.read_bytes(),
        private_key=state.key_path.read_bytes(),
        certificate_chain=state.cert_path.read_bytes(),
    )
    address = CollectorAddress(enrollment.collector_host, enrollment.report_port)
    return grpc.secure_channel(address.target(), credentials)


def send_report(
    channel: grpc.Channel, report: pb.PostureReport, config_version: int = 0
) -> pb.ReportAck:
    stub = pb_grpc.CollectorStub(channel)
    request = pb.ReportRequest(report=report, config_version=config_version)
    ack: pb.ReportAck = stub.Report(request, timeout=REPORT_DEADLINE_SECONDS, wait_for_ready=False)
    if ack.report_id != report.report_id:
        raise grpc.RpcError(f"the collector acknowledged {ack.report_id}, not {report.report_id}")
    return ack


def drain(state: AgentState, enrollment: Enrollment, outbox: Outbox) -> DrainResult:
    """Send every pending report, oldest first; delete each only after its acknowledgement."""
    result = DrainResult()
    pending = outbox.pending()
    if not pending:
        return result
    with open_channel(state, enrollment) as channel:
        for item in pending:
            try:
                ack = send_report(channel, item.report, state.config_version())
            except grpc.RpcError as exc:
                code, _ = status_of(exc)
                back_off, result.retry_after = _retry_hint(exc)
                if code in _PERMANENT and not back_off:
                    outbox.set_aside(item.path, describe(exc))
                    result.set_aside.append(item.report.report_id)
                    continue
                result.stopped_by = describe(exc)
                break
            outbox.remove(item)
            (result.duplicates if ack.duplicate else result.acknowledged).append(ack.report_id)
            if ack.HasField("config"):
                state.save_config(ack.config)
            result.last_ack = ack
    return result
