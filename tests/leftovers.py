"""The processes a test started and left, other than multiprocessing's resource tracker.

The tracker is the test process's own (one per process that ever starts a child with
"spawn", as the collector's writer and export workers do) and serves every test that runs
after in that process: a test that ended its leftovers by killing its whole process tree
killed it too, and the next spawn warned that it "died unexpectedly" and started another.
"""

from __future__ import annotations

import contextlib

import psutil


def _is_tracker(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return "resource_tracker" in " ".join(process.cmdline())
    return False


def left_running() -> list[psutil.Process]:
    """This process's descendants still running (not zombies), the tracker left out."""
    left = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE and not _is_tracker(child):
                left.append(child)
    return left


def kill_left_running() -> None:
    """SIGKILL every descendant still running but the tracker."""
    for child in left_running():
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
