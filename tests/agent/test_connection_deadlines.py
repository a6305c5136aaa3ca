"""The connections made outside the RPCs give up too (threat model row 18): pinning the
collector's CA, and the diagnosis of a failed enrollment. A real listening socket that accepts
and never answers stands for a hung collector; the deadline is given as data, and the test
asserts that each call comes back with its error, not how long it took."""

from __future__ import annotations

import datetime as dt
import inspect
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devposture.agent.enroll_diagnosis import diagnose
from devposture.net.address import CollectorAddress
from devposture.net.pinning import PinningError, fetch_pinned_ca

PIN = "sha256:" + "0" * 64


@contextmanager
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as server:
        yield int(server.getsockname()[1])


def test_pinning_a_silent_collector_gives_up_at_its_deadline() -> None:
    assert inspect.signature(fetch_pinned_ca).parameters["timeout"].default == 15.0
    with silent_port() as port, pytest.raises(PinningError, match="cannot reach the collector"):
        fetch_pinned_ca("127.0.0.1", port, PIN, timeout=0.2)


def _ca_pem() -> bytes:
    """A CA certificate to verify against (the diagnosis runs once one is pinned)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_the_enrollment_diagnosis_gives_up_on_a_silent_port() -> None:
    assert inspect.signature(diagnose).parameters["timeout"].default == 15.0
    with silent_port() as port:
        assert diagnose(CollectorAddress("127.0.0.1", port), _ca_pem(), timeout=0.2) is None
