"""What the enrollment port refuses, over real TLS, before it trusts anything (threat model rows
3, 8, 12 and 14): calls that need the report port, requests over 16 KiB, a certificate that
expired more than 365 days ago, and a token for more than 10,000 devices."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.enroll import make_csr
from devposture.agent.transport import open_channel
from devposture.collector.admin.commands import MAX_TOKEN_USES
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.pki import Authority, cert_pem, device_id_for_certificate
from devposture.collector.renewal import (
    MAX_EXPIRED,
    MAX_PEM_BYTES,
    ProofRejected,
    verify_reestablish,
)
from devposture.collector.service import MAX_CSR_BYTES
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from devposture.v1.proofs import reestablish_payload
from tests.conftest import EnrolledAgent, LiveCollector, host_info, make_report


def _enroll_port(collector: LiveCollector) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(collector.config.ca_cert.read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{collector.enroll_port}", credentials)


def _csr(padding: int = 0) -> str:
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "device").decode()
    return csr + " " * padding


def test_report_batch_and_renew_at_the_enrollment_port_are_unauthenticated(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    with _enroll_port(live_collector) as channel:
        stub = pb_grpc.CollectorStub(channel)
        with pytest.raises(grpc.RpcError) as batch:
            stub.ReportBatch(pb.ReportBatchRequest(reports=[report]), timeout=30)
        with pytest.raises(grpc.RpcError) as renew:
            stub.Renew(pb.RenewRequest(csr_pem=_csr()), timeout=30)
    for refused in (batch.value, renew.value):
        assert isinstance(refused, grpc.Call)
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "client certificate" in (refused.details() or "")
    store = live_collector.store()
    try:
        assert store.reports.report_ids() == []
    finally:
        store.close()


def test_a_csr_over_16_kib_is_refused_before_the_token_is_spent(
    live_collector: LiveCollector,
) -> None:
    token = live_collector.token()
    oversized = _csr()
    oversized += " " * (MAX_CSR_BYTES + 1 - len(oversized))
    with _enroll_port(live_collector) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=oversized, host=host_info()), timeout=30
        )
    assert isinstance(refused.value, grpc.Call)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "csr_pem" in (refused.value.details() or "")
    # One byte less is a size the collector reads; the token was not spent by the refusal.
    with _enroll_port(live_collector) as channel:
        answer = pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=_csr(padding=64), host=host_info()),
            timeout=30,
        )
    assert answer.device_id


@pytest.fixture(scope="module")
def sm2_csr(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A request over an SM2 key (China's national curve, GB/T 32918), made by OpenSSL: a key
    the cryptography library cannot even read (UnsupportedAlgorithm)."""
    folder = tmp_path_factory.mktemp("sm2")
    key, csr = folder / "sm2.key", folder / "sm2.csr"
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True)
    subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=x", "-sm3",
                    "-out", str(csr)], check=True)  # fmt: skip
    return csr.read_text()


def test_a_request_over_a_key_the_collector_cannot_read_is_refused_as_bad_input(
    live_collector: LiveCollector, agent: EnrolledAgent, sm2_csr: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # It was answered UNKNOWN with a traceback in the log for each call, on a port anyone may
    # reach, and was not counted against the caller's address.
    token = live_collector.token()
    with _enroll_port(live_collector) as channel, pytest.raises(grpc.RpcError) as enroll:
        pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=sm2_csr, host=host_info()), timeout=30
        )
    with open_channel(agent.state, agent.enrollment) as channel, pytest.raises(
        grpc.RpcError
    ) as renew:
        pb_grpc.CollectorStub(channel).Renew(pb.RenewRequest(csr_pem=sm2_csr), timeout=30)
    reestablish = pb.ReestablishRequest(
        certificate_pem=agent.state.cert_path.read_text(), csr_pem=sm2_csr,
        signed_at=Timestamp(seconds=int(utcnow().timestamp())), signature=b"x",
    )  # fmt: skip
    with _enroll_port(live_collector) as channel, pytest.raises(grpc.RpcError) as proof:
        pb_grpc.CollectorStub(channel).Reestablish(reestablish, timeout=30)
    for refused, code in ((enroll.value, grpc.StatusCode.INVALID_ARGUMENT),
                          (renew.value, grpc.StatusCode.INVALID_ARGUMENT),
                          (proof.value, grpc.StatusCode.UNAUTHENTICATED)):  # fmt: skip
        assert isinstance(refused, grpc.Call)
        assert refused.code() == code, refused
        assert "ECDSA" in (refused.details() or ""), refused.details()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # The enrollment and the reestablishment count against the address, as every refusal
    # on that port does; the token was not spent.
    store = live_collector.store()
    try:
        (failed,) = store._db.execute("SELECT COUNT(*) FROM failed_guesses").fetchone()
        assert failed == 2
    finally:
        store.close()
    with _enroll_port(live_collector) as channel:
        answer = pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=_csr(), host=host_info()), timeout=30
        )
    assert answer.device_id


