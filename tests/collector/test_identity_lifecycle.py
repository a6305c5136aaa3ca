"""Device identity over its life, against a real collector over real mutual TLS: renewal,
reestablishment after expiry, revocation, clones, N-use tokens. Each test names the protection
it proves; each fails when that protection is taken out."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.cert_dates import read_validity
from devposture.agent.enroll import make_csr
from devposture.agent.renewal import (
    LONGEST_RETRY,
    Outcome,
    ensure_fresh_certificate,
    renewal_due,
    retry_delay,
)
from devposture.agent.state import AgentState, Enrollment, write_atomic
from devposture.agent.transport import open_channel, send_report
from devposture.collector.clock import utcnow
from devposture.collector.pki import BACKDATE, Authority, cert_pem
from devposture.collector.server import CONNECTION_AGE_GRACE_MS
from devposture.collector.store.identity import DeviceRecord, EnrollRefused, TokenRejected
from devposture.collector.tokens import new_token
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from devposture.v1.proofs import reestablish_payload
from tests.conftest import (
    EnrolledAgent,
    LiveCollector,
    enroll_agent,
    make_report,
    running_collector,
)


def _cert(state: AgentState) -> x509.Certificate:
    return x509.load_pem_x509_certificate(state.cert_path.read_bytes())


def _send(agent: EnrolledAgent) -> pb.ReportAck:
    with open_channel(agent.state, agent.enrollment) as channel:
        return send_report(channel, make_report(agent.enrollment.device_id))


def _renew_now(agent: EnrolledAgent) -> Outcome:
    return ensure_fresh_certificate(agent.state, agent.enrollment, utcnow(), force=True).outcome


def _details(call: object) -> str:
    assert isinstance(call, grpc.Call)
    return call.details() or ""


def _code(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.Call)
    return call.code()


def _device(collector: LiveCollector, device_id: str):  # type: ignore[no-untyped-def]
    store = collector.store()
    try:
        return next(d for d in store.identity.devices() if d.device_id == device_id)
    finally:
        store.close()


# --- renewal -------------------------------------------------------------------------------


def test_renewal_is_due_when_a_third_of_the_lifetime_is_left(agent: EnrolledAgent) -> None:
    validity = read_validity(agent.state.cert_path.read_bytes())
    assert not renewal_due(validity, validity.not_before + validity.lifetime * 0.6)
    assert renewal_due(validity, validity.not_before + validity.lifetime * 0.7)


def test_renewal_over_mtls_keeps_the_key_and_raises_the_generation(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    before = _cert(agent.state)
    _send(agent)
    result = ensure_fresh_certificate(agent.state, agent.enrollment, utcnow(), force=True)
    assert result.outcome is Outcome.RENEWED, result.detail
    after = _cert(agent.state)
    assert after.serial_number != before.serial_number
    assert after.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == before.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert not _send(agent).duplicate
    device = _device(live_collector, agent.enrollment.device_id)
    assert device.generation == 2 and device.clone_suspected_at is None


def test_short_lived_certificates_follow_the_configured_lifetime(tmp_path: Path) -> None:
    with running_collector(tmp_path / "c", device_certificate_days=3) as collector:
        cert = _cert(enroll_agent(collector, tmp_path / "a").state)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3) <= lifetime <= dt.timedelta(days=3) + BACKDATE
    # Valid from an hour before it was issued: a collector whose clock ran ahead and is set
    # back still accepts it (and the agents' clocks behind still accept the server's).
    assert dt.datetime.now(dt.UTC) - cert.not_valid_before_utc >= BACKDATE


def test_a_failed_renewal_keeps_the_old_certificate_and_backs_off(
    live_collector: LiveCollector, agent: EnrolledAgent, caplog: pytest.LogCaptureFixture
) -> None:
    before = agent.state.cert_path.read_bytes()
    unreachable = Enrollment(**{**agent.enrollment.__dict__, "report_port": 1})
    now = utcnow()
    with caplog.at_level(logging.WARNING, logger="devposture.agent.renewal"):
        first = ensure_fresh_certificate(agent.state, unreachable, now, force=True)
    assert first.outcome is Outcome.FAILED
    # Its warning, which `renew` shows the person beside the error, gives the next attempt in
    # the company's time zone (Beijing by default), not in UTC.
    (warning,) = [r.getMessage() for r in caplog.records if "renewal failed" in r.getMessage()]
    assert "next attempt after 20" in warning and warning.endswith("(UTC+08:00)"), warning
    assert agent.state.cert_path.read_bytes() == before
    # Due but backing off: no second attempt until the retry time.
    due = _cert(agent.state).not_valid_after_utc - dt.timedelta(hours=1)
    assert ensure_fresh_certificate(agent.state, unreachable, now).outcome is Outcome.NOT_DUE
    assert ensure_fresh_certificate(agent.state, unreachable, due).outcome is Outcome.FAILED
    backing = ensure_fresh_certificate(agent.state, unreachable, due + dt.timedelta(seconds=1))
    assert backing.outcome is Outcome.BACKING_OFF
    # Once the collector is reachable again, renewal goes through and the backoff is cleared.
    assert ensure_fresh_certificate(agent.state, agent.enrollment, now, force=True).outcome is (
        Outcome.RENEWED
    )
    assert not (agent.state.directory / "renewal.json").exists()


def test_retry_delays_grow_and_are_bounded() -> None:
    delays = [retry_delay(n) for n in range(1, 20)]
    assert delays[0] <= dt.timedelta(minutes=5)
    assert delays[5] > delays[0]
    assert max(delays) <= LONGEST_RETRY


def test_renewal_request_over_another_key_is_refused(agent: EnrolledAgent) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with (
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        pb_grpc.CollectorStub(channel).Renew(
            pb.RenewRequest(csr_pem=make_csr(other, "x").decode()), timeout=10
        )
    assert _code(refused.value) == grpc.StatusCode.PERMISSION_DENIED


# --- reestablishment -----------------------------------------------------------------------


def _expire_certificate(collector: LiveCollector, agent: EnrolledAgent) -> None:
    """Give the agent a certificate that the collector issued and that has since expired, as
    after a laptop was away for longer than the certificate's lifetime."""
    config = collector.config
    authority = Authority.load(config.ca_key.read_bytes(), config.ca_cert.read_bytes())
    current = _cert(agent.state)
    now = utcnow()
    expired = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(authority.cert.subject)
        .public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=20))
        .not_valid_after(now - dt.timedelta(days=6))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(authority.key, hashes.SHA256())
    )
    store = collector.store()
    try:
        store.identity.record_renewal(
            agent.enrollment.device_id, format(expired.serial_number, "x"),
            expired.not_valid_after_utc, now - dt.timedelta(days=20), action="renewed",
        )  # fmt: skip
    finally:
        store.close()
    write_atomic(agent.state.cert_path, cert_pem(expired))


