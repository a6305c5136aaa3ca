"""What the collector trusts and signs with: its CA(s) and its server certificate.

One place answers "which CA signs device certificates now" and "which CAs does the collector
accept", so that a CA rollover (old and new trusted side by side) changes this module only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from collector.config import CollectorConfig
from collector.pki import Authority, cert_pem


@dataclass
class Trust:
    """The collector's signing CA and the CA certificates it trusts."""

    config: CollectorConfig

    def signing_authority(self) -> Authority:
        """The CA that signs device (and server) certificates now."""
        return Authority.load(self.config.ca_key.read_bytes(), self.config.ca_cert.read_bytes())

    def trusted_cas(self) -> list[x509.Certificate]:
        """Every CA whose device certificates the collector accepts."""
        return [x509.load_pem_x509_certificate(self.config.ca_cert.read_bytes())]

    def trusted_ca_pem(self) -> bytes:
        """The trusted CAs as one PEM bundle, what agents keep as their trust anchors."""
        return b"".join(cert_pem(c) for c in self.trusted_cas())
