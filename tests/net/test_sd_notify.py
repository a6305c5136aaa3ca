"""The notify protocol over a real datagram socket, as systemd listens for it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from devposture.sd_notify import Notifier


def _listener(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    return sock


def test_ready_status_watchdog_and_stopping_reach_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with _listener(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.active
        assert notifier.ready("collecting every 15 min")
        assert sock.recv(4096) == b"READY=1\nSTATUS=collecting every 15 min"
        assert notifier.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping() and sock.recv(4096) == b"STOPPING=1"


def test_an_abstract_socket_name_is_reached() -> None:
    name = f"devposture-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(30)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_outside_systemd_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    notifier = Notifier({})
    assert not notifier.active and not notifier.ready() and notifier.ping_interval() is None
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    assert not gone.ready()


def test_the_watchdog_interval_is_half_the_timeout_and_only_for_this_process() -> None:
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).ping_interval() == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000"}).ping_interval() == 15.0
    other = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other).ping_interval() is None
    assert Notifier({"WATCHDOG_USEC": "0"}).ping_interval() is None
