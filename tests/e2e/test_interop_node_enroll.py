"""Another team's agent: keys and requests made by the openssl CLI, the reestablishment's proof
signed by Node's crypto or `openssl dgst`, every call made by grpc-js (tests/interop/client.js),
against a real collector process. Nothing the client sends is made by the project's agent
code: the contract (devposture.proto) and the docs are all it knows. (The reports' facts are
the e2e tests' usual laptop, and a certificate that expired is issued by the test, standing in
for the weeks a laptop was away.)

It pins the collector's CA by the fingerprint IT gives, enrolls (P-256 and P-384), reports,
renews over mutual TLS, reestablishes with an expired certificate, and is refused, with the
status the contract documents and a reason that names the fix, where it should be. It also
speaks TLS 1.2 only, as an older TLS stack would.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from devposture.collector.config import load
from devposture.collector.pki import Authority, cert_pem
from devposture.collector.store import Store
from tests.e2e.fleet import COLLECTOR, CollectorServer, posture_report, run, serving, utcnow
from tests.e2e.interop_node import (
    Node,
    csr_of,
    id_of_key,
    new_key,
    node_fixture,  # noqa: F401
    openssl,
    plain,
    stored,
)

CHECKS = {"antivirus", "firewall", "os-updates", "public-wifi", "chat-backup", "chat-app-updates"}
HOST = {"hostname": "interop-laptop", "os_family": "OS_FAMILY_LINUX", "os_name": "Debian GNU/Linux",
        "os_version": "12", "architecture": "x86_64"}  # fmt: skip


@dataclass(frozen=True)
class Device:
    """What another team's agent keeps: its key, the certificate the collector issued."""

    key: Path
    cert: Path
    device_id: str


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorServer]:
    with serving(tmp_path_factory.mktemp("interop-enroll")) as server:
        yield server


