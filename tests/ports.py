"""Loopback ports for tests: below the kernel's ephemeral range, a slice for each pytest worker.

A port found free by binding port 0 comes from the ephemeral range (32768-60999 on Linux),
which every outgoing connection of every process draws from too: a PostgreSQL or gRPC
client could take it between the test releasing it and a collector binding it ("another
process is already using the port", seen with both cores busy), and the suite's pytest
workers drew from the same pool. The kernel hands out no port below that range, and each
worker takes ports from its own slice of it, in turn, each checked free by binding it.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_LOWEST = 10000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _slice() -> range:
    """This process's ports: its pytest worker's share of [10000, the ephemeral range)."""
    try:
        below = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        below = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) % max(workers, 1) if worker.isdigit() else 0
    width = max((below - _LOWEST) // max(workers, 1), 1)
    return range(_LOWEST + index * width, _LOWEST + (index + 1) * width)


_PORTS = _slice()
# Where this process starts in its slice: another run's processes may still hold the first.
_turn = random.Random(os.getpid()).randrange(len(_PORTS))


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports of this worker's slice, each free when checked (bound,
    then released): nothing else on the machine is handed them meanwhile."""
    global _turn  # noqa: PLW0603 - the slice is walked once per process, in turn
    found: list[int] = []
    for _ in range(len(_PORTS)):
        port = _PORTS[_turn % len(_PORTS)]
        _turn += 1
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (another run's process, a service): the next one
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"no {count} free loopback ports in {_PORTS}")


def free_port() -> int:
    """One free loopback port (`free_ports`), also where nothing listens: a refused address."""
    return free_ports(1)[0]
