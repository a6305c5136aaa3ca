"""Server certificate hot reload and CA rollover against a real collector: real grpc.aio server,
real mutual TLS, real certificates. What a client sees is read off the wire with Python's ssl.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from devposture.agent.enroll import EnrollError, enroll
from devposture.agent.renewal import Outcome, ensure_fresh_certificate
from devposture.agent.state import AgentState
from devposture.agent.transport import open_channel, send_report
from devposture.collector import cli_pki
from devposture.collector.clock import utcnow
from devposture.collector.company_time import shown
from devposture.collector.datadir import initialize
from devposture.collector.issuing_ca import short_fingerprint
from devposture.collector.pki import Authority, fingerprint, new_private_key, private_key_pem
from devposture.collector.store.identity import RETIRED, REVOKED
from devposture.collector.trust import Stage, Trust, TrustError
from devposture.net.pinning import _unverified_chain
from tests.conftest import EnrolledAgent, LiveCollector, enroll_agent, host_info, make_report
from tests.databases import collector_database

# The collector looks at the files at most once a second; this leaves room for a slow machine.
RELOAD_WITHIN = 5.0
# TLS 1.3 ends the handshake on the client before the server has checked the client's
# certificate; the server's verdict arrives as an alert on the first read.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class Seen:
    """What one new TLS connection to the collector showed."""

    chain: list[x509.Certificate]
    accepted: bool  # the server went on talking HTTP/2 after the handshake

    @property
    def server(self) -> x509.Certificate:
        return self.chain[0]


def connect(port: int, client: tuple[bytes, bytes] | None = None, tmp: Path | None = None) -> Seen:
    """Open one new TLS connection (without verifying the server) and report what happened."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if client is not None:
        assert tmp is not None
        key_file, cert_file = tmp / "probe.key", tmp / "probe.crt"
        key_file.write_bytes(client[0])
        cert_file.write_bytes(client[1])
        context.load_cert_chain(cert_file, key_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        chain = [x509.load_der_x509_certificate(d) for d in _unverified_chain(tls)]
        try:
            tls.sendall(HTTP2_PREFACE)
            accepted = len(tls.recv(9)) > 0
        except (ssl.SSLError, OSError):
            accepted = False
    return Seen(chain, accepted)


def wait_for(condition: Callable[[], bool], within: float = RELOAD_WITHIN) -> float:
    """Seconds until `condition` held; fails the test if it never did."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within, "the collector did not pick up the change"
        time.sleep(0.1)
    return time.monotonic() - start


def report_ok(agent: EnrolledAgent) -> bool:
    """Send one report over a new channel (a new handshake), as the agent does."""
    with open_channel(agent.state, agent.enrollment) as channel:
        ack = send_report(channel, make_report(agent.enrollment.device_id))
    return bool(ack.report_id)


def agent_files(agent: EnrolledAgent) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in agent.state.directory.iterdir() if p.is_file()}


def device_cert(authority: Authority) -> tuple[bytes, bytes]:
    """A device key and a certificate for it signed by `authority`, as enrollment would make."""
    key = new_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe")]))
        .sign(key, hashes.SHA256())
    )
    _, cert = authority.sign_device_csr(csr.public_bytes(Encoding.PEM), dt.timedelta(days=1))
    return private_key_pem(key), cert.public_bytes(Encoding.PEM)


# -- server certificate rotation ------------------------------------------------------------


def test_rotated_server_certificate_is_served_without_restart_and_agents_notice_nothing(
    live_collector: LiveCollector, agent: EnrolledAgent, tmp_path: Path
) -> None:
    trust = Trust(live_collector.config)
    before = connect(live_collector.report_port).server.serial_number
    assert report_ok(agent)
    files = agent_files(agent)
    with open_channel(agent.state, agent.enrollment) as long_lived:
        send_report(long_lived, make_report(agent.enrollment.device_id))

        new = trust.rotate_server_certificate(["collector.example.com"])
        assert new.serial_number != before
        took = wait_for(
            lambda: connect(live_collector.report_port).server.serial_number == new.serial_number
        )
        print(f"new server certificate served after {took:.2f} s")
        assert connect(live_collector.enroll_port).server.serial_number == new.serial_number

        # A connection opened before the rotation goes on; a new one verifies the new
        # certificate against the CA the agent already holds.
        send_report(long_lived, make_report(agent.enrollment.device_id))
    assert report_ok(agent)
    assert agent_files(agent) == files
    names = new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "collector.example.com"} <= set(names.get_values_for_type(x509.DNSName))
    assert stat.S_IMODE(os.stat(live_collector.config.server_key).st_mode) == 0o600


def test_a_bad_server_key_is_refused_and_the_previous_certificate_kept(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    config = live_collector.config
    serving = connect(live_collector.report_port).server.serial_number
    good_key = config.server_key.read_bytes()
    # A key that does not belong to the certificate (as if a copy went wrong).
    other = config.server_key.with_name(".other")
    other.write_bytes(private_key_pem(new_private_key()))
    other.replace(config.server_key)
    time.sleep(1.5)
    assert connect(live_collector.report_port).server.serial_number == serving
    assert report_ok(agent)
    # Truncated certificate file.
    config.server_key.write_bytes(good_key)
    config.server_cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nMII")
    time.sleep(1.5)
    assert connect(live_collector.report_port).server.serial_number == serving
    assert report_ok(agent)
    # Fixing it is picked up.
    fixed = Trust(config).rotate_server_certificate()
    wait_for(
        lambda: connect(live_collector.report_port).server.serial_number == fixed.serial_number
    )
    assert report_ok(agent)


def test_rotation_keeps_working_for_a_data_folder_made_by_init(tmp_path: Path) -> None:
    config, ca = initialize(
        tmp_path / "c", "127.0.0.1", ["collector.example.com"], database=collector_database()
    )
    trust = Trust(config)
    assert trust.authorities().stage == Stage.STEADY
    assert not trust.authorities_path.exists()
    cert = trust.rotate_server_certificate(["10.1.2.3"])
    cert.verify_directly_issued_by(ca)
    dns, ips = trust.server_names()
    assert "collector.example.com" in dns and "10.1.2.3" in ips and "127.0.0.1" in ips
    assert trust.trusted_ca_pem() == config.ca_cert.read_bytes()


# -- CA rollover ----------------------------------------------------------------------------


def test_ca_rollover_stage_activate_finish_cuts_off_no_agent_that_renewed(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    config = live_collector.config
    trust = Trust(config)
    old_ca = trust.signing_authority()
    bundled = enroll_agent(live_collector, tmp_path / "bundled", "bundled")
    old_only = enroll_agent(live_collector, tmp_path / "old-only", "old-only")
    old_client = (old_only.state.key_path.read_bytes(), old_only.state.cert_path.read_bytes())

    # Stage: a new CA is trusted beside the old one, which still signs.
    generation, new_ca_cert = trust.stage_rollover()
    assert trust.authorities().stage == Stage.STAGED
    assert fingerprint(trust.signing_authority().cert) == fingerprint(old_ca.cert)
    assert [fingerprint(c) for c in trust.trusted_cas()] == [
        fingerprint(old_ca.cert),
        fingerprint(new_ca_cert),
    ]
    staged = Authority.load(
        trust.key_path(generation).read_bytes(), trust.cert_path(generation).read_bytes()
    )
    wait_for(lambda: connect(live_collector.report_port, device_cert(staged), tmp_path).accepted)
    assert connect(live_collector.report_port, old_client, tmp_path).accepted
    assert (
        connect(live_collector.report_port, device_cert(Authority.create()), tmp_path).accepted
        is False
    )
    assert report_ok(bundled) and report_ok(old_only)
    # The agent renews (as it does by itself) and receives both CAs.
    assert (
        ensure_fresh_certificate(bundled.state, bundled.enrollment, utcnow(), force=True).outcome
        is Outcome.RENEWED
    )
    assert len(x509.load_pem_x509_certificates(bundled.state.ca_path.read_bytes())) == 2

    # Activate: the new CA signs; the server certificate chains to it. old_only has not
    # renewed since staging, so activating without --force is refused.
    with pytest.raises(TrustError, match=r"active devices? did not renew their certificate since"):
        trust.activate_rollover()
    trust.activate_rollover(force=True)
    assert trust.authorities().stage == Stage.ACTIVATED
    wait_for(
        lambda: (
            connect(live_collector.report_port).chain[-1].fingerprint(hashes.SHA256())
            == new_ca_cert.fingerprint(hashes.SHA256())
        )
    )
    seen = connect(live_collector.enroll_port)
    assert len(seen.chain) == 2
    seen.server.verify_directly_issued_by(new_ca_cert)
    assert report_ok(bundled)  # its bundle verifies the new server certificate
    # An agent that kept only the old CA cannot verify the server any more: that is why
    # `activate` waits one certificate lifetime after `stage`, for every agent to renew.
    with pytest.raises(grpc.RpcError) as refused:
        report_ok(old_only)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # New installations pin the new fingerprint and get certificates from the new CA.
    fresh_state = AgentState(tmp_path / "fresh")
    fresh = EnrolledAgent(
        fresh_state,
        enroll(fresh_state, live_collector.enroll_address, live_collector.token(),
               fingerprint(new_ca_cert), host_info("fresh")),
    )  # fmt: skip
    x509.load_pem_x509_certificate(fresh.state.cert_path.read_bytes()).verify_directly_issued_by(
        new_ca_cert
    )
    assert report_ok(fresh)
    with pytest.raises(EnrollError, match="did not present the CA"):
        enroll(
            AgentState(tmp_path / "late"),
            live_collector.enroll_address, live_collector.token(),
            fingerprint(old_ca.cert), host_info("late"),
        )  # fmt: skip
    # Old-CA device certificates are still accepted until finish.
    assert connect(live_collector.report_port, old_client, tmp_path).accepted
    # The bundled agent renews again, now from the new CA.
    assert (
        ensure_fresh_certificate(bundled.state, bundled.enrollment, utcnow(), force=True).outcome
        is Outcome.RENEWED
    )
    x509.load_pem_x509_certificate(bundled.state.cert_path.read_bytes()).verify_directly_issued_by(
        new_ca_cert
    )

    # Finish: only the new CA is trusted; an old-CA client certificate fails the handshake.
    # old_only still holds its old-CA certificate, so finishing without --force is refused.
    with pytest.raises(TrustError, match=r"active devices? may still be using"):
        trust.finish_rollover()
    trust.finish_rollover(force=True)
    assert trust.authorities().stage == Stage.STEADY
    assert [fingerprint(c) for c in trust.trusted_cas()] == [fingerprint(new_ca_cert)]
    took = wait_for(lambda: not connect(live_collector.report_port, old_client, tmp_path).accepted)
    print(f"old CA refused {took:.2f} s after finish")
    assert report_ok(bundled)
    assert report_ok(fresh)
    assert (trust.ca_dir / "retired" / "ca-1.key").exists()
    assert not config.ca_key.exists()


def test_rollover_steps_refuse_out_of_order_with_the_next_step(tmp_path: Path) -> None:
    config, _ = initialize(tmp_path / "c", "127.0.0.1", database=collector_database())
    trust = Trust(config)
    with pytest.raises(TrustError, match="ca rollover stage"):
        trust.activate_rollover(force=True)
    with pytest.raises(TrustError, match="ca rollover stage"):
        trust.finish_rollover(force=True)
    trust.stage_rollover()
    with pytest.raises(TrustError, match="already in progress"):
        trust.stage_rollover()
    with pytest.raises(TrustError, match="activate"):
        trust.finish_rollover(force=True)
    later = utcnow() + dt.timedelta(days=config.device_certificate_days, minutes=1)
    trust.activate_rollover(now=later)  # after one lifetime, no --force needed
    with pytest.raises(TrustError, match="finish"):
        trust.activate_rollover(force=True)
    trust.finish_rollover(now=later + dt.timedelta(days=config.device_certificate_days, minutes=1))
    # A second rollover numbers the next CA 3, never reusing a retired number.
    generation, _ = trust.stage_rollover()
    assert generation == 3
    assert stat.S_IMODE(os.stat(trust.key_path(3)).st_mode) == 0o600


BEIJING = ZoneInfo("Asia/Shanghai")


def renew_and_use(agent: EnrolledAgent) -> x509.Certificate:
    """Renew the agent's certificate as it does by itself, then report with the new one (the
    collector then knows the agent has it); the new certificate."""
    renewed = ensure_fresh_certificate(agent.state, agent.enrollment, utcnow(), force=True)
    assert renewed.outcome is Outcome.RENEWED
    assert report_ok(agent)
    return x509.load_pem_x509_certificate(agent.state.cert_path.read_bytes())


def set_status(live_collector: LiveCollector, agent: EnrolledAgent, status: str) -> None:
    store = live_collector.store()
    try:
        assert store.identity.set_device_status(
            agent.enrollment.device_id, status, utcnow(), "test"
        )
    finally:
        store.close()


def test_finish_waits_for_the_old_cas_certificates_in_the_database_not_for_todays_lifetime(
    live_collector: LiveCollector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IT shortens device_certificate_days between activate and finish: the certificates the
    old CA signed keep the lifetime they were given, so finish waits for them (their renewal,
    or their expiry), whatever the setting says now. Retired and revoked devices are refused
    anyway and hold nothing back."""
    config = live_collector.config
    trust = Trust(config)
    agents = {
        name: enroll_agent(live_collector, tmp_path / name, name)
        for name in ("renews", "retired", "revoked", "offline")
    }
    generation, _ = trust.stage_rollover()
    staged = Authority.load(
        trust.key_path(generation).read_bytes(), trust.cert_path(generation).read_bytes()
    )
    # The collector accepts the new CA's device certificates once it has read the new files.
    wait_for(lambda: connect(live_collector.report_port, device_cert(staged), tmp_path).accepted)
    for agent in agents.values():  # each receives both CAs, its certificate still the old CA's
        renew_and_use(agent)
    activated = utcnow()
    _, new_ca = trust.activate_rollover(now=activated)
    old_certificates = {
        name: x509.load_pem_x509_certificate(a.state.cert_path.read_bytes())
        for name, a in agents.items()
    }
    assert config.device_certificate_days == 14

    # IT shortens the lifetime to one day; two days after activation the old rule (activation
    # plus the lifetime set now) would let finish cut off all four agents.
    shortened = Trust(replace(config, device_certificate_days=1))
    later = activated + dt.timedelta(days=2)
    last = max(c.not_valid_after_utc for c in old_certificates.values())
    with pytest.raises(TrustError) as refused:
        shortened.finish_rollover(now=later)
    assert str(refused.value).startswith(
        "4 active devices may still be using a certificate signed by the previous CA (the last"
        f" of them is valid until {shown(last, BEIJING)}). Finishing now would cut them off"
    )
    assert shown(last, BEIJING).endswith("(UTC+08:00)")
    assert "ca rollover status --devices" in str(refused.value)
    assert shortened.authorities().stage == Stage.ACTIVATED

    # One renews from the new CA; one is retired, one revoked: the fourth still holds it back.
    renew_and_use(agents["renews"]).verify_directly_issued_by(new_ca)
    set_status(live_collector, agents["retired"], RETIRED)
    set_status(live_collector, agents["revoked"], REVOKED)
    offline_until = old_certificates["offline"].not_valid_after_utc
    with pytest.raises(TrustError, match=r"^1 active device may still be using") as refused:
        shortened.finish_rollover(now=later)
    assert f"valid until {shown(offline_until, BEIJING)}" in str(refused.value)
    # What IT reads: where the rollover stands, and which device it waits for.
    assert (
        cli_pki.main(["ca", "rollover", "status", "--devices", "--data", str(config.data_dir)]) == 0
    )
    status = capsys.readouterr().out
    assert "1 active device may still use a certificate not signed by the new CA" in status
    device = agents["offline"].enrollment.device_id
    (line,) = [line for line in status.splitlines() if device in line]
    # The device, the host it last reported as, the CA of its certificate (its generation and
    # a short fingerprint) and when that certificate expires.
    until = shown(offline_until, BEIJING)
    old_ca = short_fingerprint(fingerprint(x509.load_pem_x509_certificate(
        config.ca_cert.read_bytes())))  # fmt: skip
    assert line == f"  {device}  test-host  certificate from CA 1 ({old_ca}), valid until {until}"
    assert agents["renews"].enrollment.device_id not in status
    assert agents["retired"].enrollment.device_id not in status
    assert cli_pki.main(["ca", "rollover", "finish", "--data", str(config.data_dir)]) == 1
    assert "1 active device may still be using" in capsys.readouterr().err
    assert shortened.authorities().stage == Stage.ACTIVATED

    # Once its old certificate has expired, nothing holds finish back (time given as data).
    shortened.finish_rollover(now=offline_until + dt.timedelta(seconds=1))
    assert shortened.authorities().stage == Stage.STEADY
    assert report_ok(agents["renews"])


def test_activate_waits_for_every_agent_to_renew_since_staging_not_for_todays_lifetime(
    live_collector: LiveCollector, tmp_path: Path
) -> None:
    """The same for activate: an agent that has not renewed since the stage lacks the new CA
    and could not verify the new server certificate, whatever the lifetime is set to now."""
    trust = Trust(replace(live_collector.config, device_certificate_days=1))
    late = enroll_agent(live_collector, tmp_path / "late", "late")
    staged_at = utcnow()
    generation, _ = trust.stage_rollover(now=staged_at)
    staged = Authority.load(
        trust.key_path(generation).read_bytes(), trust.cert_path(generation).read_bytes()
    )
    wait_for(lambda: connect(live_collector.report_port, device_cert(staged), tmp_path).accepted)
    with pytest.raises(TrustError, match=r"^1 active device did not renew their certificate"):
        trust.activate_rollover(now=staged_at + dt.timedelta(days=2))
    assert trust.authorities().stage == Stage.STAGED
    renew_and_use(late)
    trust.activate_rollover(now=staged_at + dt.timedelta(days=2))
    assert trust.authorities().stage == Stage.ACTIVATED
    assert report_ok(late)  # its bundle holds the new CA, which signs the server certificate
