"""Run a command with its standard output on a real pseudo-terminal of a given size, as a
person at a terminal runs it: `isatty()` is true and the kernel reports the width."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OnTerminal:
    code: int
    out: str  # what the terminal showed (its \r\n back to \n)
    err: str


def run_on_terminal(argv: Sequence[str], columns: int = 80) -> OnTerminal:
    """Run `argv` with stdout on a new pty `columns` wide (stderr piped apart); $COLUMNS is
    removed so that only the terminal tells the width."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    with subprocess.Popen(argv, stdout=follower, stderr=subprocess.PIPE, env=env) as process:
        os.close(follower)
        shown = bytearray()
        while True:  # read as it comes: a full pty would stop the command
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every copy of the follower is closed, the command is done
                break
            if not chunk:
                break
            shown += chunk
        err = process.stderr.read() if process.stderr else b""
        code = process.wait(timeout=120)
    os.close(leader)
    return OnTerminal(code, shown.decode("utf-8").replace("\r\n", "\n"), err.decode("utf-8"))
