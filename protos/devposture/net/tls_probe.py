"""One TLS connection to a collector port, verified against its pinned CA only, to tell what
answers there: a port that asks for a device certificate (the report port, mutual TLS), and the
names the collector's certificate lists. The agent's enrollment and IT's remote admin CLI both
use it, on their error path only, to say what is wrong in words the person can act on.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass

from cryptography import x509

from devposture.net.address import CollectorAddress
from devposture.net.proxy import HttpsProxy, connect
from devposture.policy.cli_messages import Said, enumeration, said

# The client connection preface and an empty SETTINGS frame (RFC 9113, 3.4): what a gRPC
# client sends first, so the enrollment port answers it with its own SETTINGS.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _names(der: bytes) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses a certificate is valid for."""
    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    return dns, ips


def listed(host: str, dns: list[str], ips: list[str]) -> bool:
    """Whether a certificate with these names is valid for `host` (a name or an address)."""
    try:
        return str(ipaddress.ip_address(host)) in ips
    except ValueError:
        return host.lower().rstrip(".") in (d.lower() for d in dns)


def _asks_for_a_certificate(tls: ssl.SSLSocket) -> bool:
    """Whether the server hung up on our first bytes instead of answering them."""
    try:
        tls.sendall(_HTTP2_PREFACE)
        return tls.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    except OSError:  # a timeout: no answer either way
        return False


@dataclass(frozen=True)
class TlsFindings:
    """What one verified TLS connection to a collector port showed."""

    asks_for_certificate: bool  # a mutual-TLS port (the report port)
    names: tuple[list[str], list[str]] | None  # the certificate's DNS names and IPs
    name_listed: bool  # whether the name connected by is among them


def probe_tls(
    address: CollectorAddress, ca_pem: bytes, timeout: float = 15.0,
    proxy: HttpsProxy | None = None,
) -> TlsFindings | None:  # fmt: skip
    """Connect once to `address` (through `proxy` when one is given), trusting `ca_pem` only,
    and see what answers; None when nothing does (the caller then says what gRPC said)."""
    host = address.host
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # checked below, to say which names would work
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        context.set_alpn_protocols(["h2"])
        with (
            connect(host, address.port, timeout, proxy) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            asks = _asks_for_a_certificate(tls)
    except (OSError, ValueError):
        return None
    if der is None:
        return TlsFindings(asks, None, True)
    dns, ips = _names(der)
    return TlsFindings(asks, (dns, ips), listed(host, dns, ips))


def unlisted_name(address: CollectorAddress, names: tuple[list[str], list[str]]) -> Said:
    """The advice when the collector's certificate does not list the name connected by,
    worded when shown (an enrollment's error, the admin command line's)."""
    host = address.host
    dns, ips = names
    return said(
        "the collector's certificate does not list {name}, so the connection is not"
        " trusted (it lists {listed}). Connect with one of those names, or ask IT to add"
        " {name} on the collector with `devposture-collector tls rotate --san {host}` (agents"
        " already enrolled notice nothing)",
        name=repr(host), listed=enumeration(dns + ips) or said("no names"), host=host,
    )


