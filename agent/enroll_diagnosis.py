"""Why an enrollment could not talk to the collector, when it can be told: the port given is
the report port, or the name given is not on the collector's certificate.

gRPC reports both as UNAVAILABLE with a transport message ("Socket closed", "Peer name … is
not in peer certificate") that tells an employee or an installer nothing about the fix. Once
the collector's CA is pinned, one more TLS connection, verified against that CA, can tell:

* the report port asks every caller for a device certificate (mutual TLS). An agent that has
  none completes the TLS 1.3 handshake, and the collector then closes the connection as soon
  as the client speaks (its first HTTP/2 bytes), where the enrollment port answers them;
* the certificate the collector presents lists the names and addresses it may be reached
  by; the one given is either among them or not.

Only the error path runs this; a working enrollment opens no extra connection.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

from agent.address import CollectorAddress

DEFAULT_ENROLL_PORT = 7443
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


def _listed(host: str, dns: list[str], ips: list[str]) -> bool:
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


def probe_tls(address: CollectorAddress, ca_pem: bytes, timeout: float = 15.0) -> (
    TlsFindings | None
):  # fmt: skip
    """Connect once to `address`, trusting `ca_pem` only, and see what answers; None when
    nothing does (the caller then says what gRPC said)."""
    host = address.host
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # checked below, to say which names would work
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        context.set_alpn_protocols(["h2"])
        with (
            socket.create_connection((host, address.port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            asks = _asks_for_a_certificate(tls)
    except (OSError, ValueError):
        return None
    if der is None:
        return TlsFindings(asks, None, True)
    dns, ips = _names(der)
    return TlsFindings(asks, (dns, ips), _listed(host, dns, ips))


def unlisted_name(address: CollectorAddress, names: tuple[list[str], list[str]]) -> str:
    """The advice when the collector's certificate does not list the name connected by."""
    host = address.host
    dns, ips = names
    return (
        f"the collector's certificate does not list {host!r}, so the connection is not"
        f" trusted (it lists {', '.join(dns + ips) or 'no names'}). Connect with one of"
        f" those names, or ask IT to add {host!r} on the collector with `devposture-collector"
        f" tls rotate --san {host}` (agents already enrolled notice nothing)"
    )


def diagnose(address: CollectorAddress, ca_pem: bytes, timeout: float = 15.0) -> str | None:
    """What is wrong with enrolling at `address`, whose CA is `ca_pem`; None when this
    cannot tell (the caller then says what gRPC said)."""
    found = probe_tls(address, ca_pem, timeout)
    if found is None:
        return None
    if found.asks_for_certificate:
        return (
            f"{address.target()} asks for a device certificate, so it is probably the collector's"
            " report port (mutual TLS), which only enrolled devices can use. Enroll at the"
            f" collector's enrollment port instead: {DEFAULT_ENROLL_PORT} by default"
            " (`enroll_port` in the collector's collector.toml), e.g. --collector"
            f" {address.target(DEFAULT_ENROLL_PORT)}"
        )
    if found.names is not None and not found.name_listed:
        return unlisted_name(address, found.names)
    return None
