"""A bundle member's lines, gathered into runs and taken by a thread beside the export's pass.

Why: an export makes a quarter's lines (a million and more records) in Python, one by one,
and each run of them is then hashed (SHA-256, for the manifest), CRC-32'd and deflated (for
the zip): a sixth of a daily quarter's export, gigabytes of bytes. hashlib, zlib's crc32 and
ISA-L let the GIL go while they work on a run, so a thread that takes the runs does that work
on the other core while the pass makes the next lines. The queue between them holds at most
`DEPTH` runs of about a megabyte: memory stays bounded whatever the period.

Each sink gets its runs in the order they were made (one thread takes them all, in order). A
sink that fails (the disk is full) fails the export: the error is raised to the pass at its
next run or when it waits for the runs to be taken (`drain`), never lost in the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import cast

Sink = Callable[[bytes], None]

# Runs of about this many bytes: the compressor and the hash run once per run, not per line.
RUN = 1 << 20
# Runs waiting for the thread at most (the pass waits beyond): a few megabytes.
DEPTH = 4

_STOP = object()


class Beside:
    """The thread that takes runs for their sinks. Use as a context manager: leaving it
    (however) ends the thread; runs still waiting after a failure of the pass are dropped."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._failed: BaseException | None = None
        self._dropping = False
        self._thread = threading.Thread(target=self._take, name="devposture-bundle", daemon=True)
        self._thread.start()

    def put(self, sink: Sink, run: bytes) -> None:
        """Hand `run` to `sink` beside the caller (raises what an earlier run's sink raised)."""
        self._raise_failure()
        self._queue.put((sink, run))

    def drain(self) -> None:
        """Wait until every run handed over is taken; raises what a sink raised."""
        self._queue.join()
        self._raise_failure()

    def abandon(self) -> None:
        """The pass failed: drop what waits, and return once the run being taken is done (a
        member's handle may be closed only then: its compressor is not for two threads)."""
        self._dropping = True
        self._queue.join()

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    def _take(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._failed is None and not self._dropping:
                    sink, run = cast("tuple[Sink, bytes]", item)
                    sink(run)
            except BaseException as exc:  # handed to the pass, which raises it
                self._failed = exc
            finally:
                self._queue.task_done()

    def __enter__(self) -> Beside:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:  # fmt: skip
        if kind is not None:  # the pass failed: what waits is of a bundle never finished
            self.abandon()
        self._queue.put(_STOP)
        self._thread.join()
        if kind is None:
            self._raise_failure()


class Runs:
    """Lines gathered into runs for `sink`, taken by `beside`'s thread, or at once without
    one (the bundle's small members)."""

    def __init__(self, sink: Sink, beside: Beside | None = None) -> None:
        self._sink = sink
        self._beside = beside
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= RUN:
            self.flush()

    def flush(self) -> None:
        """Hand over what is gathered (then `Beside.drain` waits until it is taken)."""
        if self._pending:
            run = b"".join(self._pending)
            if self._beside is not None:
                self._beside.put(self._sink, run)
            else:
                self._sink(run)
        self._pending, self._size = [], 0
