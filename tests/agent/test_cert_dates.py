"""The light certificate-date reader against cryptography's full parser, on certificates our
own CA makes at test time, on a public CA certificate, and on broken input."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devposture.agent.cert_dates import CertificateUnreadable, read_validity
from tests.conftest import EnrolledAgent


def _agree(pem: bytes) -> None:
    expected = x509.load_pem_x509_certificate(pem)
    validity = read_validity(pem)
    assert validity.not_before == expected.not_valid_before_utc
    assert validity.not_after == expected.not_valid_after_utc


def test_an_enrolled_agents_certificate_reads_as_cryptography_reads_it(
    agent: EnrolledAgent,
) -> None:
    _agree(agent.state.cert_path.read_bytes())
    _agree(agent.state.ca_path.read_bytes())


@pytest.mark.parametrize("until_year", [2030, 2049, 2050, 2120])
def test_certificates_dated_in_utctime_and_generalizedtime(until_year: int) -> None:
    """Up to 2049 a certificate says its times in UTCTime (two-digit years); from 2050 on in
    GeneralizedTime. The certificates are made by the cryptography library now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dates")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2026, 12, 1, 8, 30, 15, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(until_year, 6, 30, 23, 59, 59, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    _agree(cert.public_bytes(serialization.Encoding.PEM))


def test_a_public_ca_certificate_from_the_systems_store() -> None:
    paths = ssl.get_default_verify_paths()
    bundle = Path(paths.cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("this machine has no CA bundle")
    first = bundle.read_bytes().split(b"-----END CERTIFICATE-----")[0]
    _agree(first + b"-----END CERTIFICATE-----\n")


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIBAAo=\n-----END CERTIFICATE-----\n",
    ],
)
def test_broken_input_is_refused_with_a_reason(pem: bytes) -> None:
    with pytest.raises(CertificateUnreadable):
        read_validity(pem)
