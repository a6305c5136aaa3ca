"""The collector's certificate authority: server certificate, device certificates, fingerprints.

Identity comes from the channel, not the message (DESIGN principle 7): a device's id is derived
from its public key, and the client certificate the collector signs names that id. Anyone can
recompute the id from the certificate; nobody can choose one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devposture.collector.clock import utcnow
from devposture.policy.cli_messages import BadValue

DEVICE_URI_PREFIX = "urn:devposture:device:"
CA_LIFETIME = dt.timedelta(days=3650)
SERVER_CERT_LIFETIME = dt.timedelta(days=825)
# Backdating absorbs clock differences: an agent whose clock is behind still accepts a server
# certificate just made (`tls rotate`, `init`), and a device certificate stays valid to the
# collector that issued it when its clock, running ahead, is set back (an NTP correction, a VM
# resumed). An hour, as public CAs backdate; five minutes left a collector corrected by more
# refusing every certificate it had issued since, until its clock caught up.
BACKDATE = dt.timedelta(hours=1)

CertificateIssuerKey = ec.EllipticCurvePrivateKey


class CsrRejected(BadValue):
    """A certificate signing request that the collector will not sign; the message says why
    and what to do, worded in the reader's language (the ports send it worded, as their other
    refusals: an employee reading Chinese read these in English)."""


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256: small, fast, and accepted by every TLS stack gRPC ships with."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, as `sha256:` and lowercase hex.

    This is what `init` prints and what an agent pins (`--ca-fingerprint`).
    """
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def device_id_for_public_key(public_key: object) -> str:
    """The device id: the first 128 bits of SHA-256 over the SubjectPublicKeyInfo, in hex."""
    if not isinstance(
        public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    ):
        raise CsrRejected("unsupported public key type")
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()[:32]


def pem_blocks(pem: bytes) -> int:
    """How many PEM objects `pem` holds (its BEGIN lines)."""
    return pem.count(b"-----BEGIN ")


def device_id_for_certificate(cert: x509.Certificate) -> str:
    return device_id_for_public_key(cert.public_key())


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


@dataclass(frozen=True)
class Authority:
    """The CA key and certificate of one collector installation."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str = "devposture collector CA") -> Authority:
        key = new_private_key()
        now = utcnow()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devposture"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(_ski(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)

    @classmethod
    def load(cls, key_pem: bytes, cert_pem_bytes: bytes) -> Authority:
        return cls(
            key=load_private_key(key_pem), cert=x509.load_pem_x509_certificate(cert_pem_bytes)
        )

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, lifetime: dt.timedelta
    ) -> x509.CertificateBuilder:
        now = utcnow()
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + lifetime, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(_ski(public_key), critical=False)
        )

    def issue_server_certificate(
        self, key: ec.EllipticCurvePrivateKey, dns_names: list[str], ip_addresses: list[str]
    ) -> x509.Certificate:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ip_addresses)]
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devposture"),
                x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "collector"),
            ]
        )
        return (
            self._builder(subject, key.public_key(), SERVER_CERT_LIFETIME)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def sign_device_csr(
        self, csr_pem: bytes, lifetime: dt.timedelta
    ) -> tuple[str, x509.Certificate]:
        """Verify a device's CSR (proof it holds the key) and sign a client certificate for it.

        The subject the agent asked for is ignored: the certificate names the device id that the
        public key determines, so a device cannot claim another's identity.
        """
        blocks = pem_blocks(csr_pem)
        if blocks > 1:  # the loader reads the first and would quietly drop the rest
            raise CsrRejected(
                "csr_pem must hold one PEM certificate request, not {blocks}: send the"
                " request of this computer's own key alone",
                blocks=blocks,
            )
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CsrRejected(
                "the certificate signing request is not valid PEM PKCS#10: update the agent,"
                " or enroll again (`devposture-agent enroll --force`)"
            ) from exc
        try:
            public_key = csr.public_key()
            signature_ok = csr.is_signature_valid
        except UnsupportedAlgorithm as exc:  # SM2 and other keys the library cannot read
            raise CsrRejected("device keys must be ECDSA (P-256 or P-384)") from exc
        except (InvalidSignature, ValueError):
            signature_ok = False
        if not signature_ok:
            raise CsrRejected(
                "the certificate signing request's signature does not verify: enroll again"
                " (`devposture-agent enroll --force`)"
            )
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CsrRejected("device keys must be ECDSA (P-256 or P-384)")
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise CsrRejected(
                "unsupported curve {curve}: device keys must be ECDSA (P-256 or P-384)",
                curve=public_key.curve.name,
            )
        device_id = device_id_for_public_key(public_key)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devposture device"),
                x509.NameAttribute(NameOID.COMMON_NAME, device_id),
            ]
        )
        cert = (
            self._builder(subject, public_key, lifetime)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(DEVICE_URI_PREFIX + device_id)]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return device_id, cert
