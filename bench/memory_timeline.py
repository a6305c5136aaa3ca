"""Benchmark aid: how a collector command's memory moves while it runs, not only its peak.

    .venv/bin/python bench/memory_timeline.py --every 10 -- audit export --data DIR \
        --from 2026-09-02 --to 2026-12-01 --out /var/tmp/q.zip

Runs the collector's command line (`devposture.collector.cli.main`) in this process, with a
thread that prints, every `--every` seconds and once at the end: the resident memory, the
memory blocks Python's allocator holds (`sys.getallocatedblocks`, objects alive), and on
glibc what `malloc` took from the system and how much of it is in use (`mallinfo2`). Then:
the sample at the peak and the process's peak RSS (`ru_maxrss`).

Why: a peak alone does not say what holds it. The hourly quarter's export peaked at 317 MB;
its timeline showed RSS rising in steps, each when the count of Python objects jumped and
never coming down (the allocator keeps its arenas), which pointed at reads of the chain that
were far larger than their bound (bench/README.md, "each read of the chain sized before it is
made"). Linux only (it reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import re
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devposture.collector.cli import main as collector_cli

MB = 1 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]


@functools.cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    """glibc's mallinfo2, found once (find_library runs ldconfig in a child process), or None
    where malloc is not glibc's."""
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = _MallInfo2
    return function


def _mallinfo() -> _MallInfo2 | None:
    """glibc's totals over every arena, or None where malloc is not glibc's."""
    function = _mallinfo2()
    return None if function is None else function()


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    return int(found.group(1)) / 1024 if found else 0.0


def sample(started: float) -> tuple[float, str]:
    """(RSS in MB, the line printed for it)."""
    rss = _rss_mb()
    line = (f"{time.monotonic() - started:7.0f} s  RSS {rss:7.1f} MB  Python blocks "
            f"{sys.getallocatedblocks() / 1e6:5.2f} M")  # fmt: skip
    info = _mallinfo()
    if info is not None:
        line += (f"  malloc: from the system {(info.arena + info.hblkhd) / MB:6.1f} MB,"
                 f" in use {(info.uordblks + info.hblkhd) / MB:6.1f} MB")  # fmt: skip
    return rss, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the collector command, after --")  # fmt: skip
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the collector command after --, e.g. -- audit export --data DIR …")
    started = time.monotonic()
    peak: list[tuple[float, str]] = [(0.0, "")]
    done = threading.Event()

    def note() -> None:
        rss, line = sample(started)
        peak[0] = max(peak[0], (rss, line))
        print(line, file=sys.stderr, flush=True)

    def watch() -> None:
        while not done.wait(args.every):
            note()

    watcher = threading.Thread(target=watch, name="memory-timeline", daemon=True)
    watcher.start()
    try:
        code = collector_cli(command)
    finally:
        done.set()
        watcher.join()
        note()  # the end, however short the command was
        print(f"peak sample: {peak[0][1]}", file=sys.stderr)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the process (ru_maxrss): {maxrss:.1f} MB", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
