"""One remote audit export at a time on a collector's admin port.

An export takes the collector's cores (its worker processes, `evidence/check_pool`) and up to
300 MB for a quarter: two at once would halve each one's speed and could take the memory the
agents' reports need. So a second caller is answered at once, RESOURCE_EXHAUSTED, with who
runs the first, since when, how far it is, and what to do (run it again once the first has
ended): an auditor who sees no progress for minutes would think the collector hung, and
a refusal that names the running export tells them whether it is their own.

The one exception is an export whose caller has gone (a Ctrl-C, a deadline, a dropped
connection; `evidence/stopping`): it is ending, within seconds, and the caller who just
pressed Ctrl-C and typed the command again is that same auditor. Their new export waits for it
to end (at most `ENDING_WAIT_SECONDS`, then refused like the other), then runs.

The limit is this collector process's: the work it bounds is this machine's. Several
collectors on one PostgreSQL each run one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from devposture.collector.company_time import shown
from devposture.policy.cli_messages import Worded

log = logging.getLogger(__name__)

# How long an export waits for one whose caller went away to end before it is refused: the
# ending export looks whether to stop after each step, a step taking seconds.
ENDING_WAIT_SECONDS = 60.0


class Busy(Worded):
    """Another export runs on this collector: RESOURCE_EXHAUSTED, saying what to do."""


@dataclass
class Running:
    """The export under way: who asked, when, how far it is, and whether it is ending."""

    actor: str
    started: dt.datetime
    stop: threading.Event
    done: int = 0
    total: int = 0

    def progress(self, done: int, total: int) -> None:
        """Where the export reports (done, total): kept for the refusal of another."""
        self.done, self.total = done, total


class OneExport:
    """The admin port's single export slot, claimed on the export's own thread."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running: Running | None = None

    @contextmanager
    def claimed(self, running: Running, zone: Callable[[], dt.tzinfo]) -> Iterator[None]:
        """Hold the slot for `running` while the block runs; raise `Busy` (worded with times
        in `zone()`, the company's) when another export holds it."""
        with self._changed:
            ending = self._running
            if ending is not None and ending.stop.is_set():
                log.info("a remote audit export waits for the one whose caller went away to end")
                self._changed.wait_for(lambda: self._running is None, ENDING_WAIT_SECONDS)
            other = self._running
            if other is None:
                self._running = running
        if other is not None:
            raise _busy(other, zone())
        try:
            yield
        finally:
            with self._changed:
                self._running = None
                self._changed.notify_all()


def _busy(other: Running, zone: dt.tzinfo) -> Busy:
    if other.stop.is_set():
        return Busy(
            "the audit export on this collector whose caller went away is still ending: run"
            " yours again in a minute"
        )
    percent = 100 * other.done // other.total if other.total else 0
    return Busy(
        "another audit export is running on this collector (asked by {actor} at {started},"
        " {percent}% done): exports run one at a time. Run yours again once it has ended",
        actor=other.actor, started=shown(other.started, zone), percent=percent,
    )  # fmt: skip
