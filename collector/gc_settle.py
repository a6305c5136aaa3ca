"""A serving process's long-lived objects, set aside from Python's cyclic garbage collector
once it has started.

Why: everything a collector loads to serve (modules, the policy and its verdict templates,
gRPC's and the store's objects) lives as long as the process, yet every full collection
walked all of it again, triggered by the allocations each call makes. perf of `serve` under
unary load (bench/ingest_vs_echo.py --batch 0): the collector's own traversal
(`gc_collect_main`, `visit_decref`, `visit_reachable`) about 3 % of its CPU. `gc.freeze()`
moves what exists now into a generation the collector never walks; what a call allocates is
collected as before.
"""

from __future__ import annotations

import gc


def settled() -> None:
    """Collect once, then leave every object alive now out of later collections (call it
    when the process has started serving, not before it has loaded what it serves with)."""
    gc.collect()
    gc.freeze()
