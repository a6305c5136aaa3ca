"""Helpers for the throttle tests: time given as data, a second source address, and a
dashboard login posted from a chosen one.

`HeldTime` replaces a throttle's clock and sleep: the clock moves only by the waits the
throttle asks for, and each wait is held until the test opens the gate. So a test can stop an
address mid-wait, look at what the server is doing, and let it go on, without ever racing the
wall clock.

`Forwarder` relays TCP connections to a server from another loopback address (127.0.0.2), so a
real gRPC client, which cannot choose its source address, reaches the server as a second
source. The relay only copies bytes: TLS runs end to end between the client and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

SECOND_SOURCE = "127.0.0.2"
DEADLINE_SECONDS = 60.0


class HeldTime:
    """A monotonic clock that only the throttle's waits move, and a sleep held at a gate."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.waits: list[float] = []
        self.gate = threading.Event()
        self.gate.set()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        while not self.gate.is_set():  # the server's loop goes on serving others meanwhile
            await asyncio.sleep(0.01)
        self.now += seconds

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


class Forwarder:
    """Listens on 127.0.0.1 and relays each connection to `target` from `source`."""

    def __init__(self, target: tuple[str, int], source: str = SECOND_SOURCE) -> None:
        self._target, self._source = target, source
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Forwarder:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:  # fmt: skip
        self._closed = True
        with contextlib.suppress(OSError):  # wakes the accept() in progress (Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._thread.join(10)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(
                    self._target, timeout=DEADLINE_SECONDS, source_address=(self._source, 0)
                )
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def post_login(
    port: int, credential: str, *, source: str = "127.0.0.1", ca_cert: Path | None = None
) -> tuple[int, str, str]:
    """POST a credential to a dashboard's /login from `source` (over HTTPS when `ca_cert`, the
    CA to trust, is given): the status, the Retry-After header and the page."""
    if ca_cert is not None:
        context = ssl.create_default_context(cafile=str(ca_cert))
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=120, context=context, source_address=(source, 0)
        )
    else:
        connection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=120, source_address=(source, 0)
        )
    try:
        connection.request(
            "POST", "/login?lang=en", body=urlencode({"credential": credential}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        response = connection.getresponse()
        text = response.read().decode("utf-8")
        return response.status, response.headers.get("retry-after", ""), text
    finally:
        connection.close()
