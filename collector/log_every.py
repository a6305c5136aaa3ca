"""A failure that recurs, logged once every few seconds with how often it recurred since.

Through an outage (the database gone, its pool timing out) every call and every group fails
alike: one line each flooded the log (a PostgreSQL outage of a few seconds gave hundreds),
where one line every ten seconds, with a count, says the same and leaves the rest readable.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

# At most one line this often for one kind of failure.
LOG_EVERY_SECONDS = 10.0


class LogEvery:
    """When to log one recurring failure: `due()` says whether now, and with what suffix.
    `seconds` is read at each failure (a test gives time as data by changing it)."""

    def __init__(
        self, seconds: Callable[[], float] = lambda: LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._seconds, self._clock = seconds, clock
        self._logged = -math.inf
        self.unlogged = 0

    def due(self) -> str | None:
        """The suffix for a line now (" (N more since the last line)" or ""), or None: not
        yet, counted."""
        now = self._clock()
        if now - self._logged < self._seconds():
            self.unlogged += 1
            return None
        since = f" ({self.unlogged} more since the last line)" if self.unlogged else ""
        self._logged, self.unlogged = now, 0
        return since


class EveryFew(logging.Filter):
    """A logger's recurring lines (psycopg's pool: a warning for each connection it fails to
    make, a few a second while PostgreSQL is away), one per message every few seconds, the
    next one saying how many were left out."""

    def __init__(self, seconds: Callable[[], float] = lambda: LOG_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__()
        self._seconds, self._clock = seconds, clock
        self._each: dict[str, LogEvery] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        every = self._each.get(str(record.msg))
        if every is None:
            every = self._each[str(record.msg)] = LogEvery(self._seconds, self._clock)
        since = every.due()
        if since is None:
            return False
        if since:
            record.msg, record.args = f"{record.getMessage()}{since}", None
        return True
