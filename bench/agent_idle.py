"""Benchmark: CPU the agent's watchers use while nothing happens (target: under 0.2 % of a core).

Runs the network watcher (2 s interval, the default) and the backup watcher on this machine's
backup folders for `--seconds`, then prints the process's CPU time over wall time.

    .venv/bin/python bench/agent_idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import resource
import time

from devposture.agent.host import LiveHost
from devposture.agent.probes import ProbeConfig
from devposture.agent.service import backup_folders
from devposture.agent.watch import BackupWatcher, NetworkWatcher


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    seconds = parser.parse_args().seconds
    host = LiveHost()
    folders = backup_folders(host, ProbeConfig())
    changes: list[float] = []
    network = NetworkWatcher(host, lambda: changes.append(time.monotonic()))
    backups = BackupWatcher(folders, lambda: changes.append(time.monotonic()))
    network.start()
    backups.start()
    time.sleep(1.0)  # let both settle before measuring
    cpu, wall = _cpu(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = _cpu() - cpu, time.monotonic() - wall
    network.stop()
    backups.stop()
    share = 100 * cpu / wall
    print(f"watched {len(backups.watched)} backup location(s); {len(changes)} change(s) seen")
    print(f"idle: {cpu:.3f} s CPU over {wall:.1f} s = {share:.3f} % of one core")
    print(f"target: idle CPU < 0.2 % of a core -> {'met' if share < 0.2 else 'NOT met'}")


if __name__ == "__main__":
    main()
