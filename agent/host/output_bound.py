"""Reading what a tool prints, at most a bound per stream, within its deadline.

`communicate()` keeps everything a tool prints until it exits or its timeout ends it. A tool
that prints without end (a broken `nmcli` in a loop, an `apt-get` dumping a debug log, a
hostile binary found on the PATH) then grows the agent by hundreds of megabytes a second, far
past its 50 MB target, before the timeout comes (`yes` reaches 1.5 GB in under 3 s). So each
stream is read up to its bound; one byte more and the reading stops (`TooMuchOutput`), and the
caller ends the tool and reports the fact as unknown, never parsing a part as if it were all.

The bounds, against the largest real outputs of the commands the probes run
(`agent/probes/commands.py`):

* recorded under `tests/fixtures/`: the largest is 84 KB (a firewalld ruleset with LXC in
  `nft -j list ruleset`), then `lsblk -J` on a laptop with 300 snaps (64 KB) and
  `apt-get -s dist-upgrade` with 124 pending packages (25 KB, about 200 bytes a package);
* real machines' worst cases, scaled from those: `apt-get -s dist-upgrade` upgrading a whole
  desktop release (6,000 packages, about 1.2 MB); the Windows Update search on a Windows never
  updated (4.6 KB an update in the recording of six, 300 pending: about 1.4 MB, twice that were
  it UTF-16); `Get-HotFix` as JSON after years of updates (a thousand hotfixes at a few
  hundred bytes: under 0.5 MB); `firewall-cmd --list-all-zones` (2-3 KB a recorded machine,
  a few KB a zone) and `iptables -S` with Docker or a developer's Kubernetes (under 1 MB).

Standard output takes 8 MiB: four times the largest of these, a hundred times the largest
recording, and still a bounded part of the agent's memory, for a moment, in a case no real
machine shows. Standard error carries warnings and the first line of an error (what the probes
read of it) and takes 1 MiB. Past either, the tool is taken as broken: its fact says so
(`OutputTooLargeError`), and IT sees which tool.

Two ways to read both pipes at once (one alone could leave the tool blocked on the other, full,
pipe): on POSIX one thread waits on both (`selectors`, as `communicate()` does there); Windows
cannot wait on pipes, so a thread reads each (as `communicate()` does there). Neither waits
past the deadline for a helper the tool started that outlived it (it left the tool's process
group) and holds a pipe open: on POSIX the pipes are closed at once (the helper gets a broken
pipe), on Windows the pipe's reader is left to end with it, keeping nothing it reads.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO

STDOUT_MOST = 8 << 20
STDERR_MOST = 1 << 20
_CHUNK = 64 << 10

Popen = subprocess.Popen[bytes]


class TooMuchOutput(Exception):
    """A stream passed its bound; `most` is that bound in bytes."""

    def __init__(self, stream: str, most: int) -> None:
        super().__init__(f"{stream}: more than {most} bytes")
        self.stream = stream
        self.most = most


class OutputDeadline(Exception):
    """The deadline came before the tool closed both its streams."""


def shown_size(most: int) -> str:
    """A bound as people read it: "8 MiB", "1 MiB"."""
    return f"{most >> 20} MiB" if most >= 1 << 20 and most % (1 << 20) == 0 else f"{most} bytes"


def _streams(proc: Popen) -> tuple[IO[bytes], IO[bytes]]:
    if proc.stdout is None or proc.stderr is None:
        raise ValueError("the tool's stdout and stderr must be pipes")
    return proc.stdout, proc.stderr


def read_selecting(proc: Popen, deadline: float) -> tuple[bytes, bytes]:
    """Both streams of `proc` until it closes them (POSIX): what each held, at most its
    bound. Raises TooMuchOutput, or OutputDeadline when `deadline` (a time.monotonic()
    instant) comes first; the pipes are closed when it returns or raises."""
    out, err = _streams(proc)
    out_fd, err_fd = out.fileno(), err.fileno()
    got = {out_fd: bytearray(), err_fd: bytearray()}
    bounds = {out_fd: ("stdout", STDOUT_MOST), err_fd: ("stderr", STDERR_MOST)}
    selector_type = getattr(selectors, "PollSelector", selectors.SelectSelector)
    try:
        with selector_type() as selector:
            for pipe in (out, err):
                selector.register(pipe, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OutputDeadline
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    got[key.fd] += chunk
                    stream, most = bounds[key.fd]
                    if len(got[key.fd]) > most:
                        raise TooMuchOutput(stream, most)
    except BaseException:
        for held in got.values():  # not used: nor kept alive by the error's traceback
            held.clear()
        raise
    finally:
        out.close()
        err.close()
    return bytes(got[out_fd]), bytes(got[err_fd])


class _Reader:
    """One pipe read by a thread of its own, at most `most` bytes; it closes the pipe when it
    stops."""

    def __init__(
        self, pipe: IO[bytes], stream: str, most: int, stopped: Callable[[], None]
    ) -> None:
        self.pipe, self.stream, self.most = pipe, stream, most
        self.held: list[bytes] = []  # chunks, joined once at the end: no buffer grown and moved
        self.size = 0
        self.over = False
        self.abandoned = False
        self.done = threading.Event()
        self._stopped = stopped
        self.thread = threading.Thread(target=self._read, name=f"tool-{stream}", daemon=True)

    def _read(self) -> None:
        try:
            while True:
                chunk = self.pipe.read1(_CHUNK)  # type: ignore[attr-defined]
                if not chunk:
                    break
                self.held.append(chunk)
                self.size += len(chunk)
                if self.size > self.most:
                    self.over = True
                    break
        except (OSError, ValueError):
            pass  # the pipe broke: what was read is what the tool printed
        finally:
            self.pipe.close()
            if self.abandoned:
                self.held.clear()
            self.done.set()
            self._stopped()

    def abandon(self) -> None:
        """What was read is not used: drop it now and whatever comes until the pipe ends, so
        that the error's traceback, which reaches this reader, keeps none of it alive."""
        self.abandoned = True
        self.held.clear()


def read_threaded(proc: Popen, deadline: float) -> tuple[bytes, bytes]:
    """As `read_selecting`, with a thread per pipe (Windows). A reader still blocked when this
    raises (a helper of the tool holds its pipe) ends, and closes its pipe, when the pipe
    does: it holds no more than its bound meanwhile."""
    out, err = _streams(proc)
    settled = threading.Event()
    readers: list[_Reader] = []

    def stopped() -> None:
        if any(r.over for r in readers) or all(r.done.is_set() for r in readers):
            settled.set()

    readers += [_Reader(out, "stdout", STDOUT_MOST, stopped),
                _Reader(err, "stderr", STDERR_MOST, stopped)]  # fmt: skip
    for reader in readers:
        reader.thread.start()
    timely = settled.wait(max(0.0, deadline - time.monotonic()))
    over = [reader for reader in readers if reader.over]
    if not timely or over:
        for reader in readers:
            reader.abandon()
        raise TooMuchOutput(over[0].stream, over[0].most) if over else OutputDeadline
    return b"".join(readers[0].held), b"".join(readers[1].held)


# How this system reads a tool's output.
read_output = read_selecting if os.name == "posix" else read_threaded
