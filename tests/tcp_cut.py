"""A TCP relay a test can cut: the network between a collector and its PostgreSQL failing.

Every connection through it is reset at once, and new ones are refused, until it is restored
on the same port: what a collector sees of a database server that restarts, fails over or
drops off the network, without touching the server the whole test run shares.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit, urlunsplit

from tests.ports import free_port

CHUNK = 65536


class CuttableRelay:
    """Relays 127.0.0.1:`port` to `target` (host, port) until `cut`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.accepted = 0  # connections accepted so far
        self._held = 0  # the first this many wait for `release`
        self._released = threading.Event()
        self.port = free_port()
        self.restore()

    def url_through(self, url: str) -> str:
        """`url` (a PostgreSQL address of the target) through this relay."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        user = f"{netloc[0]}@" if len(netloc) == 2 else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def hold_first(self, count: int = 1) -> None:
        """The next `count` connections (counted from the start) wait, unanswered, until
        `release`: a server slow to answer a connection. Later ones are relayed at once."""
        self._held = count
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def cut(self) -> None:
        """End every connection at once and refuse new ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the relay's threads
            sock.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            with self._lock:
                self.accepted += 1
                held = self.accepted <= self._held
            if held:
                threading.Thread(target=self._relay_once_released, args=(listener, client),
                                 daemon=True).start()  # fmt: skip
            else:
                self._relay(listener, client)

    def _relay_once_released(self, listener: socket.socket, client: socket.socket) -> None:
        self._released.wait()
        self._relay(listener, client)

    def _relay(self, listener: socket.socket, client: socket.socket) -> None:
        """Connect `client` to the target and pump both ways (nothing once cut)."""
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            if self._listener is not listener:  # cut meanwhile
                client.close()
                upstream.close()
                return
            self._sockets |= {client, upstream}
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
