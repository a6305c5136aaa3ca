"""Stopping a process (SIGSTOP) for a test, and knowing that it has stopped.

kill(SIGSTOP) only asks. The kernel wakes one of the process's threads to take the stop, and
that thread stops the others; each stops when it next runs. On a busy machine that is later
than kill's return, and a thread blocked on a socket that the test answers meanwhile reads the
answer and goes on. Found when a collector "stopped at" its fleet count's read, with both
cores busy, went on to write the day's record and held its write lock while stopped: the test
then waited on that lock for ever (tests/collector/test_coordination_faults.py).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.waiting import wait_until


def freeze(pid: int) -> None:
    """Stop `pid` and return once every one of its threads has stopped (or it is gone)."""
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: stopped(pid), f"every thread of process {pid} stopped")


def stopped(pid: int) -> bool:
    """Whether every thread of `pid` is stopped (state T or t), or the process is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return True
    for thread in threads:
        try:
            stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        # The state follows the command's name, in brackets that the name may hold itself.
        if stat[stat.rindex(")") + 2] not in "TtZX":
            return False
    return True
