"""`devposture-collector tls rotate` while `serve` runs, as IT would do it: real processes.

The agent is not touched between its two runs: it verifies the new server certificate against
the CA it already holds, so a rotation needs nothing on employee computers.
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from cryptography import x509

from tests.e2e.conftest import AGENT, COLLECTOR, CollectorProcess, enrolled_state, run

SERVED_WITHIN = 10.0


def _served_serial(port: int) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_tls_rotate_while_serving_agents_notice_nothing(
    collector_process: CollectorProcess, tmp_path: Path
) -> None:
    state = enrolled_state(collector_process, tmp_path)
    before = run(AGENT, "once", "--state", str(state))
    assert before.returncode == 0, before.stderr
    agent_ca = (state / "ca.crt").read_bytes()
    old_serial = _served_serial(collector_process.enroll_port)

    rotated = run(
        COLLECTOR, "tls", "rotate", "--san", "collector.example.com",
        "--data", str(collector_process.data),
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    assert "No restart is needed" in rotated.stdout
    new_cert = x509.load_pem_x509_certificate(
        (collector_process.data / "tls" / "server.crt").read_bytes()
    )
    assert new_cert.serial_number != old_serial
    assert f"{new_cert.serial_number:x}" in rotated.stdout

    start = time.monotonic()
    while _served_serial(collector_process.report_port) != new_cert.serial_number:
        assert time.monotonic() - start < SERVED_WITHIN, "the collector still serves the old one"
        time.sleep(0.2)
    assert _served_serial(collector_process.enroll_port) == new_cert.serial_number

    after = run(AGENT, "once", "--state", str(state))
    assert after.returncode == 0, after.stderr
    assert "acknowledged by the collector" in after.stdout
    assert (state / "ca.crt").read_bytes() == agent_ca

    fingerprints = run(
        COLLECTOR, "ca", "fingerprint", "--all", "--data", str(collector_process.data)
    )
    assert fingerprints.returncode == 0, fingerprints.stderr
    assert collector_process.fingerprint in fingerprints.stdout
    assert "signing" in fingerprints.stdout
