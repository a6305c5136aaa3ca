"""Reaching a collector through an HTTPS proxy, for networks where nothing leaves without one.

An HTTPS proxy (`http://proxy.corp.example:3128`) relays an encrypted connection after an HTTP
`CONNECT host:port` (RFC 9110, 9.3.6): it sees where the agent connects, never what it says,
so mutual TLS and CA pinning work through it unchanged. Every connection to a collector goes
through the same proxy: gRPC's channels by its `grpc.http_proxy` option (`channel_options`),
and the plain TLS connections that pin the CA and diagnose a failure (`devposture.net.pinning`,
`devposture.net.tls_probe`) by `connect` here.

A proxy that asks for a password is not supported: the password would sit in a file on every
computer. Allow the collector's address on the proxy without authentication instead.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from devposture.net.address import CollectorAddress
from devposture.policy.cli_messages import BadValue, Worded, said

# The most a proxy's answer to CONNECT may hold before the tunnel starts: a status line and
# some headers. A longer one is not a proxy speaking.
_MAX_ANSWER = 16 * 1024


class ProxyError(Worded, OSError):
    """The proxy could not be reached, or would not open the tunnel; the message says which
    (an OSError to the code that connects, worded for the person)."""


@dataclass(frozen=True)
class HttpsProxy:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HttpsProxy:
        """`http://host:port` (the scheme is how the agent talks to the proxy; the traffic
        inside the tunnel is TLS all the same). Raises ValueError naming the fix."""
        example = said("write it as http://HOST:PORT, e.g. http://proxy.corp.example:3128")
        cleaned = text.strip()
        if "://" not in cleaned:
            raise BadValue("the proxy {proxy} has no scheme: {example}", proxy=repr(cleaned),
                           example=example)  # fmt: skip
        parts = urlsplit(cleaned)
        if parts.scheme.lower() != "http":
            raise BadValue(
                "the proxy's scheme must be http (the tunnel inside it is TLS), not {scheme}:"
                " {example}",
                scheme=repr(parts.scheme), example=example,
            )
        if parts.username is not None or parts.password is not None:
            raise BadValue(
                "a proxy that asks for a user name and password is not supported (it would sit"
                " in a file on every computer): let the proxy allow the collector's address"
                " without authentication, and {example}",
                example=example,
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BadValue("the proxy {proxy} has a path or query: {example}",
                           proxy=repr(cleaned), example=example)  # fmt: skip
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or not 0 < port < 65536:
            raise BadValue("the proxy {proxy} names no host or port: {example}",
                           proxy=repr(cleaned), example=example)  # fmt: skip
        return cls(parts.hostname, port)

    @property
    def url(self) -> str:
        return f"http://{CollectorAddress(self.host, self.port).target()}"

    def __str__(self) -> str:
        return self.url


def channel_options(proxy: HttpsProxy | None) -> tuple[tuple[str, str], ...]:
    """gRPC channel options that send the channel through `proxy` (none without one)."""
    return (("grpc.http_proxy", proxy.url),) if proxy is not None else ()


def _read_answer(sock: socket.socket) -> bytes:
    """The proxy's answer up to its blank line, and not a byte more: what follows is the
    collector's TLS."""
    answer = b""
    while not answer.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        answer += byte
        if len(answer) > _MAX_ANSWER:
            break
    return answer


def _tunnel(proxy: HttpsProxy, host: str, port: int, timeout: float) -> socket.socket:
    target = CollectorAddress(host, port).target()
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except OSError as exc:
        raise ProxyError(
            "cannot reach the HTTPS proxy {proxy} ({problem}); check the proxy setting"
            " ([network] https_proxy in agent.toml)",
            proxy=proxy, problem=exc,
        ) from exc
    try:
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        answer = _read_answer(sock)
    except OSError as exc:
        sock.close()
        raise ProxyError("the HTTPS proxy {proxy} broke off ({problem})", proxy=proxy,
                         problem=exc) from exc  # fmt: skip
    status = answer.split(b"\r\n", 1)[0].decode("latin-1").strip()
    words = status.split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or words[1] != "200":
        sock.close()
        shown = status or said("no answer")
        raise ProxyError(
            "the HTTPS proxy {proxy} did not open a tunnel to {target} ({answer}): ask for"
            " CONNECT to {target} to be allowed on the proxy",
            proxy=proxy, target=target, answer=shown,
        )
    return sock


def connect(
    host: str, port: int, timeout: float, proxy: HttpsProxy | None = None
) -> socket.socket:
    """A TCP connection to `host:port`, directly or through `proxy`'s tunnel. Raises OSError
    (ProxyError for the proxy's part) naming what could not be reached."""
    if proxy is None:
        return socket.create_connection((host, port), timeout=timeout)
    return _tunnel(proxy, host, port, timeout)
