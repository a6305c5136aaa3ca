"""Python's cyclic garbage collector, kept from the collector's hot paths: a serving
process's long-lived objects set aside once it has started (`settled`), and a batch's young
objects collected less often (`batch`, `batch_process`).

Why: everything a collector loads to serve (modules, the policy and its verdict templates,
gRPC's and the store's objects) lives as long as the process, yet every full collection
walked all of it again, triggered by the allocations each call makes. perf of `serve` under
unary load (bench/ingest_vs_echo.py --batch 0): the collector's own traversal
(`gc_collect_main`, `visit_decref`, `visit_reachable`) about 3 % of its CPU. `gc.freeze()`
moves what exists now into a generation the collector never walks; what a call allocates is
collected as before, its youngest generation every `SERVING_YOUNG` objects instead of 700:
the report writer holds a group of up to 512 reports' rows and records at once.
`bench/ingest_ab.py` (ReportBatch, this against the commit before, three runs): 110 -> 107,
126 -> 112 and 181 -> 152 us of server CPU a report; unary calls within the noise (403 ->
411, 533 -> 486, 562 -> 568 us).

A batch (an audit export, its workers, a verify, an `audit check`) reads rows in runs of
thousands: each run's rows are tuples that live until the run is written, so Python's
youngest generation (a collection every 700 container objects allocated and not yet freed)
was collected after every few hundred rows, and its older generations, walked every tenth
time, held the run again. The 10,000-device daily quarter's export spent 2.1 s of its 21 s of
CPU in collections that freed a few hundred objects in all (`gc.callbacks` timed them: 2,371
in a worker); with a young generation of `BATCH_YOUNG`, 15 and 0.2 s. Cycles are still
collected, a little later: what may wait is a run's worth of objects, a few megabytes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Container objects allocated and not freed between two collections of the youngest
# generation while a batch runs (Python's own: 700); the older generations' ratios kept.
BATCH_YOUNG = 10_000
# The same for a serving process once it has settled (`serve` and its report writer).
SERVING_YOUNG = 10_000


def settled() -> None:
    """Collect once, then leave every object alive now out of later collections (call it
    when the process has started serving, not before it has loaded what it serves with);
    from then on its young generation is collected every `SERVING_YOUNG` objects."""
    gc.collect()
    gc.freeze()
    _young_every(SERVING_YOUNG)


def _young_every(objects: int) -> tuple[int, ...]:
    """Collect the youngest generation every `objects` container objects, the older
    generations' ratios kept; returns the thresholds before."""
    before = gc.get_threshold()
    gc.set_threshold(objects, *before[1:])
    return before


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """While a batch runs in this process: its young generation collected every
    `BATCH_YOUNG` objects; Python's thresholds as they were after (a test or a long-lived
    process that runs the batch goes on as before)."""
    before = _young_every(BATCH_YOUNG)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def batch_process() -> None:
    """In a process started for a batch alone (an export's worker, a verifier's reader): its
    young generation collected every `BATCH_YOUNG` objects for the rest of its life."""
    _young_every(BATCH_YOUNG)
