"""A command line's modules loaded with Python's cyclic garbage collector paused.

Why: a command imports hundreds of modules before it does anything (the collector's `report
fleet`: its own, argparse's, the store's, psycopg's on PostgreSQL; the agent's: gRPC's,
protobuf's, psutil's, watchdog's), and every 700 objects they allocate set off a collection,
the older generations' ones (every tenth, every hundredth) walking much of what was loaded
so far, to find next to no garbage: what a module defines lives as long as the process.
Paused while they load, then set aside (`gc.freeze`: no later collection walks them), the
objects a command makes afterwards are collected as before. Measured on a 2-core VM
(2026-12-07, the old entry and this one alternated 25 times, medians of each process's CPU):
`devposture-collector --version` 176 -> 146 ms, `report fleet` over 100,000 devices on
PostgreSQL 307 -> 264 ms (its wall 437 -> 403 ms), `devposture-agent --version` 306 -> 267
ms. The garbage the pause leaves uncollected: 0.3 MB of resident memory.

The console scripts (`devposture.agent.launch`, `devposture.collector.launch`) load their
command line this way; code that imports the command lines (the tests, the benchmarks)
keeps Python's collector as it was.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Import what the block imports with the cyclic garbage collector paused, then set aside
    every object alive (`gc.freeze`) and collect as before (enabled again only if it was)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
