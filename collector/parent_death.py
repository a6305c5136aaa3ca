"""A child process that dies with the collector process that started it.

A collector that is killed must be killed whole, as a service manager stopping its unit does:
what it stored is then what it had stored. Its children are the report writer (a process of
each serving process, collector/report_writer.py) and, under `serve --workers N`, the N
workers (collector/workers.py), whose parent alone holds the data folder's lock. A writer
left behind committed a group for nobody; workers left behind went on acknowledging reports
on the agent ports after the lock was gone, beside a second collector started on the same
folder.

On Linux the kernel does it (PR_SET_PDEATHSIG: SIGKILL when the parent ends; strictly, when
the thread that started the child ends, which for both is the one that outlives the rest).
Elsewhere a writer ends at its next read (end of file) and workers are not started.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# The parent's process id, in a worker's environment (collector/workers.py).
PARENT_ENV = "DEVPOSTURE_COLLECTOR_PARENT"


def die_with_parent(parent: int | None, what: str) -> None:
    """SIGKILL this process when its parent ends; end now if `parent` (its pid, when known)
    is gone already (it died before the request took effect). `what` names this process in
    the warning logged should the kernel refuse."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("the %s cannot be tied to its collector (errno %d)", what, ctypes.get_errno())
    if parent is not None and os.getppid() != parent:
        os._exit(0)


def parent_from_environment() -> int | None:
    """The parent's pid a worker was given, or None (not started by a supervisor)."""
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else None
