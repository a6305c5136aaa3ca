"""Certificate authority, token format and report rendering."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devposture.collector.pki import Authority, CsrRejected, device_id_for_public_key
from devposture.collector.render import render
from devposture.collector.tokens import TokenFormatError, new_token, parse_token

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def _csr(key: ec.EllipticCurvePrivateKey, cn: str = "anything") -> bytes:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def test_device_certificate_names_the_key_not_the_requested_subject() -> None:
    ca = Authority.create()
    key = ec.generate_private_key(ec.SECP256R1())
    device_id, cert = ca.sign_device_csr(_csr(key, cn="someone-else"), dt.timedelta(days=1))
    assert device_id == device_id_for_public_key(key.public_key())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
    cert.verify_directly_issued_by(ca.cert)


def test_csr_with_a_broken_signature_is_rejected() -> None:
    ca = Authority.create()
    pem = _csr(ec.generate_private_key(ec.SECP256R1()))
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature
    broken = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrRejected, match="does not verify"):
        ca.sign_device_csr(broken, dt.timedelta(days=1))


def test_garbage_csr_is_rejected() -> None:
    with pytest.raises(CsrRejected, match="not valid PEM"):
        Authority.create().sign_device_csr(b"hello", dt.timedelta(days=1))


def test_token_round_trip_and_format_errors() -> None:
    token = new_token()
    assert parse_token(f"  {token}\n") == token
    for bad in ("", "dpt_xyz_abc", str(token)[:-1], "Bearer " + str(token)):
        with pytest.raises(TokenFormatError):
            parse_token(bad)


def test_render_formats_agree() -> None:
    rows = [{"check": "firewall", "state": "PASS", "reason": "防火墙 on, ok"}]
    columns = ("check", "state", "reason")
    table = render(rows, columns, "table").splitlines()
    assert table[0].split() == ["CHECK", "STATE", "REASON"]
    assert table[1].startswith("firewall  PASS   防火墙 on, ok")
    assert json.loads(render(rows, columns, "json")) == rows
    assert render(rows, columns, "csv") == (
        '\ufeffcheck,state,reason\r\nfirewall,PASS,"防火墙 on, ok"\r\n'  # RFC 4180's line ends
    )
