"""A command line's modules loaded with Python's cyclic garbage collector paused.

Why: a command imports hundreds of modules before it does anything (the collector's `report
fleet`: its own, argparse's, the store's, psycopg's on PostgreSQL; the agent's: gRPC's,
protobuf's, psutil's, cryptography's), and every 700 objects they allocate set off a
collection, every tenth of those walking all that was loaded so far, to find next to no
garbage: what a module defines lives as long as the process. Paused while they load, then set
aside (`gc.freeze`: no later collection walks them), the objects a command makes afterwards
are collected as before. Measured on a 2-core VM (2026-12-07, the CPU of 25 runs each,
medians): `devposture-collector report fleet` over 100,000 devices on PostgreSQL 306 -> 261
ms, its wall 424 -> 398 ms; importing the agent's command line 323 -> 259 ms. The garbage
left uncollected by the pause: 0.3 MB of resident memory.

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
