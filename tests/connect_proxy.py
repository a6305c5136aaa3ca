"""A small real HTTPS proxy for tests: it answers `CONNECT host:port` by opening that connection
and relaying bytes both ways (RFC 9110, 9.3.6), as squid or a corporate proxy does, and records
every tunnel it opened. It runs on loopback, in a thread with its own asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class ConnectProxy:
    """The running proxy: its port, and the targets of the tunnels it opened, in order."""

    port: int = 0
    refuse: bool = False  # answer 403 to every CONNECT (a proxy that blocks the collector)
    tunnels: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def opened(self) -> list[str]:
        with self._lock:
            return list(self.tunnels)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[str]:
        """The tunnels once at least `count` were opened (or after `timeout`)."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.tunnels) >= count, timeout)
            return list(self.tunnels)

    def _record(self, into: list[str], text: str) -> None:
        with self._lock:
            into.append(text)
            self._lock.notify_all()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        self._record(self.requests, line)
        method, target, _ = [*line.split(" ", 2), "", ""][:3]
        if method != "CONNECT" or self.refuse:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, _, port = target.rpartition(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
        except (OSError, ValueError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        self._record(self.tunnels, target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


@contextlib.contextmanager
def connect_proxy(*, refuse: bool = False) -> Iterator[ConnectProxy]:
    """A proxy serving on a free loopback port until the block ends."""
    proxy = ConnectProxy(refuse=refuse)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="connect-proxy", daemon=True)
    thread.start()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(proxy.handle, "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:

        async def stop() -> None:
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
