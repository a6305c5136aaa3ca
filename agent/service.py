"""The agent as a service: collect and send at start-up, on every interval, and right away when
the network changes or a new chat backup appears.

Events are coalesced: a burst (a backup writing many files, Wi-Fi reconnecting) triggers one
collection. A collection that fails (the collector is down, a probe raises) is logged and the
report stays in the outbox for the next round; the service itself never stops on it. SIGTERM
and SIGINT stop it between collections.

Hardening for long outages, hung probes and back-off belongs to the outbox and transport work;
this loop only decides *when* to collect.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.host import Host
from agent.probes import ProbeConfig
from agent.probes.backup_locations import BY_FAMILY
from agent.probes.chat_backups import candidates
from agent.probes.outcome import ProbeContext
from agent.watch import (
    DEFAULT_BACKUP_SETTLE,
    DEFAULT_NETWORK_INTERVAL,
    BackupWatcher,
    NetworkWatcher,
)
from devposture.v1 import devposture_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 3600.0


@dataclass(frozen=True)
class Schedule:
    interval: float = DEFAULT_INTERVAL
    network_interval: float = DEFAULT_NETWORK_INTERVAL
    backup_settle: float = DEFAULT_BACKUP_SETTLE


def backup_folders(host: Host, config: ProbeConfig) -> list[str]:
    """The folders the chat-backup probe looks in on this host, for the backup watcher."""
    ctx = ProbeContext(host, config, pb.PostureReport())
    return [path for _, path in candidates(ctx, BY_FAMILY.get(host.os_family, ()))]


def run(
    host: Host,
    config: ProbeConfig,
    collect_and_send: Callable[[str], None],
    stop: threading.Event,
    schedule: Schedule = Schedule(),
) -> None:
    """Serve until `stop` is set. `collect_and_send(reason)` does one round."""
    triggers: queue.Queue[str] = queue.Queue()
    network = NetworkWatcher(
        host, lambda: triggers.put("network change"), schedule.network_interval
    )
    backups = BackupWatcher(
        backup_folders(host, config), lambda: triggers.put("new backup"), schedule.backup_settle
    )
    network.start()
    backups.start()

    def wake_on_stop() -> None:
        stop.wait()
        triggers.put("stop")

    threading.Thread(target=wake_on_stop, name="stop-waiter", daemon=True).start()
    reason = "start-up"
    try:
        while not stop.is_set():
            _round(collect_and_send, reason)
            reason = _next_trigger(triggers, time.monotonic() + schedule.interval)
    finally:
        network.stop()
        backups.stop()


def _round(collect_and_send: Callable[[str], None], reason: str) -> None:
    log.info("collecting: %s", reason)
    try:
        collect_and_send(reason)
    except Exception:  # the service outlives any one failed round
        log.exception("collection after %s failed; the next round will retry", reason)


def _next_trigger(triggers: queue.Queue[str], next_round: float) -> str:
    """Wait for an event or the interval; fold every event already queued into one round."""
    try:
        reason = triggers.get(timeout=max(0.0, next_round - time.monotonic()))
    except queue.Empty:
        return "interval"
    reasons = {reason}
    while True:
        try:
            reasons.add(triggers.get_nowait())
        except queue.Empty:
            break
    return ", ".join(sorted(reasons))
