"""The reestablishment proof (collector/renewal.py) as a client in another language signs it.

A certificate's serial is a number; OpenSSL and Node.js print it as its bytes in hex
("055a8c...", "00d3..."), the contract as the number ("55a8c..."). A serial whose hex starts
with a zero nibble, or whose top bit is set, is spelled differently by the two, and the proof
of a client that took its library's spelling did not verify ("does not verify", for a key that
was right). Certificates with such serials are made here with real keys and a real CA.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.collector.pki import device_id_for_certificate
from devposture.collector.renewal import ProofRejected, serial_spellings, verify_reestablish
from devposture.v1 import devposture_pb2 as pb
from devposture.v1.proofs import reestablish_payload

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

NOW = dt.datetime(2026, 12, 5, 2, 0, tzinfo=dt.UTC)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    serial: int,
) -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA, a device certificate with `serial` (expired a day ago) and the device's key."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    day = dt.timedelta(days=1)
    ca = (x509.CertificateBuilder().subject_name(_name("ca")).issuer_name(_name("ca"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(NOW - 30 * day).not_valid_after(NOW + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    device = (x509.CertificateBuilder().subject_name(_name("device")).issuer_name(_name("ca"))
              .public_key(key.public_key()).serial_number(serial)
              .not_valid_before(NOW - 20 * day).not_valid_after(NOW - day)
              .sign(ca_key, hashes.SHA256()))  # fmt: skip
    return ca, device, key


def _request(
    device: x509.Certificate, key: ec.EllipticCurvePrivateKey, serial_hex: str
) -> pb.ReestablishRequest:
    built = x509.CertificateSigningRequestBuilder().subject_name(_name("device"))
    csr = built.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    signed_at = int(NOW.timestamp())
    payload = reestablish_payload(device_id_for_certificate(device), serial_hex, signed_at, csr)
    return pb.ReestablishRequest(
        certificate_pem=device.public_bytes(serialization.Encoding.PEM).decode(), csr_pem=csr,
        signed_at=Timestamp(seconds=signed_at),
        signature=key.sign(payload, ec.ECDSA(hashes.SHA256())),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("serial", "as_printed"),
    [
        (0x055A8C0D1E2F, "055a8c0d1e2f"),  # a zero nibble first: even length
        (0xD3A1B2C3, "00d3a1b2c3"),  # top bit set: DER's leading zero byte
        (0x55A8C0D1E2F0, "55a8c0d1e2f0"),  # the same either way
    ],
)
def test_the_serial_as_its_bytes_or_as_the_number_verifies(serial: int, as_printed: str) -> None:
    assert as_printed in serial_spellings(serial)
    ca, device, key = _certificate(serial)
    for spelled in {as_printed, format(serial, "x"), as_printed.upper()}:
        proven = verify_reestablish(_request(device, key, spelled), [ca], NOW)
        assert proven.serial == format(serial, "x")  # kept in the contract's form


def test_another_spelling_of_the_serial_does_not_verify() -> None:
    ca, device, key = _certificate(0x055A8C0D1E2F)
    with pytest.raises(ProofRejected, match="does not verify"):
        verify_reestablish(_request(device, key, "55a8c0d1e2f0"), [ca], NOW)


@pytest.mark.parametrize(
    "signed_at",
    [Timestamp(seconds=1, nanos=-1), Timestamp(seconds=1, nanos=10**9),
     Timestamp(seconds=253_402_300_800), Timestamp(seconds=2**63 - 1),
     Timestamp(seconds=-(2**63))],
)  # fmt: skip
def test_an_impossible_signing_time_is_a_rejected_proof(signed_at: Timestamp) -> None:
    ca, device, key = _certificate(0x1234567)
    request = _request(device, key, format(0x1234567, "x"))
    request.signed_at.CopyFrom(signed_at)
    with pytest.raises(ProofRejected, match="signed_at is not a valid time"):
        verify_reestablish(request, [ca], NOW)
