"""Report ingest over real mutual TLS: identity from the certificate, idempotence, limits."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from devposture.agent.outbox import Outbox
from devposture.agent.state import Enrollment
from devposture.agent.transport import drain, open_channel, send_report
from devposture.collector.ingest import GroupCommitter
from devposture.collector.pki import Authority, cert_pem, new_private_key, private_key_pem
from devposture.net.rpc_status import retry_hint
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, make_report


def _stored(collector: LiveCollector) -> list[str]:
    store = collector.store()
    try:
        return store.reports.report_ids()
    finally:
        store.close()


def test_report_is_acknowledged_after_it_is_stored(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    with open_channel(agent.state, agent.enrollment) as channel:
        ack = send_report(channel, report)
    assert ack.report_id == report.report_id and not ack.duplicate
    # A separate connection sees it: the ack came after the commit.
    assert _stored(live_collector) == [report.report_id]
    store = live_collector.store()
    try:
        body = store.reports.report_body(report.report_id)
    finally:
        store.close()
    assert body is not None and pb.PostureReport.FromString(body) == report


def test_same_report_twice_is_stored_once_and_acknowledged_twice(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    with open_channel(agent.state, agent.enrollment) as channel:
        first = send_report(channel, report)
        second = send_report(channel, report)
    assert not first.duplicate
    assert second.duplicate
    assert _stored(live_collector) == [report.report_id]


def test_a_report_id_sent_again_with_other_facts_is_acknowledged_as_stored(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # The firewall on, stored; then the same report id with the firewall off. The duplicate's
    # acknowledgement told the employee FAIL while IT's reports said PASS: now both say what
    # was stored, for a unary call and for a batch.
    device_id = agent.enrollment.device_id
    kept = make_report(device_id)
    other = make_report(device_id, firewall_enabled=False)
    other.report_id = kept.report_id

    def firewall(ack: pb.ReportAck) -> str:
        return next(v.state for v in ack.verdicts if v.check_id == "firewall")

    with open_channel(agent.state, agent.enrollment) as channel:
        first = send_report(channel, kept)
        again = send_report(channel, other)
        batch = pb_grpc.CollectorStub(channel).ReportBatch(
            pb.ReportBatchRequest(reports=[other]), timeout=30
        )
    assert firewall(first) == "PASS" and not first.duplicate
    assert again.duplicate and firewall(again) == "PASS"
    (acked,) = batch.acks
    assert acked.duplicate and firewall(acked) == "PASS"
    # The same facts sent again are judged as sent (no read needed): still PASS.
    with open_channel(agent.state, agent.enrollment) as channel:
        assert firewall(send_report(channel, kept)) == "PASS"
    assert _stored(live_collector) == [kept.report_id]


def test_an_empty_report_is_bad_input_not_another_device(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # It was refused PERMISSION_DENIED ("the report names device ''"): a client's mistake,
    # not an impersonation.
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        pb_grpc.CollectorStub(channel).Report(pb.ReportRequest(report=pb.PostureReport()),
                                              timeout=30)  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "device_id is empty" in str(caught.value.details())
    assert _stored(live_collector) == []


def test_report_naming_another_device_is_refused_and_not_stored(
    live_collector: LiveCollector, agent: EnrolledAgent, tmp_path: Path
) -> None:
    other = enroll_agent(live_collector, tmp_path / "other", "other-host")
    forged = make_report(other.enrollment.device_id)
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        send_report(channel, forged)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "client certificate is device " + agent.enrollment.device_id in str(
        caught.value.details()
    )
    assert _stored(live_collector) == []


def test_report_larger_than_the_limit_is_refused_and_not_stored(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    report.host.hostname = "x" * (live_collector.config.max_report_bytes + 1)
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        send_report(channel, report)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _stored(live_collector) == []


def test_report_without_client_certificate_is_unauthenticated(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # The enrollment port speaks TLS without asking for a client certificate.
    credentials = grpc.ssl_channel_credentials(root_certificates=agent.state.ca_path.read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{live_collector.enroll_port}", credentials)
    with channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.CollectorStub(channel).Report(
            pb.ReportRequest(report=make_report(agent.enrollment.device_id)), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _stored(live_collector) == []


def test_client_certificate_from_another_ca_cannot_connect(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    rogue_ca = Authority.create("rogue")
    key = new_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    _, rogue_cert = rogue_ca.sign_device_csr(
        csr.public_bytes(serialization.Encoding.PEM), dt.timedelta(days=1)
    )
    credentials = grpc.ssl_channel_credentials(
        root_certificates=agent.state.ca_path.read_bytes(),
        private_key=private_key_pem(key),
        certificate_chain=cert_pem(rogue_cert),
    )
    channel = grpc.secure_channel(f"127.0.0.1:{live_collector.report_port}", credentials)
    with channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.CollectorStub(channel).Report(
            pb.ReportRequest(report=make_report(agent.enrollment.device_id)), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _stored(live_collector) == []


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "6F9619FF-8B86-D011-B42D-00C04FC964FF"])
def test_report_id_must_be_a_uuid(
    live_collector: LiveCollector, agent: EnrolledAgent, bad_id: str
) -> None:
    report = make_report(agent.enrollment.device_id)
    report.report_id = bad_id
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        send_report(channel, report)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _stored(live_collector) == []


def test_report_without_collection_time_is_invalid(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    report.ClearField("collected_at")
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        send_report(channel, report)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_outbox_drain_sends_oldest_first_and_deletes_only_acknowledged(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    outbox = Outbox(agent.state.outbox_dir)
    now = dt.datetime.now(dt.UTC)
    older = make_report(agent.enrollment.device_id, now - dt.timedelta(hours=1))
    newer = make_report(agent.enrollment.device_id, now)
    invalid = make_report(agent.enrollment.device_id, now - dt.timedelta(minutes=30))
    invalid.report_id = "not-a-uuid"
    for report in (newer, invalid, older):
        outbox.put(report)
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.acknowledged == [older.report_id, newer.report_id]
    assert result.set_aside == ["not-a-uuid"]
    assert result.stopped_by is None
    assert outbox.pending() == []
    assert outbox.rejected_count() == 1
    assert _stored(live_collector) == [older.report_id, newer.report_id]


def test_outbox_keeps_reports_while_the_collector_is_down(
    agent: EnrolledAgent, tmp_path: Path
) -> None:
    outbox = Outbox(agent.state.outbox_dir)
    report = make_report(agent.enrollment.device_id)
    outbox.put(report)
    closed = Enrollment(**{**agent.enrollment.__dict__, "report_port": 1})
    result = drain(agent.state, closed, outbox)
    assert result.stopped_by is not None and result.stopped_by.startswith("UNAVAILABLE")
    assert [p.report.report_id for p in outbox.pending()] == [report.report_id]


def test_a_report_the_database_fails_to_store_is_pushed_back_with_a_retry_hint(
    live_collector: LiveCollector, agent: EnrolledAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An outage the store met (PostgreSQL restarting, an I/O error): UNAVAILABLE "retry
    # later" without a hint, in English only; the agent came back at its own pace.
    async def failing(self: GroupCommitter, items: object) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(GroupCommitter, "store", failing)
    outbox = Outbox(agent.state.outbox_dir)
    report = make_report(agent.enrollment.device_id)
    outbox.put(report)
    with open_channel(agent.state, agent.enrollment) as channel, pytest.raises(
        grpc.RpcError
    ) as caught:
        send_report(channel, report)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = str(caught.value.details())
    assert details.startswith("the collector could not store the report (采集器暂时无法保存报告):"
                              " it is kept on your computer; retry in ")  # fmt: skip
    pushed, after = retry_hint(caught.value)
    assert pushed and after is not None and 5.0 <= after <= 10.0
    result = drain(agent.state, agent.enrollment, outbox)
    assert result.retry_after is not None and 5.0 <= result.retry_after <= 10.0
    assert [p.report.report_id for p in outbox.pending()] == [report.report_id]
    assert _stored(live_collector) == []
