"""IT alerts' tables (schema 13): what is open and was told, each digest composed, the delivery
outbox, and each collector's own problems; and the reads that find what to alert on.

Several collectors may share the database, so nothing about alerts lives in one process: a
digest is recorded only if no other was composed since the one its composer saw
(`record_digest`, under the store's write lock), so two collectors composing at once send one.
The outbox holds at most one message per channel that was never tried (a partial unique
index, schema 22): a digest composed while the channel's last message is still unsent joins
it instead of queueing another, so a channel's backlog is one message. A message tried and
failed keeps its digest id and items for its retry (its receiver may have taken it); a digest
composed after it waits as a message of its own. A message is claimed before it is sent
(`claim`): a collector whose lease lapsed while a slow receiver held its sending up is not
doubled by the next holder of the lease.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

from devposture.collector.store.base import Part, from_us, to_us
from devposture.collector.store.engine import Cursor
from devposture.collector.store.fleet import Failure, failing_now
from devposture.policy import Policy

# What an item says about itself (JSON): device, hostname, check and its titles, times.
Detail = dict[str, str | int]

PENDING, SENT, FAILED = "pending", "sent", "failed"
# Most items one message keeps; past this they are counted (`more`), not listed.
MAX_ITEMS = 5000
# Digests and finished deliveries are kept this long (to show what was sent, then pruned).
KEPT = dt.timedelta(days=30)


@dataclass(frozen=True)
class OpenItem:
    kind: str
    detail: Detail
    opened: dt.datetime
    told: dt.datetime


@dataclass(frozen=True)
class Composition:
    """One digest: the open items' changes, and the items to tell (each with its status)."""

    composed: dt.datetime
    previous: dt.datetime | None  # the last digest its composer saw (None: none yet)
    opened: dict[str, tuple[str, Detail]]  # key -> kind, detail
    reminded: list[str]
    resolved: list[str]
    items: list[Detail]
    open_items: int
    channels: tuple[str, ...]
    digest_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Open items whose detail changes without being told (marked away, or back): key -> detail
    kept: dict[str, Detail] = field(default_factory=dict)
    # Open items closed because a waiver now covers them (told waived, not resolved): keys
    waived: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Delivery:
    """A message waiting in the outbox: the items of one or more digests for one channel."""

    delivery_id: str
    channel: str
    digest_id: str
    items: list[Detail]
    more: int  # items left out past MAX_ITEMS
    open_items: int
    composed: dt.datetime
    created: dt.datetime
    attempts: int


_STALE = """
SELECT device_id, hostname, COALESCE(last_report_us, enrolled_us) FROM devices
WHERE status = 'active' AND COALESCE(last_report_us, enrolled_us) < :fresh
ORDER BY 3, device_id
"""
_CLONES = """
SELECT device_id, hostname, clone_suspected_us FROM devices
WHERE status = 'active' AND clone_suspected_us IS NOT NULL ORDER BY 3, device_id
"""