def test_two_csrs_in_one_request_are_refused_before_the_token_is_spent(
    live_collector: LiveCollector,
) -> None:
    # The PEM loader reads the first request and dropped the second without a word: a client
    # that sent two (another language's library, a script) got a certificate for one of them.
    token = live_collector.token()
    with _enroll_port(live_collector) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=_csr() + _csr(), host=host_info()), timeout=30
        )
    assert isinstance(refused.value, grpc.Call)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "one PEM certificate request, not 2" in (refused.value.details() or "")
    with _enroll_port(live_collector) as channel:
        answer = pb_grpc.CollectorStub(channel).Enroll(
            pb.EnrollRequest(token=token, csr_pem=_csr(), host=host_info()), timeout=30
        )
    assert answer.device_id


def test_a_renewal_csr_over_16_kib_is_refused(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    oversized = pb.RenewRequest(csr_pem=_csr(padding=MAX_CSR_BYTES))
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        pb_grpc.CollectorStub(channel).Renew(oversized, timeout=30)
    assert isinstance(refused.value, grpc.Call)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _reestablish_request(
    authority: Authority, key: ec.EllipticCurvePrivateKey, expired_days_ago: float,
    now: dt.datetime,
) -> pb.ReestablishRequest:  # fmt: skip
    """A well-formed proof over a certificate of `authority` that expired that long ago."""
    until = now - dt.timedelta(days=expired_days_ago)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(until - dt.timedelta(days=14))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(authority.key, hashes.SHA256())
    )
    csr = make_csr(key, "device").decode()
    signed_at = int(now.timestamp())
    serial = format(cert.serial_number, "x")
    payload = reestablish_payload(device_id_for_certificate(cert), serial, signed_at, csr)
    return pb.ReestablishRequest(
        certificate_pem=cert_pem(cert).decode(), csr_pem=csr,
        signed_at=Timestamp(seconds=signed_at),
        signature=key.sign(payload, ec.ECDSA(hashes.SHA256())),
    )  # fmt: skip


def test_a_certificate_expired_for_longer_than_365_days_cannot_reestablish() -> None:
    authority = Authority.create()
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    within = _reestablish_request(authority, key, MAX_EXPIRED.days - 1, now)
    assert verify_reestablish(within, [authority.cert], now).device_id
    beyond = _reestablish_request(authority, key, MAX_EXPIRED.days + 1, now)
    with pytest.raises(ProofRejected, match="expired more than 365 days ago"):
        verify_reestablish(beyond, [authority.cert], now)


def test_a_reestablishment_over_16_kib_is_refused_unread(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    request = pb.ReestablishRequest(
        certificate_pem=agent.state.cert_path.read_text() + " " * MAX_PEM_BYTES,
        csr_pem=_csr(),
    )
    with _enroll_port(live_collector) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.CollectorStub(channel).Reestablish(request, timeout=30)
    assert isinstance(refused.value, grpc.Call)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "must each hold one PEM object" in (refused.value.details() or "")


def test_a_token_enrolls_at_most_10000_devices(
    live_collector: LiveCollector, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(live_collector.config.data_dir)
    too_many = str(MAX_TOKEN_USES + 1)
    assert collector_cli(["token", "create", "--uses", too_many, "--data", data]) == 1
    assert "--uses must be at most 10000" in capsys.readouterr().err
    assert collector_cli(["token", "create", "--uses", str(MAX_TOKEN_USES), "--data", data]) == 0
    created = capsys.readouterr()
    assert created.out.startswith("dpt_") and "enrolls 10000 devices" in created.err
