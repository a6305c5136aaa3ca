"""Starting a child process of the collector that runs its own Python (multiprocessing's
"spawn"): serve's report writer (`report_writer`) and the processes that check an audit
export's rows beside it (`evidence/check_pool`). What each needs alike: its parent's log
format, no KeyboardInterrupt traceback from a Ctrl-C while it starts, the frozen program's
libraries, and how it ended, in words, for the log or an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from multiprocessing.process import BaseProcess

from devposture.collector import log_format


def logging_now() -> tuple[str, int]:
    """The collector's log format and level, for its child to log alike (a spawned process
    starts with logging unset, and Python's last resort printed bare messages)."""
    root = logging.getLogger()
    json_lines = any(isinstance(h.formatter, log_format.JsonFormatter) for h in root.handlers)
    return ("json" if json_lines else "text"), root.getEffectiveLevel()


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """While the child starts: SIGINT ignored, which it inherits and keeps from its first
    instruction (Python leaves an ignored SIGINT ignored). A Ctrl-C at the terminal reaches
    the whole process group: a child still importing printed a KeyboardInterrupt traceback
    (it ignores SIGINT itself only once running, `write_groups`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def bundled_libraries_found() -> Iterator[None]:
    """While the child starts: the frozen collector (installers/python/freeze) on Linux takes
    its own libraries' folder out of what its children inherit (child_env.py: the tools a
    program runs must load the system's libraries), and the child is this program again,
    whose Python needs them (libexpat, ...). Put back for the start only; a command another
    thread would start in that instant inherits it too."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or bundle is None or sys.platform in {"win32", "darwin"}:
        yield
        return
    before = os.environ.get("LD_LIBRARY_PATH")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (bundle, before) if p)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = before


def ending(process: BaseProcess | None) -> str:
    """How a child ended, for the log: "exit code 1", "killed by SIGKILL" (the kernel's OOM
    killer, an operator); "exit code None" said nothing."""
    code = None if process is None else process.exitcode
    if code is None:
        return "its connection broke; it had not exited yet"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"