class AlertRecords(Part):
    """IT alerts' tables (`Store.alerts`)."""

    # --- what to alert on -------------------------------------------------------------------

    def failing(self, policy: Policy, at: dt.datetime) -> list[Failure]:
        """Devices failing a check past its grace, heard from and not waived (the standing
        rule, as `report failing` reads it)."""
        return failing_now(self._db, policy, at)

    def stale(self, policy: Policy, at: dt.datetime) -> list[tuple[str, str, dt.datetime]]:
        """Active devices silent past the policy's window: (device, hostname, last heard)."""
        fresh = to_us(at) - policy.stale_after_hours * 3_600_000_000
        rows = self._db.execute(_STALE, {"fresh": fresh}).fetchall()
        return [(str(d), str(h), from_us(t)) for d, h, t in rows]

    def inactive(self, device_ids: set[str]) -> set[str]:
        """Those of `device_ids` IT revoked or retired."""
        found: set[str] = set()
        ids = sorted(device_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(str(row[0]) for row in self._db.execute(
                f"SELECT device_id FROM devices WHERE status <> 'active'"  # noqa: S608
                f" AND device_id IN ({marks})", chunk,
            ))  # fmt: skip
        return found

    def waived_failures(
        self, pairs: set[tuple[str, str]], at: dt.datetime
    ) -> dict[tuple[str, str], tuple[dt.datetime, str]]:
        """Those of `pairs` (device, check) a waiver in force at `at` covers while the device
        does not pass the check (its verdict FAIL or UNKNOWN: unknown is not pass), each with
        the waiver's end and owner (of the waiver ending last, when several cover it). A
        failure told to IT that leaves the failing set for this is waived, not fixed."""
        found: dict[tuple[str, str], tuple[dt.datetime, str]] = {}
        devices = sorted({d for d, _ in pairs})
        t = to_us(at)
        for start in range(0, len(devices), 500):
            chunk = devices[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT w.device_id, w.check_id, w.expires_us, w.owner FROM waivers w"  # noqa: S608
                f" WHERE w.device_id IN ({marks}) AND w.created_us <= ? AND ? < w.expires_us"
                " AND (w.revoked_us IS NULL OR w.revoked_us > ?) AND NOT EXISTS ("
                "SELECT 1 FROM check_results c WHERE c.device_id = w.device_id"
                " AND c.check_id = w.check_id AND c.state = 'PASS')"
                " ORDER BY w.expires_us, w.waiver_id",
                [*chunk, t, t, t],
            ).fetchall()
            for device_id, check_id, expires, owner in rows:  # the one ending last wins
                if (str(device_id), str(check_id)) in pairs:
                    found[str(device_id), str(check_id)] = (from_us(expires), str(owner))
        return found

    def clones(self) -> list[tuple[str, str, dt.datetime]]:
        """Active devices flagged as suspected clones: (device, hostname, when flagged)."""
        return [(str(d), str(h), from_us(t)) for d, h, t in self._db.execute(_CLONES)]

    def keep_problems(self, reporter: str, problems: dict[str, Detail], at: dt.datetime) -> None:
        """Replace what collector `reporter` last found wrong with itself."""
        with self._write() as cur:
            cur.execute("DELETE FROM alert_collector_problems WHERE reporter = ?", (reporter,))
            cur.executemany(
                "INSERT INTO alert_collector_problems(reporter, problem_key, detail, observed_us)"
                " VALUES (?, ?, ?, ?)",
                [(reporter, key, json.dumps(d, sort_keys=True), to_us(at))
                 for key, d in problems.items()],
            )  # fmt: skip

    def problems(self, since: dt.datetime) -> dict[str, Detail]:
        """Every collector's problems as last found, by collectors heard from since `since`
        (a collector gone for good stops counting)."""
        rows = self._db.execute(
            "SELECT problem_key, detail FROM alert_collector_problems WHERE observed_us >= ?"
            " ORDER BY problem_key",
            (to_us(since),),
        ).fetchall()
        return {str(key): json.loads(detail) for key, detail in rows}

    # --- digests ------------------------------------------------------------------------------

    def last_composed(self) -> dt.datetime | None:
        row = self._db.execute("SELECT MAX(composed_us) FROM alert_digests").fetchone()
        return None if row is None or row[0] is None else from_us(row[0])

    def open_items(self) -> dict[str, OpenItem]:
        rows = self._db.execute(
            "SELECT item_key, kind, detail, opened_us, told_us FROM alert_open"
        ).fetchall()
        return {
            str(key): OpenItem(str(kind), json.loads(detail), from_us(opened), from_us(told))
            for key, kind, detail, opened, told in rows
        }

    def record_digest(self, c: Composition) -> bool:
        """Keep a digest and queue its items on each channel, in one transaction; False (and
        nothing written) when another digest was composed after `c.previous`: another
        collector composed this interval's."""
        at = to_us(c.composed)
        with self._write() as cur:
            row = cur.execute("SELECT MAX(composed_us) FROM alert_digests").fetchone()
            latest = None if row is None or row[0] is None else int(row[0])
            if latest != (None if c.previous is None else to_us(c.previous)):
                return False
            cur.executemany(
                "INSERT INTO alert_open(item_key, kind, detail, opened_us, told_us)"
                " VALUES (?, ?, ?, ?, ?)",
                [(key, kind, json.dumps(d, sort_keys=True), at, at)
                 for key, (kind, d) in c.opened.items()],
            )  # fmt: skip
            cur.executemany(
                "UPDATE alert_open SET told_us = ? WHERE item_key = ?",
                [(at, key) for key in c.reminded],
            )
            cur.executemany(
                "DELETE FROM alert_open WHERE item_key = ?", [(k,) for k in c.resolved + c.waived]
            )
            cur.executemany(
                "UPDATE alert_open SET detail = ? WHERE item_key = ?",
                [(json.dumps(d, sort_keys=True), key) for key, d in c.kept.items()],
            )
            cur.execute(
                "INSERT INTO alert_digests(digest_id, composed_us, new_items, reminders,"
                " resolved, open_items) VALUES (?, ?, ?, ?, ?, ?)",
                (c.digest_id, at, len(c.opened), len(c.reminded), len(c.resolved), c.open_items),
            )
            if c.items:
                for channel in c.channels:
                    self._queue(cur, channel, c, at)
        return True

    def _queue(self, cur: Cursor, channel: str, c: Composition, at: int) -> None:
        """The digest's items on `channel`: joined to the message pending there that was
        never tried, or a new message due at once. One tried already keeps its digest id and
        items (schema 22): its receiver may have taken it (and answered 500, or timed out),
        and tells the retry by its digest_id; joined, those items came again under a new id."""
        row = cur.execute(
            "SELECT delivery_id, items FROM alert_outbox WHERE channel = ? AND state = ?"
            " AND attempts = 0",
            (channel, PENDING),
        ).fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO alert_outbox(delivery_id, channel, digest_id, items, open_items,"
                " composed_us, created_us, state, attempts, next_us, attempted_us, done_us,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, NULL, '')",
                (uuid.uuid4().hex, channel, c.digest_id, _items_json(c.items, 0), c.open_items,
                 at, at, PENDING, at),
            )  # fmt: skip
            return
        earlier = json.loads(row[1])
        cur.execute(
            "UPDATE alert_outbox SET digest_id = ?, items = ?, open_items = ?, composed_us = ?"
            " WHERE delivery_id = ?",
            (c.digest_id, _items_json(earlier["items"] + c.items, int(earlier["more"])),
             c.open_items, at, row[0]),
        )  # fmt: skip

    # --- the outbox ---------------------------------------------------------------------------

    def due(self, now: dt.datetime) -> list[Delivery]:
        """Messages whose next attempt is due, oldest first (a retried one before the one
        composed after it)."""
        rows = self._db.execute(
            "SELECT delivery_id, channel, digest_id, items, open_items, composed_us, created_us,"
            " attempts FROM alert_outbox WHERE state = ? AND next_us <= ? ORDER BY created_us",
            (PENDING, to_us(now)),
        ).fetchall()
        out = []
        for delivery_id, channel, digest_id, items, open_items, composed, created, tries in rows:
            kept = json.loads(items)
            out.append(Delivery(str(delivery_id), str(channel), str(digest_id), kept["items"],
                                int(kept["more"]), int(open_items), from_us(composed),
                                from_us(created), int(tries)))  # fmt: skip
        return out

    def attempted_since(self, channel: str, since: dt.datetime) -> int:
        """Messages last tried on `channel` after `since` (a channel's rate limit)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM alert_outbox WHERE channel = ? AND attempted_us > ?",
            (channel, to_us(since)),
        ).fetchone()
        return int(row[0])

    def claim(self, d: Delivery, at: dt.datetime, hold: dt.timedelta) -> bool:
        """Take message `d` to send it now: counted as tried (a digest composed meanwhile
        waits apart instead of joining items that may already be on their way) and not due
        again for `hold`, so that another collector holding the alerts lease after this one's
        lapsed (its sending held up by a slow receiver) does not send it too. False when
        another collector claimed or finished it since `d` was read. A collector that dies
        holding a claim leaves the message due again once `hold` has passed."""
        with self._write() as cur:
            cur.execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, attempted_us = ?, next_us = ?"
                " WHERE delivery_id = ? AND state = ? AND attempts = ? AND next_us <= ?",
                (to_us(at), to_us(at + hold), d.delivery_id, PENDING, d.attempts, to_us(at)),
            )  # fmt: skip
            return cur.rowcount == 1

    def record_attempt(
        self, delivery_id: str, at: dt.datetime, state: str, outcome: str,
        next_at: dt.datetime | None = None, *, claimed: bool = False,
    ) -> None:  # fmt: skip
        """An attempt's outcome: SENT, FAILED for good, or PENDING again at `next_at`;
        `claimed`: the attempt was counted when `claim` took the message."""
        done = None if state == PENDING else to_us(at)
        counted = "attempts" if claimed else "attempts + 1"
        with self._write() as cur:
            cur.execute(
                f"UPDATE alert_outbox SET state = ?, attempts = {counted}, attempted_us = ?,"  # noqa: S608
                " next_us = ?, done_us = ?, outcome = ? WHERE delivery_id = ? AND state = ?",
                (state, to_us(at), to_us(next_at or at), done, outcome, delivery_id, PENDING),
            )

    def deliveries(self) -> list[tuple[str, str, int, str]]:
        """Every message (channel, state, attempts, outcome), oldest first: for tests and
        diagnosis."""
        rows = self._db.execute(
            "SELECT channel, state, attempts, outcome FROM alert_outbox"
            " ORDER BY created_us, delivery_id"
        ).fetchall()
        return [(str(c), str(s), int(a), str(o)) for c, s, a, o in rows]

    def prune(self, now: dt.datetime) -> None:
        """Forget digests and finished messages older than KEPT."""
        before = to_us(now - KEPT)
        with self._write() as cur:
            cur.execute("DELETE FROM alert_digests WHERE composed_us < ?", (before,))
            cur.execute(
                "DELETE FROM alert_outbox WHERE state <> ? AND done_us < ?", (PENDING, before)
            )


def _items_json(items: list[Detail], more: int) -> str:
    """A message's items, at most MAX_ITEMS of them (the first told; the rest counted)."""
    left_out = max(0, len(items) - MAX_ITEMS)
    return json.dumps({"items": items[:MAX_ITEMS], "more": more + left_out}, sort_keys=True)