@pytest.fixture(scope="module")
def ca(node: str, collector: CollectorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collector's CA, pinned as the contract says: found by its fingerprint in the chain
    the enrollment port presents (read by Node's TLS, trusting nothing yet)."""
    pinned = Node(node, f"localhost:{collector.enroll_port}").call(
        "Pin", {"fingerprint": collector.fingerprint}
    )
    assert pinned.get("ok"), pinned
    path = tmp_path_factory.mktemp("pinned") / "ca.crt"
    path.write_text(pinned["ca_pem"], encoding="ascii")
    ours = x509.load_pem_x509_certificate((collector.data / "ca" / "ca.crt").read_bytes())
    assert x509.load_pem_x509_certificate(path.read_bytes()) == ours
    return path


def _enrollment(node: str, collector: CollectorServer, ca: Path) -> Node:
    return Node(node, f"localhost:{collector.enroll_port}", ca)


def _as(node: str, collector: CollectorServer, ca: Path, device: Device) -> Node:
    """The device on the report port (mutual TLS)."""
    return Node(node, f"localhost:{collector.report_port}", ca, device.cert, device.key)


def _enroll(node: str, collector: CollectorServer, ca: Path, folder: Path, kind: str = "P-256",
            *csr_options: str, **env: str) -> Device:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    key = new_key(folder / "device.key", kind)
    answer = _enrollment(node, collector, ca).call(
        "Enroll", {"token": collector.token(), "csr_pem": csr_of(key, *csr_options),
                   "host": HOST, "agent_version": "interop-node 1"}, **env,
    )  # fmt: skip
    assert answer.get("ok"), answer
    cert = folder / "device.crt"
    cert.write_text(answer["client_certificate_pem"], encoding="ascii")
    return Device(key, cert, answer["device_id"])


def _reported(node: str, collector: CollectorServer, ca: Path, device: Device,
              **env: str) -> dict[str, Any]:  # fmt: skip
    """A report of the device's, sent; the answer, once the collector stored it as sent."""
    report = posture_report(device.device_id, utcnow(), hostname=HOST["hostname"])
    answer = _as(node, collector, ca, device).call("Report", {"report": plain(report)}, **env)
    assert answer.get("ok") and answer["report_id"] == report.report_id, answer
    assert {v["check_id"] for v in answer["verdicts"]} == CHECKS  # judged
    assert stored(collector, report.report_id) == report
    return answer


@pytest.mark.parametrize(("kind", "digest"), [("P-256", "-sha256"), ("P-384", "-sha384")])
def test_a_key_and_request_made_by_openssl_enroll_through_grpc_js_and_its_reports_are_judged(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path, kind: str, digest: str
) -> None:
    device = _enroll(node, collector, ca, tmp_path, kind, digest)
    assert device.device_id == id_of_key(device.key)  # the contract's id, from the key alone
    openssl("verify", "-CAfile", str(ca), str(device.cert))
    issued = openssl("x509", "-in", str(device.cert), "-noout", "-pubkey")
    assert issued == openssl("pkey", "-in", str(device.key), "-pubout")
    subject = openssl("x509", "-in", str(device.cert), "-noout", "-subject", "-nameopt", "compat")
    assert f"CN={device.device_id}" in subject.decode()
    _reported(node, collector, ca, device)


def test_grpc_js_renews_over_mutual_tls_keeping_its_key_and_reports_with_the_new_certificate(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    device = _enroll(node, collector, ca, tmp_path)
    renewed = _as(node, collector, ca, device).call("Renew", {"csr_pem": csr_of(device.key)})
    assert renewed.get("ok") and renewed["generation"] == "2", renewed
    assert "-----BEGIN CERTIFICATE-----" in renewed["ca_certificates_pem"]
    new = Device(device.key, tmp_path / "renewed.crt", device.device_id)
    new.cert.write_text(renewed["client_certificate_pem"], encoding="ascii")
    assert _serial(new.cert) != _serial(device.cert)
    _reported(node, collector, ca, new)
    # A renewal keeps the key: a request over another is refused, saying so.
    other = csr_of(new_key(tmp_path / "other.key", "P-256"))
    refused = _as(node, collector, ca, new).call("Renew", {"csr_pem": other})
    assert refused["name"] == "PERMISSION_DENIED", refused
    assert refused["details"] == (
        "the renewal request is over another key than the device's: a renewal keeps the key;"
        " to change keys, enroll again"
    )


def _serial(cert: Path) -> str:
    return openssl("x509", "-in", str(cert), "-noout", "-serial").decode().strip()


def _expired(collector: CollectorServer, device: Device) -> Device:
    """The device's certificate as after a laptop was away longer than its lifetime: one the
    collector issued (by its CA, recorded as its next generation) that expired six days ago.
    The test plays the passing time; the client only finds its certificate expired."""
    config = load(collector.data)
    authority = Authority.load(config.ca_key.read_bytes(), config.ca_cert.read_bytes())
    current = x509.load_pem_x509_certificate(device.cert.read_bytes())
    now = utcnow()
    expired = (
        x509.CertificateBuilder().subject_name(current.subject)
        .issuer_name(authority.cert.subject).public_key(current.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=20)).not_valid_after(now - dt.timedelta(days=6))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(authority.key, hashes.SHA256())
    )  # fmt: skip
    store = Store.open(config.database)
    try:
        store.identity.record_renewal(
            device.device_id, format(expired.serial_number, "x"), expired.not_valid_after_utc,
            now - dt.timedelta(days=20), action="renewed",
        )  # fmt: skip
    finally:
        store.close()
    path = device.cert.with_name("expired.crt")
    path.write_bytes(cert_pem(expired))
    return Device(device.key, path, device.device_id)


def _reestablish(node: str, collector: CollectorServer, ca: Path, device: Device,
                 **proof: Any) -> dict[str, Any]:  # fmt: skip
    """Reestablish on the enrollment port: client.js signs the contract's bytes with the key."""
    return Node(node, f"localhost:{collector.enroll_port}", ca, device.cert, device.key).call(
        "Reestablish", {"csr_pem": csr_of(device.key), **proof}
    )


def test_grpc_js_reestablishes_with_its_expired_certificate_and_a_proof_signed_by_node_or_openssl(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    device = _expired(collector, _enroll(node, collector, ca, tmp_path, "P-384"))
    # Mutual TLS refuses the expired certificate: the report port cannot be reached with it.
    report = {"report": plain(posture_report(device.device_id, utcnow()))}
    assert _as(node, collector, ca, device).call("Report", report)["name"] == "UNAVAILABLE"
    signed_at = int(time.time())
    back = _reestablish(node, collector, ca, device, signed_at=signed_at)  # Node's crypto, DER
    assert back.get("ok") and back["generation"] == "3", back
    replayed = _reestablish(node, collector, ca, device, signed_at=signed_at)
    assert replayed["name"] == "UNAUTHENTICATED", replayed
    assert replayed["details"] == ("this proof is not newer than the last one accepted (a"
                                   " replay?): sign a new one")  # fmt: skip
    again = _reestablish(node, collector, ca, device, signed_at=signed_at + 1, signer="openssl")
    assert again.get("ok") and again["generation"] == "4", again
    new = Device(device.key, tmp_path / "reestablished.crt", device.device_id)
    new.cert.write_text(again["client_certificate_pem"], encoding="ascii")
    _reported(node, collector, ca, new)


def test_a_proof_signed_as_r_and_s_as_webcrypto_and_dotnet_give_it_reestablishes_too(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    # The contract asks for an ECDSA-SHA256 signature. OpenSSL, Node's crypto, Go's SignASN1
    # and Java give it DER-encoded; WebCrypto and .NET's ECDsa give r and s side by side
    # (IEEE P1363). Both are that signature: the collector takes either.
    for kind in ("P-256", "P-384"):
        device = _expired(collector, _enroll(node, collector, ca, tmp_path / kind, kind))
        back = _reestablish(node, collector, ca, device, dsa_encoding="ieee-p1363")
        assert back.get("ok") and back["generation"] == "3", (kind, back)


def test_every_call_of_a_revoked_device_is_refused_permission_denied_saying_why(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    device = _enroll(node, collector, ca, tmp_path)
    _reported(node, collector, ca, device)
    revoked = run(COLLECTOR, "device", "revoke", device.device_id, "--reason", "laptop stolen",
                  "--data", str(collector.data))  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    report = {"report": plain(posture_report(device.device_id, utcnow()))}
    for call, argument in (("Report", report), ("Renew", {"csr_pem": csr_of(device.key)})):
        refused = _as(node, collector, ca, device).call(call, argument)
        assert refused["name"] == "PERMISSION_DENIED", (call, refused)
        assert re.fullmatch(
            rf"device {device.device_id} was revoked by IT on \d{{4}}-\d\d-\d\d: it can no longer"
            r" report\. Ask IT; a new enrollment needs a new token and a new key \(enroll"
            r" --force\)", refused["details"],
        ), refused  # fmt: skip
    refused = _reestablish(node, collector, ca, device)
    assert refused["name"] == "PERMISSION_DENIED", refused
    assert f"device {device.device_id} was revoked by IT" in refused["details"], refused
    # Its key cannot enroll again, and the token it tried is not spent on it.
    token = collector.token()
    enrollment = _enrollment(node, collector, ca)
    refused = enrollment.call("Enroll", {"token": token, "csr_pem": csr_of(device.key)})
    assert refused["name"] == "PERMISSION_DENIED", refused
    assert refused["details"] == ("this device's key belongs to a device IT revoked: enroll with"
                                  " a new key (`devposture-agent enroll --force`)")  # fmt: skip
    fresh = csr_of(new_key(tmp_path / "new.key", "P-256"))
    assert enrollment.call("Enroll", {"token": token, "csr_pem": fresh}).get("ok")


def test_an_enrollment_whose_answer_was_lost_is_answered_again_without_spending_a_use(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    # The client connects, the collector is frozen, and the call goes out with half a second
    # to live: DEADLINE_EXCEEDED, however fast the machine. Thawed, the collector may still
    # enroll the device (it did, spending the one-use token: the client's retry was refused
    # as used up, and its token was lost). The same request sent again is answered again.
    key = new_key(tmp_path / "device.key", "P-256")
    token = collector.token()
    request = {"token": token, "csr_pem": csr_of(key), "host": HOST}
    late = _enrollment(node, collector, ca).while_frozen(collector, "Enroll", request)
    assert late["name"] == "DEADLINE_EXCEEDED", late
    for _ in range(2):  # the second time, the token was certainly used by this very device
        answer = _enrollment(node, collector, ca).call("Enroll", request)
        assert answer.get("ok") and answer["device_id"] == id_of_key(key), answer
    # ... and by it alone: the token is used up for any other key.
    other = {**request, "csr_pem": csr_of(new_key(tmp_path / "other.key", "P-256"))}
    refused = _enrollment(node, collector, ca).call("Enroll", other)
    assert refused["name"] == "UNAUTHENTICATED" and "used up" in refused["details"], refused
    uses = run(COLLECTOR, "token", "list", "--data", str(collector.data))
    assert re.search(rf"^{token.split('_')[1]} .* 0 +used up$", uses.stdout, re.M), uses.stdout


def test_oversized_enrollments_are_refused_before_a_token_is_spent(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    token = collector.token()
    enrollment = _enrollment(node, collector, ca)
    # Past the message limit (1 MiB): gRPC refuses it unread (threat model, row 14) ...
    refused = enrollment.call("Enroll", {"token": token, "csr_pem": "x" * (1024 * 1024)})
    assert refused["name"] == "RESOURCE_EXHAUSTED", refused
    assert "Received message larger than max" in refused["details"], refused
    # ... and a request over 16 KiB is not a CSR a device makes (INVALID_ARGUMENT).
    padded = csr_of(new_key(tmp_path / "device.key", "P-256")) + "\n" * 16 * 1024
    refused = enrollment.call("Enroll", {"token": token, "csr_pem": padded})
    assert refused["name"] == "INVALID_ARGUMENT", refused
    assert refused["details"] == "csr_pem must hold one PEM certificate request of at most 16 KiB"
    assert enrollment.call("Enroll", {"token": token, "csr_pem": padded.rstrip() + "\n"}).get("ok")


# -- refusals at enrollment, on a collector of their own ------------------------------------
# Each counts against the caller's address (threat model, row 2): after five, each attempt
# waits 1, 2, 4 ... s. A collector of their own keeps that wait out of the other tests.


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorServer]:
    with serving(tmp_path_factory.mktemp("interop-refusals")) as server:
        yield server


def _flipped_signature(csr_pem: str) -> str:
    """The request with the last byte of its signature changed: a request nobody signed."""
    der = openssl("req", "-in", "/dev/stdin", "-outform", "DER", stdin=csr_pem.encode())
    broken = der[:-1] + bytes([der[-1] ^ 0x01])
    return openssl("req", "-inform", "DER", "-outform", "PEM", stdin=broken).decode("ascii")


def test_enrollment_refusals_reach_grpc_js_with_their_status_and_what_to_do(
    node: str, refusing: CollectorServer, tmp_path: Path
) -> None:
    ca = refusing.data / "ca" / "ca.crt"
    enrollment = _enrollment(node, refusing, ca)
    token = refusing.token()

    def refused(csr_pem: str, with_token: str = token) -> dict[str, Any]:
        answer = enrollment.call("Enroll", {"token": with_token, "csr_pem": csr_pem})
        assert "ok" not in answer, answer
        return answer

    for kind in ("RSA", "Ed25519"):
        answer = refused(csr_of(new_key(tmp_path / f"{kind}.key", kind)))
        assert answer["name"] == "INVALID_ARGUMENT", (kind, answer)
        assert answer["details"] == "device keys must be ECDSA (P-256 or P-384)", answer
    good = csr_of(new_key(tmp_path / "device.key", "P-256"))
    answer = refused(_flipped_signature(good))
    assert answer["name"] == "INVALID_ARGUMENT", answer
    assert answer["details"].startswith("the certificate signing request's signature does not"
                                        " verify: "), answer  # fmt: skip
    answer = refused("-----BEGIN CERTIFICATE REQUEST-----\nnot a request\n"
                     "-----END CERTIFICATE REQUEST-----\n")  # fmt: skip
    assert answer["name"] == "INVALID_ARGUMENT", answer
    assert answer["details"].startswith("the certificate signing request is not valid PEM"
                                        " PKCS#10: "), answer  # fmt: skip
    # None of these spent the token; the good request does, and the token is then used up.
    assert enrollment.call("Enroll", {"token": token, "csr_pem": good}).get("ok")
    answer = refused(csr_of(new_key(tmp_path / "second.key", "P-256")))
    assert answer["name"] == "UNAUTHENTICATED", answer
    assert answer["details"] == ("the enrollment token was already used up: ask IT for a new one"
                                 " (`devposture-collector token create`)")  # fmt: skip
    withdrawn = refusing.token()
    done = run(COLLECTOR, "token", "revoke", withdrawn.split("_")[1], "--data", str(refusing.data))
    assert done.returncode == 0, done.stderr
    answer = refused(csr_of(new_key(tmp_path / "third.key", "P-256")), withdrawn)
    assert answer["name"] == "UNAUTHENTICATED", answer
    assert answer["details"] == "the enrollment token was revoked: ask IT for a new one", answer


# -- TLS ----------------------------------------------------------------------------------


def test_a_tls_1_2_only_client_enrolls_and_reports_and_older_tls_is_refused(
    node: str, collector: CollectorServer, ca: Path, tmp_path: Path
) -> None:
    # What the collector speaks is gRPC's own TLS policy (docs/certificates.md): TLS 1.3, or
    # TLS 1.2 with ECDHE and AES-GCM; nothing older, and no other TLS 1.2 suite.
    tls12 = {"DEVPOSTURE_TLS_MIN": "TLSv1.2", "DEVPOSTURE_TLS_MAX": "TLSv1.2"}
    pinning = Node(node, f"localhost:{collector.enroll_port}")
    fingerprint = {"fingerprint": collector.fingerprint}
    agreed = pinning.call("Pin", fingerprint, **tls12)
    assert agreed.get("ok") and agreed["protocol"] == "TLSv1.2", agreed
    assert re.fullmatch(r"ECDHE-ECDSA-AES(128|256)-GCM-SHA(256|384)", agreed["cipher"]), agreed
    assert agreed["alpn"] == "h2"
    assert pinning.call("Pin", fingerprint)["protocol"] == "TLSv1.3"
    device = _enroll(node, collector, ca, tmp_path, "P-256", **tls12)
    _reported(node, collector, ca, device, **tls12)  # mutual TLS 1.2 on the report port
    # Older versions (which Node allows only at OpenSSL's security level 0), and TLS 1.2
    # without AES-GCM: the collector ends the handshake.
    older = {"DEVPOSTURE_TLS_MIN": "TLSv1", "DEVPOSTURE_TLS_MAX": "TLSv1.1",
             "DEVPOSTURE_TLS_CIPHERS": "DEFAULT@SECLEVEL=0"}  # fmt: skip
    suites = ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305")
    for settings in (older, *({**tls12, "DEVPOSTURE_TLS_CIPHERS": suite} for suite in suites)):
        refused = pinning.call("Pin", fingerprint, **settings)
        assert refused["name"] == "UNAVAILABLE", (settings, refused)
        assert refused["details"].startswith("ECONNRESET: "), (settings, refused)
        health = Node(node, f"localhost:{collector.enroll_port}", ca).call(
            "Health", {"service": ""}, **settings
        )
        assert health["name"] == "UNAVAILABLE", (settings, health)
