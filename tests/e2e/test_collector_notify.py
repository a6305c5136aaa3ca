"""A real `devposture-collector serve` under `Type=notify`, as systemd runs it.

The test plays the service manager: it binds the datagram socket named in NOTIFY_SOCKET and
reads what the collector says. READY=1 once every port is bound (STATUS= names each of them),
WATCHDOG=1 at the manager's interval (WATCHDOG_USEC), still while it drains, STOPPING=1 as
soon as SIGTERM arrives, and a clean exit. Every wait is for a message or for the process,
with a generous timeout; nothing depends on how fast the machine is.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.databases import init_arguments
from tests.e2e.conftest import COLLECTOR, run

WAIT = 60.0  # seconds: the most any single message may take on a slow machine


@dataclass
class Manager:
    """The service manager's side of the notify socket: every datagram, in order."""

    sock: socket.socket
    address: str
    received: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def read_forever(self) -> None:
        # Read until the socket closes, so that the collector's blocking sends never wait
        # on a full queue (a Unix datagram socket holds only a few unread messages).
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self.received.put(data.decode("utf-8"))

    def wait_for(self, field_: str) -> str:
        """The next message holding `field_` (e.g. "READY=1"); those before it are kept."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                message = self.received.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {field_} within {WAIT:g} s; received so far: {self.seen}")
            self.seen.append(message)
            if field_ in message.split("\n"):
                return message

    def rest(self) -> None:
        """Read every message still on its way (call once the collector has exited): a
        marker sent to the socket now arrives after all of them, datagrams keep their order."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as marker:
            marker.connect("\0" + self.address[1:])
            marker.sendall(b"END=1")
        self.wait_for("END=1")
        self.seen.pop()


@pytest.fixture
def manager() -> Iterator[Manager]:
    # An abstract socket ("@name"): no path length limit, nothing left on disk.
    name = f"devposture-test-notify-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    listening = Manager(sock, "@" + name)
    reader = threading.Thread(target=listening.read_forever, daemon=True)
    reader.start()
    try:
        yield listening
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        reader.join(WAIT)


def _serve(
    tmp_path: Path, manager: Manager, drain_seconds: str, watchdog_usec: str | None
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    data, ready = tmp_path / "collector", tmp_path / "ready.json"
    initialized = run(COLLECTOR, "init", "--data", str(data), *init_arguments())
    assert initialized.returncode == 0, initialized.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env["NOTIFY_SOCKET"] = manager.address
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = watchdog_usec
    log = tmp_path / "collector.log"
    with log.open("wb") as log_file:
        argv = [
            COLLECTOR, "serve", "--data", str(data), "--drain-seconds", drain_seconds,
            "--enroll-port", "0", "--report-port", "0", "--admin-port", "0",
            "--metrics-port", "0", "--web-port", "0", "--ready-file", str(ready),
        ]  # fmt: skip
        server = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    return server, ready, log


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.kill()
        server.wait(WAIT)


def test_ready_with_its_ports_watchdog_pings_and_stopping_on_sigterm(
    tmp_path: Path, manager: Manager
) -> None:
    # A 60 s drain that the test ends itself with a second SIGTERM once it has seen a ping
    # during the drain: nothing waits on the clock.
    server, ready_file, log = _serve(tmp_path, manager, "60", watchdog_usec="200000")
    try:
        ready = manager.wait_for("READY=1")
        assert manager.seen == [ready], "READY=1 must be the collector's first message"
        ports = json.loads(ready_file.read_text())  # written before READY=1
        status = next(f for f in ready.split("\n") if f.startswith("STATUS="))
        for key, name in (
            ("enroll_port", "enrollment"),
            ("report_port", "reports"),
            ("admin_port", "administration"),
            ("metrics_port", "metrics"),
            ("web_port", "dashboard"),
        ):
            assert f"{name} port {ports[key]}" in status, (key, status)

        manager.wait_for("WATCHDOG=1")
        manager.wait_for("WATCHDOG=1")  # pings go on, not a single one at start

        server.send_signal(signal.SIGTERM)
        stopping = manager.wait_for("STOPPING=1")
        assert "NOT_SERVING for 60 s" in stopping
        manager.wait_for("WATCHDOG=1")  # still alive while it drains
        assert server.poll() is None, log.read_text()

        server.send_signal(signal.SIGTERM)  # a second SIGTERM ends the drain
        assert server.wait(WAIT) == 0, log.read_text()
    finally:
        _stop(server)


def test_no_watchdog_pings_unless_the_manager_asks(tmp_path: Path, manager: Manager) -> None:
    server, _, log = _serve(tmp_path, manager, "0", watchdog_usec=None)
    try:
        manager.wait_for("READY=1")
        server.send_signal(signal.SIGTERM)
        manager.wait_for("STOPPING=1")
        assert server.wait(WAIT) == 0, log.read_text()
    finally:
        _stop(server)
    manager.rest()
    assert not [m for m in manager.seen if "WATCHDOG=1" in m.split("\n")], manager.seen
    assert [m.split("\n")[0] for m in manager.seen] == ["READY=1", "STOPPING=1"], manager.seen
