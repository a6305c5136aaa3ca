"""systemd's notify protocol, spoken by the agent and the collector under `Type=notify`.

Why not a library: the protocol is one datagram to the socket named in `$NOTIFY_SOCKET`
(`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`), documented in sd_notify(3); python-systemd
needs libsystemd and a compiler on every PC. Outside systemd (no `$NOTIFY_SOCKET`) every call
does nothing, so the same code runs from a terminal, in tests and on other OSes.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Tell the service manager how the service is doing; silent when none listens."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace: its first byte is a NUL.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds = _watchdog_seconds(env)

    @property
    def active(self) -> bool:
        return bool(self._address)

    def notify(self, *fields: str) -> bool:
        """Send `fields` ("READY=1", ...) as one message; whether it was sent."""
        if not self._address or not hasattr(socket, "AF_UNIX"):
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError:
            return False  # the manager went away: nothing the service can do about it
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def ping_interval(self) -> float | None:
        """How often to send WATCHDOG=1 (half the manager's timeout, as sd_watchdog_enabled(3)
        advises), or None when no watchdog is set for this process."""
        return None if self.watchdog_seconds is None else self.watchdog_seconds / 2


def _watchdog_seconds(env: os._Environ[str] | dict[str, str]) -> float | None:
    """WATCHDOG_USEC, when it is meant for this process (WATCHDOG_PID unset or ours)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
