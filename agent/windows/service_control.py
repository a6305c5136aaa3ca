"""The Windows service control protocol, as logic that runs (and is tested) anywhere.

Windows' service control manager (SCM) starts `devposture-agent.exe service`, which hands it
a control handler and then reports its state with SetServiceStatus: START_PENDING, RUNNING,
STOP_PENDING (with a checkpoint that must grow within the wait hint, or the SCM takes the
service for hung), STOPPED (with an exit code: a non-zero one counts as a failure, and the
recovery `setup` configured restarts the service, `install_commands.service_recovery`).

The agent's service loop already speaks this kind of protocol to systemd through
`agent.service_manager.ServiceManager`: READY, STATUS, WATCHDOG pings from the loop's own
waits, STOPPING. `ScmNotifier` is that Notifier for the SCM:

* ready → RUNNING, accepting STOP, SHUTDOWN and PRESHUTDOWN (preshutdown gives a collection
  under way time to finish when Windows shuts down, as the stop timeout does on Linux);
* a ping (WATCHDOG) while starting or stopping → the next checkpoint, so that a stop that
  drains for a minute is never mistaken for a hang, and one stuck for good stops counting;
* stopping → STOP_PENDING; the end of the body → STOPPED with its exit code.

`ServiceRun` ties it together: the control handler (STOP/SHUTDOWN/PRESHUTDOWN ask the loop to
stop, the same stop event SIGTERM sets on Linux; INTERROGATE repeats the state; anything else
is not implemented) and the body's run. Only `service_host` (ctypes, advapi32) is Windows';
it calls `ServiceRun.handle` from the SCM's handler and `ServiceRun.run` in ServiceMain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from devposture.agent.service_manager import ServiceManager

log = logging.getLogger(__name__)

# winsvc.h
SERVICE_WIN32_OWN_PROCESS = 0x10
STOPPED, START_PENDING, STOP_PENDING, RUNNING = 1, 2, 3, 4
ACCEPT_STOP, ACCEPT_SHUTDOWN, ACCEPT_PRESHUTDOWN = 0x1, 0x4, 0x100
CONTROL_STOP, CONTROL_INTERROGATE, CONTROL_SHUTDOWN, CONTROL_PRESHUTDOWN = 0x1, 0x4, 0x5, 0xF
STOP_CONTROLS = frozenset({CONTROL_STOP, CONTROL_SHUTDOWN, CONTROL_PRESHUTDOWN})
# winerror.h
NO_ERROR = 0
ERROR_CALL_NOT_IMPLEMENTED = 120
ERROR_SERVICE_SPECIFIC_ERROR = 1066

# How long the SCM waits for the next checkpoint; pings come far more often (PING_SECONDS).
WAIT_HINT_MS = 30_000
PING_SECONDS = 2.0


@dataclass(frozen=True)
class ServiceStatus:
    """SERVICE_STATUS, field for field (dwServiceType is always SERVICE_WIN32_OWN_PROCESS)."""

    state: int
    controls_accepted: int = 0
    win32_exit_code: int = NO_ERROR
    service_exit_code: int = 0
    checkpoint: int = 0
    wait_hint_ms: int = 0


Report = Callable[[ServiceStatus], None]


class ScmNotifier:
    """`devposture.sd_notify.Notifier`'s interface, spoken to the SCM through `report`
    (SetServiceStatus). Thread-safe: the control handler and the loop call it."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._current = ServiceStatus(START_PENDING, checkpoint=1, wait_hint_ms=WAIT_HINT_MS)

    @property
    def current(self) -> ServiceStatus:
        with self._lock:
            return self._current

    def _set(self, status: ServiceStatus) -> bool:
        with self._lock:
            if self._current.state == STOPPED:
                return False  # nothing follows STOPPED
            self._current = status
            self._report(status)
            return True

    def starting(self) -> bool:
        return self._set(ServiceStatus(START_PENDING, checkpoint=1, wait_hint_ms=WAIT_HINT_MS))

    def ready(self, status: str = "") -> bool:
        if status:
            log.info("service: %s", status)
        if self.current.state != START_PENDING:
            return True
        return self._set(ServiceStatus(
            RUNNING, controls_accepted=ACCEPT_STOP | ACCEPT_SHUTDOWN | ACCEPT_PRESHUTDOWN,
        ))  # fmt: skip

    def status(self, status: str) -> bool:
        """The SCM keeps no status line: the log does."""
        log.info("service: %s", status)
        return True

    def watchdog(self) -> bool:
        """The next checkpoint while starting or stopping; nothing while running."""
        with self._lock:
            now = self._current
            if now.state not in (START_PENDING, STOP_PENDING):
                return True
            self._current = ServiceStatus(
                now.state, checkpoint=now.checkpoint + 1, wait_hint_ms=WAIT_HINT_MS
            )
            self._report(self._current)
            return True

    def stopping(self) -> bool:
        if self.current.state == STOP_PENDING:
            return True
        return self._set(ServiceStatus(STOP_PENDING, checkpoint=1, wait_hint_ms=WAIT_HINT_MS))

    def stopped(self, exit_code: int) -> bool:
        """STOPPED; a non-zero `exit_code` is a service-specific error (a failure)."""
        if exit_code:
            final = ServiceStatus(
                STOPPED, win32_exit_code=ERROR_SERVICE_SPECIFIC_ERROR, service_exit_code=exit_code
            )
        else:
            final = ServiceStatus(STOPPED)
        return self._set(final)

    def repeat(self) -> None:
        """INTERROGATE: the SCM asks for the state again."""
        with self._lock:
            self._report(self._current)

    def ping_interval(self) -> float | None:
        return PING_SECONDS


Body = Callable[[ServiceManager, threading.Event], int]


class ServiceRun:
    """One run of the service: `handle` is the SCM's control handler, `run` ServiceMain's
    work (it returns when the body does, after reporting STOPPED)."""

    def __init__(
        self, report: Report, body: Body, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.notifier = ScmNotifier(report)
        self.manager = ServiceManager(notifier=self.notifier, clock=clock)
        self.stop = threading.Event()
        self.body = body

    def handle(self, control: int) -> int:
        """HandlerEx's answer to one control code."""
        if control in STOP_CONTROLS:
            log.info("service: stop asked by Windows (control %#x)", control)
            self.manager.stopping()
            self.stop.set()
            return NO_ERROR
        if control == CONTROL_INTERROGATE:
            self.notifier.repeat()
            return NO_ERROR
        return ERROR_CALL_NOT_IMPLEMENTED

    def run(self) -> int:
        self.notifier.starting()
        code = 1
        try:
            code = self.body(self.manager, self.stop)
        except Exception:
            log.exception("the service failed; Windows restarts it (service recovery)")
            code = 1
        finally:
            self.notifier.stopped(code)
        return code
