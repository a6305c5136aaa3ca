"""Notice what should trigger a collection right away: a network change, a new chat backup.

Network changes are found by a cheap check, not by running the Wi-Fi probe in a loop: every
`interval` seconds the watcher asks the host for its interfaces (psutil: no subprocess, well
under a millisecond) and compares names, up/down state and addresses with the last look. Joining
or leaving a Wi-Fi network changes them (DHCP hands out an address; the link goes down), so a
change is seen within one interval, 2 s by default, well inside the 10 s the agent promises.
Only then does the agent run the probes. Roaming between two networks that hand out the same
address is caught by the next periodic collection instead.

New backups are found by OS notifications (watchdog: inotify, FSEvents, ReadDirectoryChangesW)
on the backup folders, batched for `settle` seconds so that a backup writing many files
triggers one collection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from devposture.agent.host import Host, HostError

log = logging.getLogger(__name__)

Signature = frozenset[tuple[str, bool, tuple[str, ...]]]
DEFAULT_NETWORK_INTERVAL = 2.0
DEFAULT_BACKUP_SETTLE = 5.0


# Interfaces of networks inside this computer, which containers and virtual machines make and
# remove as they start and stop: Docker's bridge, its user networks and each container's end
# (docker0, br-<id>, veth…), libvirt's, LXC's and LXD's bridges, VirtualBox's and VMware's
# host-only networks, Kubernetes' CNI interfaces, Hyper-V's and WSL's switches ("vEthernet
# (WSL)"). None changes the network this computer is on; each counted as a change, so a
# laptop starting containers collected back to back. A VPN's (tun, wg, utun, ppp) still counts.
_LOCAL_NETWORKS = (
    "docker", "br-", "veth", "virbr", "vnet", "lxcbr", "lxdbr", "vboxnet", "vmnet", "cni",
    "flannel", "cali", "vethernet",
)  # fmt: skip


def network_signature(host: Host) -> Signature:
    """What a network change changes: each interface's name, state and addresses (not those
    of the networks containers and virtual machines make inside this computer)."""
    return frozenset(
        (i.name, i.is_up, tuple(sorted(i.addresses)))
        for i in host.net_interfaces()
        if not i.name.lower().startswith(_LOCAL_NETWORKS)
    )


class NetworkWatcher:
    """Calls `on_change()` from its own thread after each change of the network signature."""

    def __init__(
        self,
        host: Host,
        on_change: Callable[[], None],
        interval: float = DEFAULT_NETWORK_INTERVAL,
    ) -> None:
        self._host = host
        self._on_change = on_change
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="network-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def _look(self) -> Signature | None:
        try:
            return network_signature(self._host)
        except HostError as exc:
            log.warning("network check failed: %s", exc)
            return None

    def _run(self) -> None:
        last = self._look()
        while not self._stop.wait(self._interval):
            now = self._look()
            if now is None or now == last:
                continue
            last = now
            try:
                self._on_change()
            except Exception:  # the watcher must outlive a failing collection
                log.exception("collection after a network change failed")


class _Batcher(FileSystemEventHandler):
    """Turns a burst of file events into one call, `settle` seconds after the last event."""

    def __init__(self, on_change: Callable[[], None], settle: float) -> None:
        self._on_change = on_change
        self._settle = settle
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (ours included) are not new backups
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._settle, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("collection after a backup change failed")

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


class BackupWatcher:
    """Watches chat-backup folders. A folder that does not exist yet is watched through its
    nearest existing parent, so the first backup ever made is noticed too."""

    def __init__(
        self,
        folders: Iterable[str],
        on_change: Callable[[], None],
        settle: float = DEFAULT_BACKUP_SETTLE,
    ) -> None:
        self._handler = _Batcher(on_change, settle)
        self._observer = Observer()
        watches: dict[str, bool] = {}
        for folder in folders:
            path = Path(folder)
            recursive = path.is_dir()
            while not path.is_dir() and path != path.parent:
                path = path.parent
            watches[str(path)] = watches.get(str(path), False) or recursive
        for folder_to_watch, recursive in watches.items():
            self._observer.schedule(self._handler, folder_to_watch, recursive=recursive)
        self.watched = list(watches)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._handler.cancel()
        self._observer.stop()
        self._observer.join(timeout=5)
