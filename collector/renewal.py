"""Checking a reestablishment: an agent back after its certificate expired.

The agent cannot pass the mutual-TLS handshake with an expired certificate, so it comes to the
enrollment port and proves three things instead: the certificate was signed by a CA this
collector trusts (it is one of ours), the new request is over the same key (same device id),
and it holds that key now (a fresh signature over this very request). What it cannot prove is
that it was not revoked: the store decides that, as for every call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from devposture.collector.pki import device_id_for_certificate, pem_blocks
from devposture.policy.cli_messages import BadValue
from devposture.v1 import devposture_pb2 as pb
from devposture.v1.proofs import reestablish_payload

# A device silent for longer than this must enroll again with a new token.
MAX_EXPIRED = dt.timedelta(days=365)
# The signature's time may be off by this much from the collector's clock (agents' clocks
# drift, and a laptop back from a week away may not have synced yet).
SIGNATURE_WINDOW = dt.timedelta(hours=24)
MAX_PEM_BYTES = 16 * 1024


class ProofRejected(BadValue):
    """The reestablishment does not prove the device's identity; the message says why and
    what to do, worded in the reader's language (the enrollment port sends it worded)."""


@dataclass(frozen=True)
class ProvenDevice:
    device_id: str
    serial: str
    signed_at: dt.datetime


def _spki(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProofRejected("device keys are ECDSA: this certificate holds another kind of key")
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _issued_by_trusted(cert: x509.Certificate, trusted: list[x509.Certificate]) -> bool:
    for ca in trusted:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return True
    return False


def verify_reestablish(
    request: pb.ReestablishRequest, trusted: list[x509.Certificate], now: dt.datetime
) -> ProvenDevice:
    """The device the request proves to be, or ProofRejected."""
    if (
        len(request.certificate_pem) > MAX_PEM_BYTES
        or len(request.csr_pem) > MAX_PEM_BYTES
        or pem_blocks(request.certificate_pem.encode("ascii", "replace")) != 1
        or pem_blocks(request.csr_pem.encode("ascii", "replace")) != 1
    ):
        raise ProofRejected("certificate_pem and csr_pem must each hold one PEM object")
    try:
        cert = x509.load_pem_x509_certificate(request.certificate_pem.encode("ascii", "replace"))
        csr = x509.load_pem_x509_csr(request.csr_pem.encode("ascii", "replace"))
        # Read here, once: a key the library cannot read (SM2, ...) raises, and is refused.
        keys = (csr.public_key(), cert.public_key())
        csr_signed = csr.is_signature_valid
    except UnsupportedAlgorithm as exc:
        raise ProofRejected(
            "device keys are ECDSA: this request holds another kind of key"
        ) from exc
    except ValueError as exc:
        raise ProofRejected("certificate_pem or csr_pem is not valid PEM") from exc
    if not _issued_by_trusted(cert, trusted):
        raise ProofRejected(
            "the certificate was not signed by a CA this collector trusts:"
            " enroll this computer again with a new token"
        )
    if cert.not_valid_after_utc < now - MAX_EXPIRED:
        raise ProofRejected(
            "the certificate expired more than {days} days ago:"
            " enroll this computer again with a new token",
            days=MAX_EXPIRED.days,
        )
    if not csr_signed or _spki(keys[0]) != _spki(keys[1]):
        raise ProofRejected("the new request is not signed by the certificate's own key")
    if not request.HasField("signed_at"):
        raise ProofRejected("signed_at is missing")
    try:
        signed_at = request.signed_at.ToDatetime(dt.UTC)
    except (ValueError, OverflowError) as exc:  # nanos out of range, a year past 9999, ...
        raise ProofRejected(
            "signed_at is not a valid time: set this computer's clock and try again"
        ) from exc
    if abs(now - signed_at) > SIGNATURE_WINDOW:
        raise ProofRejected(
            "the proof was signed more than a day away from the collector's clock:"
            " set this computer's clock and try again"
        )
    device_id = device_id_for_certificate(cert)
    serial = format(cert.serial_number, "x")
    public_key = keys[1]
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked by _spki above
    for spelled in serial_spellings(cert.serial_number):
        payload = reestablish_payload(
            device_id, spelled, request.signed_at.seconds, request.csr_pem
        )
        for signature in signature_encodings(request.signature, public_key.curve):
            try:
                public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return ProvenDevice(device_id, serial, signed_at)
    raise ProofRejected(
        "the proof of the device key does not verify: sign the bytes devposture.proto gives"
        " for ReestablishRequest.signature (the serial in lowercase hex) with the key of"
        " certificate_pem"
    )


def signature_encodings(signature: bytes, curve: ec.EllipticCurve) -> list[bytes]:
    """The signature as DER, as a client may have encoded it: DER already (OpenSSL, Node's
    crypto, Go's SignASN1, Java), or r and s side by side, each as long as the curve's order
    (IEEE P1363: WebCrypto, .NET's ECDsa.SignData). The contract asked only for an
    "ECDSA-SHA256 signature", and a proof in the second form was refused as if its bytes were
    wrong. Either form carries the same r and s, so taking both proves no less."""
    size = (curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return [signature]
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    return [signature, encode_dss_signature(r, s)]


def serial_spellings(serial: int) -> list[str]:
    """The serial in lowercase hex as a client may have signed it: without leading zeros
    (the contract's form), or as its bytes (even length, as OpenSSL and Node.js print it; with
    DER's leading zero byte when the top bit is set)."""
    spellings = [format(serial, "x")]
    for size in ((serial.bit_length() + 7) // 8, serial.bit_length() // 8 + 1):
        spelled = serial.to_bytes(size, "big").hex()
        if spelled not in spellings:
            spellings.append(spelled)
    return spellings
