"""What the agent's service tells its service manager (systemd, `Type=notify`): that it is ready,
how it is doing (a STATUS line `systemctl status` shows), that it is alive (WATCHDOG=1), and
that it is stopping. Outside systemd every call does nothing (`devposture.sd_notify`).

The watchdog pings come from the service's own waits, never from a thread of their own: a ping
says the loop still turns, so a loop stuck anywhere stops them and systemd restarts the agent.
No wait may therefore last longer than the ping interval (`wait_bound`). Work that may
rightly take longer than that (a collection: every probe has a deadline of a minute; an
enrollment call) runs in a worker thread while the service waits for it, pinging, up to a
limit far beyond any legitimate duration (`run_beating`); past it the pings stop.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from devposture.sd_notify import Notifier

T = TypeVar("T")

# Longest a piece of work may run while the watchdog is still fed: a collection runs a dozen
# probes one after another, each bounded by a minute (agent.probes.runner); an enrollment
# tries each address with a 15 s connection and a 30 s call. Beyond this it is stuck.
WORK_LIMIT_SECONDS = 30 * 60.0
MIN_PING_INTERVAL = 0.05
# The signal wake-up sockets, kept open for the life of the process (see stop_on_signals).
_KEPT: list[socket.socket] = []


class ServiceNotifier(Protocol):
    """What the service tells its manager: systemd (`devposture.sd_notify.Notifier`) or
    Windows' service control manager (`agent.windows.service_control.ScmNotifier`)."""

    def ready(self, status: str = "") -> bool: ...
    def status(self, status: str) -> bool: ...
    def watchdog(self) -> bool: ...
    def stopping(self) -> bool: ...
    def ping_interval(self) -> float | None: ...


class ServiceManager:
    """The service's side of the notify protocol; thread-safe, and `stopping` safe in a
    signal handler."""

    def __init__(
        self, notifier: ServiceNotifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._notifier = notifier or Notifier()
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = False
        self._status = ""
        self._stopping = False
        # None: no watchdog asked for. A few milliseconds at least, so no wait spins.
        interval = self._notifier.ping_interval()
        self.interval = None if interval is None else max(interval, MIN_PING_INTERVAL)
        self._next_ping = 0.0

    @property
    def watched(self) -> bool:
        return self.interval is not None

    def ready(self, status: str) -> None:
        """READY=1 with a STATUS the first time; later calls only change the STATUS."""
        with self._lock:
            if self._ready:
                changed = status != self._status
                self._status = status
                if changed:
                    self._notifier.status(status)
                return
            self._ready, self._status = True, status
            self._notifier.ready(status)

    def status(self, status: str) -> None:
        """A new STATUS line (sent only when it changed)."""
        with self._lock:
            if status == self._status:
                return
            self._status = status
            self._notifier.status(status)

    def beat(self) -> None:
        """WATCHDOG=1, when a ping is due (at most once per interval)."""
        if self.interval is None:
            return
        with self._lock:
            now = self._clock()
            if now < self._next_ping:
                return
            self._next_ping = now + self.interval
            self._notifier.watchdog()

    def wait_bound(self, longest: float) -> float:
        """How long a wait may last: `longest`, or less when a ping falls due sooner."""
        if self.interval is None:
            return longest
        with self._lock:
            return max(0.0, min(longest, self._next_ping - self._clock()))

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` for `event`, pinging as due; whether the event is set."""
        until = self._clock() + seconds
        while True:
            self.beat()
            left = until - self._clock()
            if left <= 0:
                return event.is_set()
            if event.wait(self.wait_bound(left)):
                return True

    def stopping(self) -> None:
        """STOPPING=1, once. Called from a signal handler, which runs in the main thread
        between two of its steps, maybe while it holds the lock: so it takes none (a second
        STOPPING=1, were two signals to race, is harmless)."""
        if self._stopping:
            return
        self._stopping = True
        self._notifier.stopping()

    def run_beating(
        self, work: Callable[[], T], limit: float = WORK_LIMIT_SECONDS, *,
        stop: threading.Event | None = None,
    ) -> T:  # fmt: skip
        """`work()`'s result (or its exception). Under a watchdog it runs in a worker thread
        while this one pings, for at most `limit` seconds: a longer run is stuck, and the
        pings stop so that the service manager restarts the agent. Without a watchdog, it
        simply runs here. With `stop`, it always runs in a worker thread, and raises
        Abandoned as soon as `stop` is set (the work is left to finish, or not, by itself)."""
        if self.interval is None and stop is None:
            return work()
        outcome: list[T] = []
        failure: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append(work())
            except BaseException as exc:  # handed to the waiting thread, which raises it
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="agent-work", daemon=True).start()
        started = self._clock()
        while not done.is_set():
            if stop is not None and stop.is_set():
                raise Abandoned("stopped while the work was under way")
            if self.interval is None:  # no watchdog: only a stop to notice
                wait = STOP_CHECK_SECONDS
            elif self._clock() - started < limit:
                self.beat()
                wait = self.wait_bound(self.interval)
            else:  # stuck: no more pings; the service manager will restart the agent
                wait = self.interval
            done.wait(wait if stop is None else min(wait, STOP_CHECK_SECONDS))
        if failure:
            raise failure[0]
        return outcome[0]


class Abandoned(Exception):
    """The service stopped while `run_beating`'s work was under way."""


# How often work under way looks whether the service is stopping.
STOP_CHECK_SECONDS = 0.25


def stop_on_signals(stop: threading.Event, manager: ServiceManager) -> None:
    """On SIGTERM or SIGINT: STOPPING=1 to the service manager, then set `stop` (the loop
    finishes its step and ends). Call from the main thread.

    Not from a Python signal handler: it runs in the main thread between two of its steps,
    maybe while that holds the very lock `stop.set()` takes (an Event's), and would wait for
    itself forever. The handler does nothing; the interpreter writes the signal's number to a
    socket (`signal.set_wakeup_fd`, a socket so that Windows has it too), and a thread reading
    it does the work, taking locks like any thread."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    wanted = {int(signal.SIGTERM), int(signal.SIGINT)}

    def watch() -> None:
        while data := reader.recv(64):
            if wanted & set(data):
                manager.stopping()
                stop.set()

    threading.Thread(target=watch, name="signal-watcher", daemon=True).start()
    for signum in wanted:
        signal.signal(signum, lambda number, frame: None)
    # Both ends stay open for the life of the process (the wakeup fd must stay valid).
    _KEPT.extend((reader, writer))

