"""A long command's progress on standard error (`audit export`, `audit verify`, `audit check`).

On a terminal the line is rewritten in place and ended by the last update, or by `close` when
the command stops early, so that an error or a Ctrl-C starts on a line of its own. Into a file
or a pipe (a log, a CI job) each update is a line of its own: carriage returns made one line
of a log hold every update, with no end."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressLine:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._in_place = self._stream.isatty()
        self._open = False  # a line written in place without its end

    def show(self, text: str, *, last: bool = False) -> None:
        """`text` as the current progress; `last`: the work is done (the line is ended)."""
        if self._in_place:
            self._stream.write("\r" + text + ("\n" if last else ""))
            self._open = not last
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End a line left open (the command stops before its last update)."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
