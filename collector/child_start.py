"""Starting a child process of the collector that runs its own Python (multiprocessing's
"spawn"): serve's report writer (`report_writer`) and the processes that check an audit
export's rows beside it (`evidence/check_pool`). What each needs alike: its parent's log
format, no KeyboardInterrupt traceback from a Ctrl-C while it starts (nor a Ctrl-C lost), the
frozen program's libraries, how it ended, in words, for the log or an error, and the socket it
shares with its parent, read by exact lengths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from devposture.collector import log_format


def cores_usable() -> int:
    """The cores this process may run on (its affinity where the system says it, as in a
    container limited to some of the machine's): whether a child beside it gains anything."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def socket_of(connection: Connection) -> socket.socket:
    """The socket under a multiprocessing connection (a duplicate of its descriptor), for
    bytes sent without a pickle. Raises OSError where the connection is no socket
    (multiprocessing's pipes on Windows)."""
    return socket.socket(fileno=os.dup(connection.fileno()))


def received(sock: socket.socket, size: int) -> bytes | None:
    """Exactly `size` bytes, read into place; None at end of file or a reset (the other
    process is gone: one killed with an answer unread resets the connection)."""
    data = received_into(sock, size)
    return None if data is None else bytes(data)


def received_into(sock: socket.socket, size: int) -> bytearray | None:
    """`received`, in the buffer read into (no copy: a megabyte of a member's bytes)."""
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        try:
            read = sock.recv_into(view[got:])
        except OSError:
            return None
        if not read:
            return None
        got += read
    return data


def logging_now() -> tuple[str, int]:
    """The collector's log format and level, for its child to log alike (a spawned process
    starts with logging unset, and Python's last resort printed bare messages)."""
    root = logging.getLogger()
    json_lines = any(isinstance(h.formatter, log_format.JsonFormatter) for h in root.handlers)
    return ("json" if json_lines else "text"), root.getEffectiveLevel()


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """While the child starts: SIGINT held off (blocked) in this thread, a mask the child
    inherits through exec and keeps from its first instruction until it ignores SIGINT itself
    (`ignore_interrupts`). A Ctrl-C at the terminal reaches the whole process group: a child
    still importing printed a KeyboardInterrupt traceback.

    Held, not ignored, in this process too: a Ctrl-C ignored here while a child started was
    lost, and the command went on to the end as if never told to stop. One that came meanwhile
    is given to the handler that was in place once the start is over (a KeyboardInterrupt
    there, after the child was started: the caller ends it). The handler is swapped too,
    because the kernel gives a signal the main thread holds off to another thread (a database
    pool's), whose Python handler would then raise in the middle of the start.

    multiprocessing's resource tracker, started with a first child, holds SIGINT off while it
    starts too, and lets it through after, the mask undone in the middle of ours: it is
    started before, so that a child started here never runs unprotected."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signals to pass on
        yield
        return
    resource_tracker.ensure_running()
    came: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if previous is not None:
        signal.signal(signal.SIGINT, lambda number, _: came.append(number))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        # Unblocked, a held SIGINT is handled here and now (by the swapped handler).
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            if came and callable(previous):
                previous(signal.SIGINT, None)


def ignore_interrupts() -> None:
    """In the child, once running: SIGINT ignored, and no longer held off (`interrupts_held`),
    so that one the terminal sent while it started is dropped, never delivered."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def start_child(process: BaseProcess, its_end: Connection) -> None:
    """Start `process` (multiprocessing's spawn) with its libraries found and SIGINT held
    while it starts, then close this process's copy of `its_end` (the child's end of their
    connection): the connection then ends when the child does."""
    try:
        with bundled_libraries_found(), interrupts_held():
            process.start()
    finally:
        its_end.close()


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


# The kind of the message `send_error` sends.
ERROR = "error"


def send_error(connection: Connection, exc: BaseException) -> None:
    """Send the error that stopped a child's work, for its parent to raise as its own (one
    that cannot be pickled goes as a RuntimeError that names it)."""
    try:
        connection.send((ERROR, exc))
    except (pickle.PicklingError, TypeError, AttributeError):
        connection.send((ERROR, RuntimeError(f"{type(exc).__name__}: {exc}")))


def end_reader(process: BaseProcess, *, finished: bool) -> None:
    """End a child that read for this process: killed at once where it had not finished (the
    caller stopped before the end), else given a few seconds to exit by itself."""
    if process.pid is None:
        return
    if not finished:
        process.kill()
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()
