"""Leases: work that must happen once however many collectors share the database (the hourly
record of the fleet's day, the trend's back-fill, judging every device again under a new
policy) is done by whichever collector holds its lease.

A lease is a row: a name, its holder and until when it holds. Taking it succeeds when it is
free, expired, or already the taker's (renewal); a collector that dies holding one gives it up
when it expires, and another takes the work over. Times are the collectors' wall clocks (they
are kept in sync by NTP; a lease is minutes long, far beyond their skew).

Work owed for a version (judging the fleet again under policy version N) is marked done in the
same table: a row "done/<work>" whose `until_us` holds the version done through, a number that
only rises, not a time. A collector that dies before it marks the work leaves it owed, and
another does it once it holds the lease; one that finds it marked does nothing.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.store.base import Part, from_us, to_us

# A serving process's presence is a lease of its own: "serving/<host>:<pid>".
PRESENCE = "serving/"
# A mark of work done through a version (`mark_done`): "done/<work>".
DONE = "done/"


class Coordination(Part):
    """Leases (`Store.coordination`)."""

    def take_lease(self, name: str, holder: str, now: dt.datetime, hold: dt.timedelta) -> bool:
        """Hold `name` until `now + hold` if it is free, expired or `holder`'s already."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO leases(name, holder, until_us) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                " until_us = excluded.until_us"
                " WHERE leases.until_us <= ? OR leases.holder = excluded.holder",
                (name, holder, to_us(now + hold), to_us(now)),
            )
            return cur.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        """Give `name` up at once (work done early), if `holder` holds it."""
        with self._write() as cur:
            cur.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, now: dt.datetime) -> tuple[str, dt.datetime] | None:
        """Who holds `name` and until when, or None when nobody does now."""
        row = self._db.execute(
            "SELECT holder, until_us FROM leases WHERE name = ? AND until_us > ?",
            (name, to_us(now)),
        ).fetchone()
        return None if row is None else (str(row[0]), from_us(row[1]))

    def done_through(self, work: str) -> int:
        """The version `work` was last done through (`mark_done`); 0 when never."""
        row = self._db.execute(
            "SELECT until_us FROM leases WHERE name = ?", (DONE + work,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def mark_done(self, work: str, through: int, holder: str) -> None:
        """Mark `work` done through version `through` by `holder`; a mark never goes back (a
        collector that finished an older version's work after a newer one's leaves it)."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO leases(name, holder, until_us) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                " until_us = excluded.until_us WHERE leases.until_us < excluded.until_us",
                (DONE + work, holder, through),
            )

    def database_clock(self) -> dt.datetime | None:
        """The database server's clock, what every collector on it shares (PostgreSQL); None
        on SQLite, whose file is on this machine, read by this machine's clock alone."""
        if self.dialect.is_sqlite:
            return None
        row = self._db.execute(
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
        ).fetchone()
        return from_us(int(row[0]))

    def present(self, holder: str, now: dt.datetime, hold: dt.timedelta) -> int:
        """Say `holder` (a collector process) serves until `now + hold`, and count the
        processes serving now, itself included: what each process divides the fleet's
        per-device rate limit by (collector/ratelimit.py)."""
        with self._write() as cur:
            cur.execute(
                "INSERT INTO leases(name, holder, until_us) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET until_us = excluded.until_us",
                (PRESENCE + holder, holder, to_us(now + hold)),
            )
            cur.execute("DELETE FROM leases WHERE name LIKE ? AND until_us <= ?",
                        (PRESENCE + "%", to_us(now)))  # fmt: skip
            row = cur.execute(
                "SELECT COUNT(*) FROM leases WHERE name LIKE ? AND until_us > ?",
                (PRESENCE + "%", to_us(now)),
            ).fetchone()
        return max(1, int(row[0]))

    def absent(self, holder: str) -> None:
        """`holder` stops serving (the others count it out at once)."""
        self.release_lease(PRESENCE + holder, holder)
