"""Failed guesses by source (enrollments and reestablishments on the enrollment port, logins
to the dashboard), kept in the database so that every collector and worker sharing it slows a
guessing source down alike: a script spreading its guesses over several collectors behind a
load balancer earns the same waits as against one (collector/throttle.py decides the waits).

Only a source's failures within the throttle's window matter; each new failure deletes every
failure older than that, so the table holds the last window's failures and no more. Times
are the collectors' wall clocks in microseconds (kept in sync by NTP; the window is minutes).
"""

from __future__ import annotations

from devposture.collector.store.base import Part

ENROLLMENT = "enrollment"
DASHBOARD = "dashboard"

_RECENT = (
    "SELECT at_us FROM failed_guesses WHERE kind = ? AND source = ? AND at_us > ? ORDER BY at_us"
)


class FailedGuesses(Part):
    """Failed guesses (`Store.guesses`)."""

    def recent(self, kind: str, source: str, since_us: int) -> list[int]:
        """When `source` failed at `kind` after `since_us`, oldest first."""
        rows = self._db.execute(_RECENT, (kind, source, since_us)).fetchall()
        return [int(row[0]) for row in rows]

    def add(self, kind: str, source: str, at_us: int, window_us: int) -> list[int]:
        """Count a failure of `source` at `at_us`; returns its failures within the window
        before it, this one included, oldest first."""
        since = at_us - window_us
        with self._write() as cur:
            cur.execute("DELETE FROM failed_guesses WHERE at_us <= ?", (since,))
            cur.execute(
                "INSERT INTO failed_guesses(kind, source, at_us) VALUES (?, ?, ?)",
                (kind, source, at_us),
            )
            rows = cur.execute(_RECENT, (kind, source, since)).fetchall()
        return [int(row[0]) for row in rows]


class GuessLedger:
    """One kind of guess's failures as the throttle reads and counts them (seconds on the
    wall clock; collector/throttle.py `FailureLedger`)."""

    def __init__(self, guesses: FailedGuesses, kind: str, window_seconds: float) -> None:
        self._guesses = guesses
        self._kind = kind
        self._window_us = int(window_seconds * 1_000_000)

    def recent(self, source: str, now: float) -> list[float]:
        since = int(now * 1_000_000) - self._window_us
        return [at / 1e6 for at in self._guesses.recent(self._kind, source, since)]

    def add(self, source: str, now: float) -> list[float]:
        added = self._guesses.add(self._kind, source, int(now * 1_000_000), self._window_us)
        return [at / 1e6 for at in added]
