"""When a PEM certificate starts and stops being valid, read without the cryptography package.

The service asks this on every round ("is renewal due?"). Loading `cryptography` for it would
keep about 9 MB of the agent resident for a question answered by two dates at a fixed place
in the certificate: tbsCertificate -> validity -> notBefore, notAfter (RFC 5280 4.1). The
full library is loaded only when a renewal actually happens.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

_SEQUENCE = 0x30
_EXPLICIT_VERSION = 0xA0
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


class CertificateUnreadable(ValueError):
    """The file is not a PEM X.509 certificate this reader understands."""


@dataclass(frozen=True)
class Validity:
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before


def read_validity(pem: bytes) -> Validity:
    """The validity period of the first certificate in `pem`."""
    der = _first_der(pem)
    certificate, _ = _element(der, 0, _SEQUENCE)
    tbs, _ = _element(certificate, 0, _SEQUENCE)
    at = 0
    if tbs[:1] == bytes([_EXPLICIT_VERSION]):
        _, at = _any(tbs, at)
    for _ in range(3):  # serialNumber, signature algorithm, issuer
        _, at = _any(tbs, at)
    validity, _ = _element(tbs, at, _SEQUENCE)
    not_before, at = _time(validity, 0)
    not_after, _ = _time(validity, at)
    return Validity(not_before, not_after)


def _first_der(pem: bytes) -> bytes:
    return pem_der(pem)


def pem_der(pem: bytes, labels: tuple[bytes, ...] = (b"CERTIFICATE",)) -> bytes:
    """The DER of the first PEM block labelled one of `labels` (a certificate by default; the
    agent's key is "PRIVATE KEY"). CertificateUnreadable when there is none, or its body is
    not base64."""
    blocks = [(pem.find(b"-----BEGIN %s-----" % label), label) for label in labels]
    found = [(start, label) for start, label in blocks if start >= 0]
    if not found:
        raise CertificateUnreadable("no PEM certificate block")
    start, label = min(found)
    begin, end = b"-----BEGIN %s-----" % label, b"-----END %s-----" % label
    stop = pem.find(end, start + len(begin))
    if stop < 0:
        raise CertificateUnreadable("no PEM certificate block")
    try:
        return base64.b64decode(b"".join(pem[start + len(begin) : stop].split()), validate=True)
    except binascii.Error as exc:
        raise CertificateUnreadable("the PEM block is not base64") from exc


def _any(data: bytes, at: int) -> tuple[bytes, int]:
    """The content of the DER element at `at` and where the next one starts."""
    if at + 2 > len(data):
        raise CertificateUnreadable("the certificate ends early")
    length, at = data[at + 1], at + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or at + count > len(data):
            raise CertificateUnreadable("a length the certificate cannot have")
        length, at = int.from_bytes(data[at : at + count], "big"), at + count
    if at + length > len(data):
        raise CertificateUnreadable("the certificate ends early")
    return data[at : at + length], at + length


def _element(data: bytes, at: int, tag: int) -> tuple[bytes, int]:
    if at >= len(data) or data[at] != tag:
        raise CertificateUnreadable(f"expected DER tag {tag:#x} at byte {at}")
    return _any(data, at)


def _time(data: bytes, at: int) -> tuple[dt.datetime, int]:
    if at >= len(data) or data[at] not in (_UTC_TIME, _GENERALIZED_TIME):
        raise CertificateUnreadable("the validity period holds no time")
    tag = data[at]
    content, after = _any(data, at)
    text = content.decode("ascii", "replace")
    try:
        if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; years 50-99 are 19xx (RFC 5280 4.1.2.5.1)
            moment = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if moment.year >= 2050:
                moment = moment.replace(year=moment.year - 100)
        else:
            moment = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    except ValueError as exc:
        raise CertificateUnreadable(f"{text!r} is not a certificate time") from exc
    return moment.replace(tzinfo=dt.UTC), after
