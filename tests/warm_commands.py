"""The agent's command cache, warm in a new state folder: what an agent that has run before on
this machine holds (`agent/host/command_cache.py`).

Why: a test's agent starts in a new state folder, so its first collection ran
`apt-get -s dist-upgrade` afresh, and on a machine whose apt keeps no binary cache (Debian's
container images: `docker-clean` sets `Dir::Cache::pkgcache ""`) each run parsed every
package list again, 2.3 s of a core. Fifty-odd tests paid it, a seventh of the SQLite leg's
CPU, though none of them is about apt. The cache given here is the real agent code's: the
real command run by the agent's own host (`LiveHost.run_cached`), keyed by the stamps of the
files apt reads, so an agent still runs apt itself where anything it reads has changed since.
The apt probe's own tests run it afresh.

One cache serves every test process of this user on this machine, and is kept between runs
in the tests' cache folder (`tests/caches.py`, outside the repository): the test processes
starting together took apt's 2.3-4.9 s of a core each (four on the SQLite leg, six on
PostgreSQL's, on 2026-12-07), where one run, under a lock, serves them all. The agent's own
lookup decides whether the cache still holds: apt runs again once what it reads has changed
or the entry has aged.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
from collections.abc import Sequence
from pathlib import Path

from devposture.agent.host.command_cache import CommandCache
from devposture.agent.host.live import LiveHost
from devposture.agent.probes.commands import APT_SIMULATE, is_declared
from devposture.agent.probes.linux.updates import APT_INPUTS
from devposture.agent.state import AgentState, write_atomic
from tests.caches import cache_dir

# What one apt-get may take at most (the agent's own default is shorter; a busy machine).
_TIMEOUT = 120.0


@functools.cache
def _warm_cache() -> Path | None:
    """The warm cache file, brought up to date by the first test process to need it (the
    others wait on its lock, then find it fresh), or None where there is no apt-get (the agent
    runs no cached command there)."""
    if LiveHost(declared=is_declared).which("apt-get") is None:
        return None
    folder = cache_dir() / "warm-commands"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = AgentState(folder).command_cache_path
    with (folder / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
        host = LiveHost(CommandCache(path), declared=is_declared)
        host.run_cached(APT_SIMULATE, _TIMEOUT, APT_INPUTS)
    return path if path.exists() else None


def seed(state: Path) -> None:
    """Give the enrolled agent in `state` a warm command cache, unless it holds one already
    (its own: kept) or is not enrolled (the agent keeps no cache then, and a test of an empty
    or missing folder sees it as it was)."""
    agent = AgentState(state)
    cache = agent.command_cache_path
    if not agent.is_enrolled() or cache.exists():
        return
    warm = _warm_cache()
    if warm is None:
        return
    # Written as the agent writes it, whole or not at all: a test's state folder may be
    # read-only or on a full disk (what it is about), and then the agent runs apt itself.
    with contextlib.suppress(OSError):
        write_atomic(cache, warm.read_bytes(), 0o600)


def seed_for(argv: Sequence[str]) -> None:
    """`seed` the state folder an agent's command line names (`--state`), if any."""
    if argv and Path(argv[0]).name == "devposture-agent" and "--state" in argv[:-1]:
        seed(Path(argv[list(argv).index("--state") + 1]))
