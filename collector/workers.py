"""`serve --workers N`: one collector as N processes that share its agent ports, so a host's
cores all take reports (one Python process uses about one core).

The parent holds the data folder's lock and supervises; it serves nothing itself. Worker 0
starts first: it binds the agent ports (0 picks free ones) and alone serves administration,
metrics and the dashboard, and follows the policy file. The other workers then bind the same
agent ports (SO_REUSEPORT, asked for only here: the kernel spreads new connections over the
workers) and take reports only. Every worker has its own connection to the database: on
SQLite they take turns at its one write lock, on PostgreSQL at the advisory lock, so the
evidence chain stays one sequence either way.

A worker that dies is started again on the same ports (its agents reconnect to the others
meanwhile). A worker that hangs is killed and started again: each pings the parent from its
event loop (the service manager's notify protocol, on a socket of the parent's, held to the
service's own watchdog, WATCHDOG_USEC, or WORKER_WATCHDOG_SECONDS), since a hung worker keeps
its share of the agent ports and the kernel hands it new connections that nothing accepts.
SIGTERM or SIGINT stops every worker gracefully (each drains as `serve` does) and then the
parent.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from devposture.collector.config import CollectorConfig
from devposture.collector.datadir import lock_data_folder
from devposture.collector.parent_death import PARENT_ENV
from devposture.policy.cli_messages import Worded, say
from devposture.sd_notify import Notifier

log = logging.getLogger(__name__)
MAX_WORKERS = 64
SERVICE_MANAGER_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS")
POLL_SECONDS = 0.2
READY_SECONDS = 120.0
RESTART_PAUSE_SECONDS = 1.0
# How long a serving worker may stay silent, without a watchdog set for the service (the
# collector's systemd unit sets WatchdogSec=60s).
WORKER_WATCHDOG_SECONDS = 60.0


class WorkersFailed(Worded):
    """A worker could not start; the text says which and why."""


class _StoppedWhileStarting(Exception):
    """SIGTERM or SIGINT came before every worker was serving: a stop, not a failure."""


@dataclass
class Worker:
    index: int
    command: list[str]
    ready: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    told_to_stop: bool = False  # sent SIGTERM by the supervisor's stop
    pings: socket.socket | None = None  # where its notify messages (WATCHDOG=1) arrive
    heard: float = 0.0  # when it last said anything (monotonic), or was started
    spoke: bool = False  # it said something: it serves, and is held to the watchdog

    def start(self, watchdog_seconds: float) -> None:
        self.ready.unlink(missing_ok=True)
        # Its output is the service's: the journal or the service log takes both. The
        # service manager hears from the parent only (readiness, watchdog); the worker's
        # own notify messages come to this process.
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_MANAGER_VARIABLES}
        env[PARENT_ENV] = str(os.getpid())  # the worker dies with this process (parent_death)
        name = f"devposture-worker-{os.getpid()}-{self.index}-{secrets.token_hex(4)}"
        self.pings = socket.socket(
            socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        )
        self.pings.bind("\0" + name)  # the abstract namespace: no file, no path length
        env["NOTIFY_SOCKET"] = "@" + name
        env["WATCHDOG_USEC"] = str(int(watchdog_seconds * 1_000_000))
        self.heard, self.spoke = time.monotonic(), False
        self.process = subprocess.Popen(self.command, env=env)

    def listen(self) -> None:
        """Take what the worker said since the last look (each message is a sign of life)."""
        while self.pings is not None:
            try:
                self.pings.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            self.heard, self.spoke = time.monotonic(), True

    def silent(self, watchdog_seconds: float) -> float | None:
        """How long it has been silent, when that is past its bound (the watchdog once it
        serves, READY_SECONDS while it starts); else None."""
        quiet = time.monotonic() - self.heard
        return quiet if quiet > (watchdog_seconds if self.spoke else READY_SECONDS) else None

    def close(self) -> None:
        if self.pings is not None:
            self.pings.close()
            self.pings = None

    def wait_ready(self, stopping: list[bool]) -> dict[str, int]:
        deadline = time.monotonic() + READY_SECONDS
        assert self.process is not None
        while not self.ready.exists():
            if stopping[0]:
                raise _StoppedWhileStarting
            code = self.process.poll()
            if code is not None:
                raise WorkersFailed("worker {index} exited with code {code} while starting",
                                    index=self.index, code=code)  # fmt: skip
            if time.monotonic() > deadline:
                raise WorkersFailed("worker {index} did not start within {seconds} s",
                                    index=self.index, seconds=f"{READY_SECONDS:g}")  # fmt: skip
            time.sleep(POLL_SECONDS)
        ports: dict[str, int] = json.loads(self.ready.read_text(encoding="utf-8"))
        return ports


@dataclass
class Supervisor:
    """The workers of one collector, and what the parent knows of them."""

    config: CollectorConfig
    base: list[str]  # `serve` and the options every worker gets
    first_only: list[str]  # what only worker 0 gets (its admin, metrics, dashboard ports)
    count: int
    folder: Path
    workers: list[Worker] = field(default_factory=list)
    stopping: list[bool] = field(default_factory=lambda: [False])
    # The service's own watchdog (what systemd holds the parent to), for the workers too.
    watchdog_seconds: float = field(
        default_factory=lambda: Notifier().watchdog_seconds or WORKER_WATCHDOG_SECONDS
    )

    def _worker(self, index: int, ports: dict[str, int] | None) -> Worker:
        ready = self.folder / f"worker-{index}.json"
        command = [sys.executable, "-m", "devposture.collector", *self.base,
                   "--worker", str(index), "--ready-file", str(ready)]  # fmt: skip
        if index == 0:
            command += self.first_only
        if ports is not None:
            command += ["--enroll-port", str(ports["enroll_port"]),
                        "--report-port", str(ports["report_port"])]  # fmt: skip
        return Worker(index, command, ready)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping[0] = True
        for worker in self.workers:
            self._tell_to_stop(worker)

    def _tell_to_stop(self, worker: Worker) -> None:
        """SIGTERM, once: a worker drains on the first and a second could cut that short."""
        process = worker.process
        if process is not None and process.poll() is None and not worker.told_to_stop:
            worker.told_to_stop = True
            process.send_signal(signal.SIGTERM)

    def run(self, ready_file: Path | None) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        try:
            ports = self._start_all()
        except _StoppedWhileStarting:
            # A service stop (or restart) right after the start: the workers started so far
            # stop as they would have serving, and so does the parent, without an error (it
            # said "worker 1 did not start within 120 s" at once, and exit code 1).
            log.info("stopping before every worker was serving")
            return self._stopped()
        except BaseException:
            self._stop(signal.SIGTERM, None)
            for worker in self.workers:
                if worker.process is not None:
                    worker.process.wait()
            raise
        self._tell_ready(ready_file, ports)
        say("devposture collector serving with {count} workers: enrollment on port {enroll},"
            " reports on port {reports}", count=self.count, enroll=ports["enroll_port"],
            reports=ports["report_port"])  # fmt: skip
        sys.stdout.flush()
        notifier = Notifier()
        notifier.ready(f"serving with {self.count} workers: reports on port"
                       f" {ports['report_port']}")  # fmt: skip
        code = self._watch(ports, notifier, ready_file)
        notifier.notify("STOPPING=1")
        return code

    def _tell_ready(self, ready_file: Path | None, ports: dict[str, int]) -> None:
        """The ports and the workers' process ids, in `--ready-file` (written again when a
        worker is started anew: a supervisor or a test reading it finds the live ones)."""
        if ready_file is None:
            return
        summary = {**ports, "workers": [w.process.pid for w in self.workers if w.process]}
        temporary = ready_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(summary), encoding="utf-8")
        temporary.replace(ready_file)

    def _start_all(self) -> dict[str, int]:
        first = self._worker(0, None)
        self.workers.append(first)
        first.start(self.watchdog_seconds)
        ports = first.wait_ready(self.stopping)
        for index in range(1, self.count):
            worker = self._worker(index, ports)
            self.workers.append(worker)
            worker.start(self.watchdog_seconds)
        for worker in self.workers[1:]:
            worker.wait_ready(self.stopping)
        return ports

    def _watch(
        self, ports: dict[str, int], notifier: Notifier, ready_file: Path | None = None
    ) -> int:
        """Until stopped: start again any worker that died. Then wait for them all."""
        interval = notifier.ping_interval()
        pinged = 0.0
        while not self.stopping[0]:
            if interval is not None and time.monotonic() - pinged >= interval:
                notifier.watchdog()
                pinged = time.monotonic()
            for index, worker in enumerate(self.workers):
                assert worker.process is not None
                code = worker.process.poll()
                if code is None:
                    self._hold_to_watchdog(index, worker)
                if code is None or self.stopping[0]:
                    continue
                log.error("worker %d exited with code %s: starting it again", index, code)
                self._restart(index, worker, ports, ready_file)
            time.sleep(POLL_SECONDS)
        return self._stopped()

    def _hold_to_watchdog(self, index: int, worker: Worker) -> None:
        """Kill a worker silent past its bound (hung): the next look starts it again."""
        worker.listen()
        quiet = worker.silent(self.watchdog_seconds)
        if quiet is None or self.stopping[0]:
            return
        log.error("worker %d stopped answering for %.0f s (its watchdog is %g s):"
                  " killing it to start it again", index, quiet,
                  self.watchdog_seconds if worker.spoke else READY_SECONDS)  # fmt: skip
        assert worker.process is not None
        worker.process.kill()
        worker.process.wait()

    def _restart(
        self, index: int, dead: Worker, ports: dict[str, int], ready_file: Path | None
    ) -> None:
        """Start worker `index` again after a pause, unless a stop came meanwhile. A stop
        that came in the pause, or while the new one was being started, found no new process
        to tell: the supervisor waited for it forever and a service stop ended in SIGKILL (one
        that came while it started is told by `_stopped`, as any start's)."""
        time.sleep(RESTART_PAUSE_SECONDS)
        if self.stopping[0]:
            return  # the dead one stays in the list: _stopped knows it was not stopped
        dead.close()
        again = self._worker(index, ports)
        again.restarts = dead.restarts + 1
        self.workers[index] = again
        again.start(self.watchdog_seconds)
        self._tell_ready(ready_file, ports)

    def _stopped(self) -> int:
        """Tell every worker to stop that the stop did not reach, then wait for them all;
        0 when each one told to stop has stopped. One that died before the stop was logged
        when it did; one that SIGTERM reached before it could handle it (while starting)
        ended as it was told to.

        A stop can miss a worker: the handler runs between two steps of this process, and
        one of them is inside the start of a worker, its process forked (or even exec'd)
        but not yet known (`Worker.process` is set once Popen returns). The supervisor then
        waited for that worker forever, and it served on (the clean-clone CI: SIGTERM while
        worker 1 started, and `serve --workers 2` never ended)."""
        for worker in self.workers:
            self._tell_to_stop(worker)
        codes = []
        for worker in self.workers:
            assert worker.process is not None
            code = worker.process.wait()
            worker.close()
            if worker.told_to_stop:
                codes.append(0 if code == -signal.SIGTERM else code)
        return 0 if all(code == 0 for code in codes) else 1


def supervise(
    config: CollectorConfig, count: int, base: list[str], first_only: list[str],
    ready_file: Path | None,
) -> int:  # fmt: skip
    """Run the collector as `count` workers until SIGTERM; the exit code."""
    lock = lock_data_folder(config.data_dir)  # DataFolderInUse names who holds it
    folder = config.data_dir / "workers"
    folder.mkdir(mode=0o700, exist_ok=True)
    try:
        return Supervisor(config, base, first_only, count, folder).run(ready_file)
    finally:
        lock.release()
