"""The collector's ports: bound by one collector alone, and a refusal that says why and what
to do.

gRPC turns SO_REUSEPORT on by default ("grpc.so_reuseport"). A second collector then binds the
agent ports beside the first, and the kernel hands each new connection to either of them at
random: an agent pinned to one collector's CA is told by the other that it is "not your
company's collector", and reports land in two databases. So every gRPC server of
the collector says whether its ports may be shared (`grpc_options`); they may not, unless
sharing is asked for on purpose (several workers of one collector).

gRPC's bind error says only "Failed to bind to address"; the reason (the port is taken, the
address is not this machine's, the port is privileged) is found by trying the same bind with a
plain socket once gRPC has failed (`refuse`).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import NoReturn

import grpc

from devposture.policy.cli_messages import Said, Worded, said
from devposture.policy.os_errors import os_error

REUSE_PORT_OPTION = "grpc.so_reuseport"


def grpc_options(*, shared: bool = False) -> list[tuple[str, int]]:
    """The options that make a gRPC server's ports its own, or shared on purpose."""
    return [(REUSE_PORT_OPTION, 1 if shared else 0)]


@dataclass(frozen=True)
class Listener:
    """What a port is for, and how the person starting the collector changes it (in the
    reader's language when shown)."""

    name: Said  # "report port"
    port_fix: Said  # what to give instead of a taken port
    host_fix: Said  # where the listening address comes from


_AGENT_PORT_FIX = said(
    "choose other ports with --enroll-port/--report-port ([listen] in collector.toml)"
)
_AGENT_HOST_FIX = said("fix [listen] host in collector.toml, or --listen")
ENROLL = Listener(said("enrollment port"), _AGENT_PORT_FIX, _AGENT_HOST_FIX)
REPORT = Listener(said("report port"), _AGENT_PORT_FIX, _AGENT_HOST_FIX)
ADMIN = Listener(
    said("administration port"),
    said("choose another with --admin-port ([admin] port in collector.toml)"),
    said("fix [admin] host in collector.toml"),
)
WEB = Listener(
    said("dashboard port"),
    said("choose another with --web-port ([web] port in collector.toml)"),
    said("fix [web] host in collector.toml"),
)
METRICS = Listener(
    said("metrics port"),
    said("choose another with --metrics-port ([metrics] port in collector.toml)"),
    said("fix [metrics] host in collector.toml"),
)


class PortUnavailable(Worded, OSError):
    """A port could not be bound; the message names the port, the reason and the fix (worded
    in the reader's language by `serve`)."""


IN_USE = "in use"


def reason(host: str, port: int) -> str | Said | None:
    """Why binding `host`:`port` fails right now, found with plain sockets (with
    SO_REUSEADDR, as gRPC and uvicorn bind): IN_USE, another reason, or None when the bind
    would work (then whatever failed was not the address)."""
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return said("{host} is not a name this machine can resolve ({problem})", host=host,
                    problem=exc.strerror)
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return IN_USE
                if exc.errno == errno.EADDRNOTAVAIL:
                    return said("{host} is not an address of this machine", host=host)
                if exc.errno == errno.EACCES:
                    return said("port {port} is privileged (below 1024): only root may listen"
                                " there", port=port)
                return os_error(exc)
    return None


def refuse(listener: Listener, host: str, port: int, error: OSError) -> NoReturn:
    """Raise a refusal that says why `host`:`port` could not be bound and what to do
    (PortUnavailable, caused by `error`); or `error` itself when the address can be bound now
    (it failed for another reason, e.g. a certificate, and says so itself)."""
    why = reason(host, port)
    if why is None:
        raise error
    if why == IN_USE:
        raise PortUnavailable(
            "the {listener} {port} is already in use (another collector, or another program,"
            " listens there): stop it, or {fix}",
            listener=listener.name, port=port, fix=listener.port_fix,
        ) from error
    raise PortUnavailable(
        "cannot listen on {address} ({listener}): {problem}; {fix}",
        address=_address(host, port), listener=listener.name, problem=why,
        fix=listener.host_fix,
    ) from error


def bind_grpc(
    server: grpc.aio.Server, listener: Listener, host: str, port: int,
    credentials: grpc.ServerCredentials,
) -> int:  # fmt: skip
    """Add a TLS port to `server`; the port bound (a free one for 0), or PortUnavailable."""
    address = _address(host, port)
    try:
        bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        failure = PortUnavailable("cannot listen on {address} ({listener}): {problem}",
                                  address=address, listener=listener.name, problem=exc)
        refuse(listener, host, port, failure)
    if bound == 0:
        refuse(listener, host, port,
               PortUnavailable("cannot listen on {address}", address=address))
    return bound


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
