"""One attempt's whole deadline, over every socket operation the attempt makes.

Why: the `timeout=` of urllib and smtplib bounds each socket operation, not the attempt. A
receiver (or a box on the way) that sends one byte every 9 s keeps each read under its 10 s
and holds the attempt for as long as it likes, and with it every alert behind it. Here each
operation (the TCP connect, the TLS handshake, each send and each read) gets what is left of
the attempt's time, at most `Limits.operation`; once the attempt's time is spent the operation
under way, or the next one, fails with `TooSlow`, and the deadline remembers it (`hit`):
smtplib turns a failed read into a disconnection, so a channel asks the deadline, not the
exception, whether the receiver was too slow.

The hooks are the sockets themselves: the TCP socket is made by `Deadline.connect` (http.client
opens its socket through `_create_connection`, smtplib through `_get_socket`), and a TLS socket
is of the class the attempt's `SSLContext` makes (`sslsocket_class`, documented as meant to be
overridden). The name lookup before the connect is the system resolver's, bounded by its own
timeouts, not by this deadline.
"""

from __future__ import annotations

import http.client
import smtplib
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar, TypeVar

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

T = TypeVar("T")

ATTEMPT_SECONDS = 30.0  # the whole exchange: connect, TLS, send, the answer read
OPERATION_SECONDS = 10.0  # each operation within it: an answer silent this long is none


@dataclass(frozen=True)
class Limits:
    """How long one attempt may take in all (`attempt`), and each operation in it."""

    attempt: float = ATTEMPT_SECONDS
    operation: float = OPERATION_SECONDS


DEFAULT_LIMITS = Limits()


class TooSlow(TimeoutError):
    """The attempt's whole time is spent."""


class Deadline:
    """The deadline of one attempt, from now (`clock`, monotonic, in seconds)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._ends = clock() + limits.attempt
        self.hit = False  # an operation was cut, or refused, because the time was spent

    @property
    def problem(self) -> str:
        """What an attempt cut by the deadline failed of, for the log and the outbox."""
        return f"too slow: no complete answer within {self.limits.attempt:g} s"

    def _timeout(self) -> tuple[float, bool]:
        """The next operation's timeout, and whether it is the attempt's end (not its own)."""
        left = self._ends - self._clock()
        if left <= 0:
            self.hit = True
            raise TooSlow(self.problem)
        if left < self.limits.operation:
            return left, True
        return self.limits.operation, False

    def run(self, sock: socket.socket, operation: Callable[[], T]) -> T:
        """`operation` on `sock`, within what is left of the attempt."""
        timeout, last = self._timeout()
        sock.settimeout(timeout)
        try:
            return operation()
        except TimeoutError:
            if last:
                self.hit = True
                raise TooSlow(self.problem) from None
            raise

    def connect(
        self, address: tuple[str, int], timeout: object = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:  # fmt: skip
        """`socket.create_connection`'s connection, its every later operation bounded; the
        `timeout` a library passes is replaced by the deadline's."""
        bounded, last = self._timeout()
        try:
            plain = socket.create_connection(address, bounded, source_address)
        except TimeoutError:
            if last:
                self.hit = True
                raise TooSlow(self.problem) from None
            raise
        return _Socket(self, plain)

    def tls(self) -> ssl.SSLContext:
        """The default client context (the system's CAs, the name checked), its sockets bounded
        by this deadline, the handshake included."""
        context = ssl.create_default_context()

        class Bounded(_TlsSocket):
            pass

        Bounded.deadline = self
        context.sslsocket_class = Bounded
        return context


class _Socket(socket.socket):
    """A connected TCP socket whose every send and read is bounded by `deadline`."""

    def __init__(self, deadline: Deadline, plain: socket.socket) -> None:
        super().__init__(plain.family, plain.type, plain.proto, fileno=plain.detach())
        self.deadline = deadline

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.deadline.run(self, partial(super().recv, bufsize, flags))

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        return self.deadline.run(self, partial(super().recv_into, buffer, nbytes, flags))

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        return self.deadline.run(self, partial(super().send, data, flags))

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        self.deadline.run(self, partial(super().sendall, data, flags))


class _TlsSocket(ssl.SSLSocket):
    """A TLS socket whose handshake, sends and reads are bounded by its class's `deadline`
    (a class per attempt: `SSLContext.wrap_socket` makes the instance and shakes hands at
    once). `recv`, `recv_into` and `sendall` go through these."""

    deadline: ClassVar[Deadline]

    def do_handshake(self, block: bool = False) -> None:
        self.deadline.run(self, partial(super().do_handshake, block))

    def read(self, len: int = 1024, buffer: WriteableBuffer | None = None) -> bytes:
        return self.deadline.run(self, partial(super().read, len, buffer))

    def write(self, data: ReadableBuffer) -> int:
        return self.deadline.run(self, partial(super().write, data))

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        return self.deadline.run(self, partial(super().send, data, flags))


class _HTTPConnection(http.client.HTTPConnection):
    """A connection whose socket `deadline` opens (urllib's `timeout` is the deadline's)."""

    def __init__(self, host: str, *, deadline: Deadline, timeout: object = None) -> None:
        super().__init__(host)
        self._create_connection = deadline.connect  # how `connect` opens its socket


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, *, deadline: Deadline, context: ssl.SSLContext, timeout: object = None
    ) -> None:  # fmt: skip
        super().__init__(host, context=context)
        self._create_connection = deadline.connect  # the TCP socket the TLS one wraps


class HTTPHandler(urllib.request.HTTPHandler):
    """urllib's http:// within `deadline`."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_HTTPConnection, deadline=self._deadline), req)


class HTTPSHandler(urllib.request.HTTPSHandler):
    """urllib's https:// within `deadline`, verified as urllib's default is."""

    def __init__(self, deadline: Deadline) -> None:
        self._tls = deadline.tls()
        self._tls.set_alpn_protocols(["http/1.1"])  # as http.client sets on its own context
        super().__init__(context=self._tls)
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            partial(_HTTPSConnection, deadline=self._deadline), req, context=self._tls
        )


class _BoundedSMTP(smtplib.SMTP):
    deadline: Deadline

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.deadline.connect((host, port))  # our SMTP sets no source address


class SMTP(_BoundedSMTP):
    """An SMTP connection (plain, or STARTTLS with `deadline.tls()`) within `deadline`."""

    def __init__(self, host: str, port: int, deadline: Deadline) -> None:
        self.deadline = deadline  # before connecting, which the constructor does
        super().__init__(host, port, timeout=deadline.limits.operation)


class SMTP_SSL(smtplib.SMTP_SSL, _BoundedSMTP):
    """An SMTP connection over implicit TLS within `deadline` (smtplib's SMTP_SSL wraps the
    socket `_BoundedSMTP` opens)."""

    def __init__(self, host: str, port: int, deadline: Deadline) -> None:
        self.deadline = deadline
        super().__init__(host, port, timeout=deadline.limits.operation, context=deadline.tls())
