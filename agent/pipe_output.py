"""Writing a command's answer to standard output, quietly when the reader has gone.

`devposture-agent status | head -1` closes the pipe after one line: Python would raise
BrokenPipeError on the next write, and again when it flushes standard output on exit, each
with a traceback. The reader asked for no more, so nothing more is said, and the command's
exit status stays what it was going to be.
"""

from __future__ import annotations

import os
import sys


def write_out(text: str) -> bool:
    """Write and flush `text`; False when the reader had closed the pipe (standard output
    then goes to the null device, so that the flush at exit finds nothing to complain of)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        return False
    return True


def silence_stdout() -> None:
    """Point standard output at the null device, whatever is still buffered."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
