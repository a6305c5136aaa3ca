"""Leases: work that must happen once however many collectors share the database (the hourly
record of the fleet's day, the trend's back-fill, judging every device again under a new
policy) is done by whichever collector holds its lease.

A lease is a row: a name, its holder, until when it holds, and the token of its grant.
Taking it succeeds when it is free, expired, or already the taker's (renewal); a collector
that dies holding one gives it up when it expires, and another takes the work over. Times are
the collectors' clocks, given by the caller (kept in sync by NTP; a lease is minutes long).

A collector can be paused past its lease (SIGSTOP, a frozen virtual machine, a long GC, a
stalled disk) and wake up to write what it read before, after another took the lease and did
the work. So each grant carries a fencing token, a number that rises with every new grant
of the name (a renewal keeps it), and the work writes `under` its lease: every write
transaction checks first, holding the store's write lock, that the row still names this grant
and has not lapsed by the clock read then, and renews it once half of its hold is gone.
Otherwise the write raises LeaseLost and writes nothing: the task stops, the new holder's
rows stand. The writes are one sequence (one write lock), so no grant can come between the
check and the commit; the token, not the clocks, keeps two holders from both writing.

Work owed for a version (judging the fleet again under policy version N) is marked done in the
same table: a row "done/<work>" whose `until_us` holds the version done through, a number that
only rises, not a time. A collector that dies before it marks the work leaves it owed, and
another does it once it holds the lease; one that finds it marked does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from devposture.collector.store.base import Part, fenced, from_us, to_us
from devposture.collector.store.engine import Cursor

# A serving process's presence is a lease of its own: "serving/<host>:<pid>".
PRESENCE = "serving/"
# A mark of work done through a version (`mark_done`): "done/<work>".
DONE = "done/"


@dataclass(frozen=True)
class Lease:
    """One grant of a lease: what the work writes under (`Coordination.under`)."""

    name: str
    holder: str
    token: int  # the grant's fencing token: rises with every new grant of `name`
    hold: dt.timedelta  # how long a renewal holds it from the moment it is renewed


class LeaseLost(Exception):
    """A write under a lease refused: another collector took the lease since (`taken_by`),
    or it lapsed (this collector was paused, or slower than its hold between two writes).
    Nothing of the transaction was written."""

    def __init__(self, lease: Lease, taken_by: str | None) -> None:
        if taken_by is None:
            why = "it lapsed while this collector worked (paused, or slower than its hold)"
        else:
            why = f"another collector took it over ({taken_by}) while this one worked"
        super().__init__(
            f"the {lease.name!r} lease is no longer this collector's (grant {lease.token}):"
            f" {why}; nothing more is written under it"
        )
        self.lease, self.taken_by = lease, taken_by


class Coordination(Part):
    """Leases (`Store.coordination`)."""

    def take_lease(
        self, name: str, holder: str, now: dt.datetime, hold: dt.timedelta
    ) -> Lease | None:
        """Hold `name` until `now + hold` if it is free, expired or `holder`'s already: the
        grant, or None. A new holder (or the same after a lapse) gets the next token; a
        renewal while held keeps it. The row is never deleted, so tokens never go back."""
        with self._write() as cur:
            row = cur.execute(
                "INSERT INTO leases(name, holder, until_us, token) VALUES (?, ?, ?, 1)"
                " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder,"
                " until_us = excluded.until_us,"
                " token = CASE WHEN leases.holder = excluded.holder AND leases.until_us > ?"
                " THEN leases.token ELSE leases.token + 1 END"
                " WHERE leases.until_us <= ? OR leases.holder = excluded.holder"
                " RETURNING token",
                (name, holder, to_us(now + hold), to_us(now), to_us(now)),
            ).fetchall()
        return Lease(name, holder, int(row[0][0]), hold) if row else None

    def under(self, lease: Lease, clock: Callable[[], dt.datetime]) -> AbstractContextManager[None]:
        """Inside, every write this thread makes to the database, through any part of the
        store, first checks that `lease` is still this grant and unexpired by `clock` (read
        holding the write lock), renewing it for its hold once half of it is gone; otherwise
        it raises LeaseLost and writes nothing. Work that writes as it goes keeps its lease."""
        return fenced(self._db, lambda cur: self._hold(cur, lease, to_us(clock())))

    @staticmethod
    def _hold(cur: Cursor, lease: Lease, now_us: int) -> None:
        """`under`'s check, in the write's transaction."""
        row = cur.execute(
            "SELECT holder, token, until_us FROM leases WHERE name = ?", (lease.name,)
        ).fetchone()
        if row is None or (str(row[0]), int(row[1])) != (lease.holder, lease.token):
            raise LeaseLost(lease, None if row is None else f"{row[0]}, grant {row[1]}")
        until_us = int(row[2])
        if until_us <= now_us:
            raise LeaseLost(lease, None)
        hold_us = lease.hold // dt.timedelta(microseconds=1)
        if until_us - now_us < hold_us // 2:
            cur.execute("UPDATE leases SET until_us = ? WHERE name = ? AND token = ?",
                        (now_us + hold_us, lease.name, lease.token))  # fmt: skip

    def release(self, lease: Lease) -> None:
        """Give `lease` up at once (work done early), if it is still this grant. The row
        stays, with its token: the next grant's is higher still."""
        with self._write() as cur:
            cur.execute(
                "UPDATE leases SET until_us = 0 WHERE name = ? AND holder = ? AND token = ?",
                (lease.name, lease.holder, lease.token),
            )

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
        with self._write() as cur:
            cur.execute("DELETE FROM leases WHERE name = ? AND holder = ?",
                        (PRESENCE + holder, holder))  # fmt: skip
