"""The agent as a service: collect and send at start-up, on every interval, right away when the
network changes or a new chat backup appears, and once more when an acknowledgement brings a
new policy configuration (so a report is judged under the configuration it was collected with).

Events are coalesced: a burst (a backup writing many files, Wi-Fi reconnecting) triggers one
collection. Collecting and sending are separate: a delivery that fails (the collector is down
or pushes back) is retried on an exponential backoff with full jitter (agent.backoff), sending
the backlog without collecting again; the next interval or event still collects. A collector's
retry hint is obeyed: nothing is sent before it has passed. A collection that fails (a probe
raises, the disk is full) is logged and the service goes on; a hung probe costs its fact only
(agent.probes.runner). SIGTERM and SIGINT stop the service within about a second while it
waits, backs off or sends (a call in flight is cancelled), and while it collects: a collection
under way is left unfinished (its probes run one after another, each up to its deadline, for
longer than a service manager waits) and its report is not written; the next start collects
anew. A report already written stays in the outbox for the next start.

Under systemd (`Type=notify`) the loop says READY=1 when it starts, keeps a STATUS line ("enrolled
as …, next collection in 42 min"), and pings the watchdog from its own waits, which never last
longer than the ping interval; a collection runs beside the pinging wait, up to a limit
(`agent.service_manager`). A loop stuck anywhere else stops the pings, and systemd restarts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from devposture.agent.backoff import Backoff
from devposture.agent.host import Host
from devposture.agent.probes import ProbeConfig
from devposture.agent.probes.chat_backups import watch_folders
from devposture.agent.probes.chat_layouts import BY_FAMILY
from devposture.agent.probes.outcome import ProbeContext
from devposture.agent.service_manager import Abandoned, ServiceManager
from devposture.agent.transport import DrainResult
from devposture.agent.watch import (
    DEFAULT_BACKUP_SETTLE,
    DEFAULT_NETWORK_INTERVAL,
    BackupWatcher,
    NetworkWatcher,
)
from devposture.policy.cli_messages import Worded
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 3600.0
Trigger: TypeAlias = pb.CollectionTrigger.ValueType

START_UP = pb.COLLECTION_TRIGGER_START_UP
INTERVAL = pb.COLLECTION_TRIGGER_INTERVAL
NETWORK_CHANGE = pb.COLLECTION_TRIGGER_NETWORK_CHANGE
NEW_BACKUP = pb.COLLECTION_TRIGGER_NEW_BACKUP
POLICY_CHANGE = pb.COLLECTION_TRIGGER_POLICY_CHANGE
# When several reasons coalesce into one collection, the report names the most telling one.
_PRECEDENCE = (START_UP, POLICY_CHANGE, NETWORK_CHANGE, NEW_BACKUP, INTERVAL)


def trigger_name(trigger: Trigger) -> str:
    return pb.CollectionTrigger.Name(trigger).removeprefix("COLLECTION_TRIGGER_").lower()


@dataclass(frozen=True)
class Schedule:
    """How often the watchers look. (The reporting interval is the Work's: it follows the
    policy's configuration.)"""

    network_interval: float = DEFAULT_NETWORK_INTERVAL
    backup_settle: float = DEFAULT_BACKUP_SETTLE


class Work(Protocol):
    """One agent's rounds (agent.deliver.AgentWork)."""

    def collect(self, trigger: Trigger) -> object:
        """Collect one report into the outbox."""

    def send(self, should_stop: Callable[[], bool]) -> DrainResult:
        """Send the backlog; `should_stop` is asked between calls."""

    def interval(self) -> float:
        """Seconds between periodic collections, as configured now."""


def backup_folders(host: Host, config: ProbeConfig) -> list[str]:
    """Where a new chat backup appears on this host, for the backup watcher: the apps' backup
    folders and the policy's, never their live data (written every minute)."""
    ctx = ProbeContext(host, config, pb.PostureReport())
    return watch_folders(ctx, BY_FAMILY.get(host.os_family, ()))


class Loop:
    """Decides when to collect and when to send. Events arrive through `notify` from any
    thread; `serve` runs until `stop` is set."""

    def __init__(
        self,
        work: Work,
        stop: threading.Event,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        manager: ServiceManager | None = None,
        name: str = "",
    ) -> None:
        self._work = work
        self._stop = stop
        self._clock = clock
        # Silent outside systemd; `name` heads its STATUS line ("enrolled as <device id>").
        self.manager = manager or ServiceManager()
        self._name = name
        self.backoff = backoff or Backoff(clock=clock)
        self._wake = threading.Condition()
        self._events: set[Trigger] = set()
        # What happened, for tests and logs: each collection's trigger, and how many sends.
        self.rounds: list[Trigger] = []
        self.sends = 0

    def notify(self, trigger: Trigger) -> None:
        with self._wake:
            self._events.add(trigger)
            self._wake.notify_all()

    def _stop_waiter(self) -> None:
        self._stop.wait()
        with self._wake:
            self._wake.notify_all()

    def _wait(self, until: float) -> set[Trigger]:
        """Events that arrived, or an empty set when `until` passed (or the service stops)."""
        with self._wake:
            while not self._events and not self._stop.is_set():
                left = until - self._clock()
                if left <= 0:
                    break
                # Bounded, in case a clock jump or a missed wake-up; stop is signalled anyway.
                # Never past a watchdog ping that is due.
                self._wake.wait(self.manager.wait_bound(min(left, 1.0)))
                self.manager.beat()
            events, self._events = self._events, set()
            return events

    def _should_stop(self) -> bool:
        """Asked between calls and while one is in flight (every quarter second): a good
        moment to ping the watchdog too."""
        self.manager.beat()
        return self._stop.is_set()

    def _say(self, doing: str) -> None:
        self.manager.status(f"{self._name}, {doing}" if self._name else doing)

    def _collect(self, trigger: Trigger) -> None:
        self.rounds.append(trigger)
        log.info("collecting: %s", trigger_name(trigger))
        self._say(f"collecting ({trigger_name(trigger)})")
        try:
            self.manager.run_beating(lambda: self._work.collect(trigger), stop=self._stop)
        except Abandoned:
            # Probes one after another, each up to its deadline: a collection may take longer
            # than a service manager waits for a stop. Its report is not written (nothing is
            # lost: the next start collects anew); one written already stays in the outbox.
            log.info("stopping: the collection under way (%s) is left unfinished",
                     trigger_name(trigger))  # fmt: skip
        except Worded as exc:  # says what is wrong and what to do: no traceback needed
            log.error("collection (%s) failed: %s", trigger_name(trigger), exc)
        except Exception:  # the service outlives any one failed collection
            log.exception("collection (%s) failed; the next round will retry",
                          trigger_name(trigger))  # fmt: skip

    def _send(self) -> DrainResult | None:
        self.sends += 1
        try:
            result = self._work.send(self._should_stop)
        except Exception:
            log.exception("sending failed; retrying later")
            return None
        if result.delivered or result.set_aside:
            log.info("delivered %d report(s), %d set aside", result.delivered,
                     len(result.set_aside))  # fmt: skip
        return result

    def _interval(self, current: float) -> float:
        try:
            value = self._work.interval()
        except Exception:
            log.exception("cannot read the reporting interval; keeping %g s", current)
            return current
        return value if value > 0 else current

    def _failed(self, result: DrainResult | None, interval: float) -> float:
        """Count a failed delivery; the seconds to wait before sending again."""
        hint = result.retry_after if result is not None else None
        delay = self.backoff.failed(hint, cap=interval)
        why = result.stopped_by if result is not None else "an error"
        log.warning("delivery failed (%s); trying again in %.1f s", why, delay)
        self._say(f"delivery failed, trying again in {_minutes(delay)}")
        return delay

    def serve(self) -> None:
        threading.Thread(target=self._stop_waiter, name="stop-waiter", daemon=True).start()
        self.manager.ready(f"{self._name}, starting" if self._name else "starting")
        interval = self._interval(DEFAULT_INTERVAL)
        due: set[Trigger] = {START_UP}
        collected_at = self._clock()
        next_collect = collected_at + interval
        send_due = False
        retry_at = 0.0
        policy_version = -1  # the configuration version a policy-change round was made for
        while not self._stop.is_set():
            if due:
                trigger = next(t for t in _PRECEDENCE if t in due)
                due = set()
                self._collect(trigger)
                if self._stop.is_set():
                    break  # the report is in the outbox; the next start sends it
                collected_at = self._clock()
                next_collect = collected_at + interval
                send_due, retry_at = True, 0.0
            if send_due and self._clock() >= max(retry_at, self.backoff.hold_until):
                result = self._send()
                if self._stop.is_set():
                    break
                if result is not None and result.config is not None:
                    version = int(result.config.version)
                    if version != policy_version:
                        # Judged under the new configuration right away; once per version.
                        policy_version = version
                        due.add(POLICY_CHANGE)
                if result is not None and result.stopped_by is None:
                    self.backoff.succeeded()
                    send_due = False
                    interval = self._interval(interval)
                    next_collect = collected_at + interval
                    self._say(f"next collection in {_minutes(next_collect - self._clock())}")
                else:
                    retry_at = self._clock() + self._failed(result, interval)
                if due:
                    continue
            wake_at = next_collect
            if send_due:
                wake_at = min(wake_at, max(retry_at, self.backoff.hold_until))
            events = self._wait(wake_at)
            if self._stop.is_set():
                break
            due |= events
            if not events and self._clock() >= next_collect:
                due.add(INTERVAL)


def _minutes(seconds: float) -> str:
    """A wait as a STATUS line says it: "42 min", or "30 s" when under a minute."""
    if seconds < 60:
        return f"{max(seconds, 0):.0f} s"
    return f"{seconds / 60:.0f} min"


def run(
    host: Host,
    config: ProbeConfig,
    work: Work,
    stop: threading.Event,
    schedule: Schedule = Schedule(),
    *,
    backoff: Backoff | None = None,
    manager: ServiceManager | None = None,
    name: str = "",
) -> Loop:
    """Serve until `stop` is set: the loop plus the network and backup watchers."""
    loop = Loop(work, stop, backoff, manager=manager, name=name)
    network = NetworkWatcher(host, lambda: loop.notify(NETWORK_CHANGE), schedule.network_interval)
    backups = BackupWatcher(
        backup_folders(host, config), lambda: loop.notify(NEW_BACKUP), schedule.backup_settle
    )
    network.start()
    backups.start()
    try:
        loop.serve()
    finally:
        network.stop()
        backups.stop()
    return loop
