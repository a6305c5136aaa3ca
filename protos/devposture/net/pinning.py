"""Find the collector's CA by the fingerprint IT gave, before trusting anything it says.

This is kubeadm's discovery pattern: an agent that knows only the CA's SHA-256 opens one TLS
connection *without* verifying, reads the certificate chain the collector presents, keeps the
certificate whose fingerprint matches, and from then on verifies every connection against it.
A collector that presents no matching certificate is refused before the token is sent.

Through an HTTPS proxy (`devposture.net.proxy`) the connection is a CONNECT tunnel: the proxy
relays the TLS handshake and cannot change the certificates without failing the pin.
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from devposture.net.address import normalize_fingerprint
from devposture.net.proxy import HttpsProxy, connect
from devposture.policy.cli_messages import Worded, enumeration, said

__all__ = [
    "PinningError", "Unreachable", "fetch_pinned_ca", "fingerprint", "normalize_fingerprint",
]  # fmt: skip


class PinningError(Worded):
    """The collector could not be reached, or did not prove to be the expected one (worded
    in the reader's language when an enrollment's error shows it)."""


class Unreachable(PinningError):
    """Nothing answered over TLS at that address (or through the proxy): another address of
    the same collector, or a later try, may work."""


def fingerprint(cert: x509.Certificate) -> str:
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """DER certificates the peer sent. Public API from Python 3.13, internal before."""
    getter: Any = getattr(tls, "get_unverified_chain", None)
    if getter is None:
        getter = tls._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    chain = getter() or []
    return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]


def fetch_pinned_ca(
    host: str, port: int, pin: str, timeout: float = 15.0, proxy: HttpsProxy | None = None
) -> bytes:
    """Return the PEM of the CA certificate the collector presents whose fingerprint is `pin`
    (connecting through `proxy` when one is given)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # verified below, by fingerprint
    context.set_alpn_protocols(["h2"])
    try:
        with (
            connect(host, port, timeout, proxy) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            chain = _unverified_chain(tls)
    except (OSError, ssl.SSLError) as exc:
        raise Unreachable(
            "cannot reach the collector at {host}:{port} ({problem}); check the address and"
            " that `devposture-collector serve` is running and reachable from this computer",
            host=host, port=port, problem=exc,
        ) from exc
    seen = []
    for der in chain:
        cert = x509.load_der_x509_certificate(der)
        seen.append(fingerprint(cert))
        if fingerprint(cert) == pin:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            if not constraints.ca:
                raise PinningError("the pinned certificate is not a CA certificate")
            return cert.public_bytes(serialization.Encoding.PEM)
    raise PinningError(
        "the collector at {host}:{port} did not present the CA with fingerprint {pin}"
        " (it presented {seen}). Check the fingerprint IT gave you; if it is right, this is"
        " not your company's collector",
        host=host, port=port, pin=pin, seen=enumeration(seen) or said("no certificates"),
    )