def test_an_expired_certificate_cannot_report_but_reestablishes_without_a_token(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    _expire_certificate(live_collector, agent)
    with pytest.raises(grpc.RpcError) as refused:
        _send(agent)
    assert _code(refused.value) == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    result = ensure_fresh_certificate(agent.state, agent.enrollment, utcnow())
    assert result.outcome is Outcome.REESTABLISHED, result.detail
    assert _cert(agent.state).not_valid_after_utc > utcnow()
    assert not _send(agent).duplicate


def test_a_revoked_device_cannot_reestablish(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    _expire_certificate(live_collector, agent)
    store = live_collector.store()
    try:
        assert store.identity.set_device_status(
            agent.enrollment.device_id, "revoked", utcnow(), "lost"
        )
    finally:
        store.close()
    result = ensure_fresh_certificate(agent.state, agent.enrollment, utcnow())
    assert result.outcome is Outcome.FAILED
    detail = str(result.detail)
    assert "PERMISSION_DENIED" in detail and "revoked" in detail


def _reestablish_request(
    state: AgentState, device_id: str, key: ec.EllipticCurvePrivateKey, signed_at: int
) -> pb.ReestablishRequest:
    own = serialization.load_pem_private_key(state.key_path.read_bytes(), password=None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    csr = make_csr(own, "x").decode()
    serial = format(_cert(state).serial_number, "x")
    payload = reestablish_payload(device_id, serial, signed_at, csr)
    return pb.ReestablishRequest(
        certificate_pem=state.cert_path.read_text(), csr_pem=csr,
        signed_at=Timestamp(seconds=signed_at),
        signature=key.sign(payload, ec.ECDSA(hashes.SHA256())),
    )  # fmt: skip


def _reestablish(collector: LiveCollector, request: pb.ReestablishRequest) -> pb.RenewResponse:
    credentials = grpc.ssl_channel_credentials(collector.config.ca_cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{collector.enroll_port}", credentials) as channel:
        response: pb.RenewResponse = pb_grpc.CollectorStub(channel).Reestablish(request, timeout=10)
    return response


def test_reestablishment_needs_the_key_and_refuses_a_replay(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    device_id = agent.enrollment.device_id
    now = int(time.time())
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(grpc.RpcError) as forged:
        _reestablish(live_collector, _reestablish_request(agent.state, device_id, stranger, now))
    assert _code(forged.value) == grpc.StatusCode.UNAUTHENTICATED
    own = serialization.load_pem_private_key(agent.state.key_path.read_bytes(), password=None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    # Signed three days ago: outside the window, though no proof was accepted before it.
    stale = _reestablish_request(agent.state, device_id, own, now - 3 * 86400)
    with pytest.raises(grpc.RpcError) as too_old:
        _reestablish(live_collector, stale)
    assert _code(too_old.value) == grpc.StatusCode.UNAUTHENTICATED
    assert "a day away" in _details(too_old.value)
    request = _reestablish_request(agent.state, device_id, own, now)
    assert _reestablish(live_collector, request).generation == 2
    with pytest.raises(grpc.RpcError) as replayed:
        _reestablish(live_collector, request)
    assert _code(replayed.value) == grpc.StatusCode.UNAUTHENTICATED
    assert "replay" in _details(replayed.value)


def test_reestablishment_with_an_impossible_signing_time_is_refused_not_crashed(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    # A client in another language may send any Timestamp: each is a refusal of the proof
    # (counted by the enrollment port's throttle), never an UNKNOWN from a ValueError.
    own = serialization.load_pem_private_key(agent.state.key_path.read_bytes(), password=None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    request = _reestablish_request(agent.state, agent.enrollment.device_id, own, int(time.time()))
    for signed_at in (Timestamp(seconds=1, nanos=-1), Timestamp(seconds=253_402_300_800),
                      Timestamp(seconds=2**63 - 1)):  # fmt: skip
        request.signed_at.CopyFrom(signed_at)
        with pytest.raises(grpc.RpcError) as refused:
            _reestablish(live_collector, request)
        assert _code(refused.value) == grpc.StatusCode.UNAUTHENTICATED
        assert "signed_at is not a valid time" in _details(refused.value)


# --- revocation ----------------------------------------------------------------------------


def test_a_revoked_device_is_refused_at_once_and_its_connection_is_cut(tmp_path: Path) -> None:
    with running_collector(tmp_path / "c", max_connection_age_seconds=2.0) as collector:
        agent = enroll_agent(collector, tmp_path / "a")
        states: list[grpc.ChannelConnectivity] = []
        with open_channel(agent.state, agent.enrollment) as channel:
            channel.subscribe(states.append)
            send_report(channel, make_report(agent.enrollment.device_id))
            store = collector.store()
            try:
                assert store.identity.set_device_status(
                    agent.enrollment.device_id, "revoked", utcnow(), "laptop stolen"
                )
                kept = store.reports.report_ids(agent.enrollment.device_id)
            finally:
                store.close()
            with pytest.raises(grpc.RpcError) as refused:
                send_report(channel, make_report(agent.enrollment.device_id))
            assert _code(refused.value) == grpc.StatusCode.PERMISSION_DENIED
            assert "revoked" in _details(refused.value)
            states.clear()
            deadline = time.monotonic() + 15
            while grpc.ChannelConnectivity.IDLE not in states and time.monotonic() < deadline:
                time.sleep(0.1)
            assert grpc.ChannelConnectivity.IDLE in states, "the connection was not cut"
        assert len(kept) == 1  # the history stays for the audit
        device = _device(collector, agent.enrollment.device_id)
        assert device.status == "revoked" and device.status_reason == "laptop stolen"


def test_connections_are_cut_within_a_minute_by_default(live_collector: LiveCollector) -> None:
    age = live_collector.config.max_connection_age_seconds
    assert age + CONNECTION_AGE_GRACE_MS / 1000 <= 60


# --- clones --------------------------------------------------------------------------------


def test_a_copied_state_folder_is_flagged_and_refused(
    live_collector: LiveCollector, agent: EnrolledAgent, tmp_path: Path
) -> None:
    copy_dir = tmp_path / "second-computer"
    shutil.copytree(agent.state.directory, copy_dir)
    clone = EnrolledAgent(AgentState(copy_dir), agent.enrollment)
    _send(agent)
    _send(clone)  # indistinguishable until one of them renews
    assert _renew_now(agent) is Outcome.RENEWED
    _send(agent)
    with pytest.raises(grpc.RpcError) as refused:
        _send(clone)
    assert _code(refused.value) == grpc.StatusCode.PERMISSION_DENIED
    assert "another computer" in _details(refused.value)
    device = _device(live_collector, agent.enrollment.device_id)
    assert device.clone_suspected_at is not None
    assert not _send(agent).duplicate  # the computer holding the newest certificate goes on
    store = live_collector.store()
    try:
        actions = [a for _, a, _, _ in store.identity.device_events(agent.enrollment.device_id)]
    finally:
        store.close()
    assert actions == ["enrolled", "renewed", "clone suspected"]


def test_a_renewal_answer_lost_in_a_crash_is_not_a_clone(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    _send(agent)
    own = serialization.load_pem_private_key(agent.state.key_path.read_bytes(), password=None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    with open_channel(agent.state, agent.enrollment) as channel:
        # The collector issues generation 2; the agent dies before saving it.
        lost = pb_grpc.CollectorStub(channel).Renew(
            pb.RenewRequest(csr_pem=make_csr(own, "x").decode()), timeout=10
        )
    assert lost.generation == 2
    _send(agent)  # restarted with the old certificate
    assert _renew_now(agent) is Outcome.RENEWED
    _send(agent)
    device = _device(live_collector, agent.enrollment.device_id)
    assert device.generation == 3 and device.clone_suspected_at is None


# --- tokens --------------------------------------------------------------------------------


def test_an_n_use_token_enrolls_n_devices_and_a_revoked_token_none(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    store = live_collector.store()
    try:
        token, now = new_token(), utcnow()
        store.identity.add_token(token, now, now + dt.timedelta(hours=1), uses=2)
        for n in (1, 2):
            store.identity.enroll(
                token, now, DeviceRecord(f"d{n}", f"s{n}", now + dt.timedelta(days=1))
            )
        with pytest.raises(TokenRejected, match="used up"):
            store.identity.enroll(token, now, DeviceRecord("d3", "s3", now + dt.timedelta(days=1)))
        second = new_token()
        store.identity.add_token(second, now, now + dt.timedelta(hours=1), uses=5)
        assert store.identity.revoke_token(second.token_id, now)
        with pytest.raises(TokenRejected, match="revoked"):
            store.identity.enroll(second, now, DeviceRecord("d4", "s4", now + dt.timedelta(days=1)))
        statuses = {t.token_id: t.status(now) for t in store.identity.tokens()}
        assert statuses == {token.token_id: "used up", second.token_id: "revoked"}
    finally:
        store.close()


def test_a_revoked_device_key_cannot_enroll_again(live_collector: LiveCollector) -> None:
    store = live_collector.store()
    try:
        now = utcnow()
        first, second = new_token(), new_token()
        for t in (first, second):
            store.identity.add_token(t, now, now + dt.timedelta(hours=1), uses=1)
        store.identity.enroll(first, now, DeviceRecord("d1", "s1", now + dt.timedelta(days=1)))
        assert store.identity.set_device_status("d1", "retired", now, "decommissioned")
        with pytest.raises(EnrollRefused, match="retired"):
            store.identity.enroll(second, now, DeviceRecord("d1", "s2", now + dt.timedelta(days=1)))
        # Nothing spent on a refusal. (By token: both were made at the same moment, and rows
        # tied on created_us come back in no set order, on PostgreSQL after an UPDATE.)
        uses_left = {t.token_id: t.uses_left for t in store.identity.tokens()}
        assert uses_left == {first.token_id: 0, second.token_id: 1}
    finally:
        store.close()


def test_renewals_count_against_the_device_rate_limit(tmp_path: Path) -> None:
    with running_collector(
        tmp_path / "c", device_calls_per_minute=1, device_call_burst=2
    ) as collector:
        agent = enroll_agent(collector, tmp_path / "a")
        own = serialization.load_pem_private_key(agent.state.key_path.read_bytes(), None)
        assert isinstance(own, ec.EllipticCurvePrivateKey)
        request = pb.RenewRequest(csr_pem=make_csr(own, "x").decode())
        with open_channel(agent.state, agent.enrollment) as channel:
            stub = pb_grpc.CollectorStub(channel)
            stub.Renew(request, timeout=10)
            stub.Renew(request, timeout=10)
            with pytest.raises(grpc.RpcError) as limited:
                stub.Renew(request, timeout=10)
    assert _code(limited.value) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_reestablishment_needs_a_certificate_from_a_trusted_ca(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    own = serialization.load_pem_private_key(agent.state.key_path.read_bytes(), password=None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    foreign = Authority.create("someone else's CA")
    _, forged = foreign.sign_device_csr(make_csr(own, "x"), dt.timedelta(days=1))
    write_atomic(agent.state.cert_path, cert_pem(forged))
    request = _reestablish_request(agent.state, agent.enrollment.device_id, own, int(time.time()))
    with pytest.raises(grpc.RpcError) as refused:
        _reestablish(live_collector, request)
    assert _code(refused.value) == grpc.StatusCode.UNAUTHENTICATED
    assert "not signed by a CA this collector trusts" in _details(refused.value)
