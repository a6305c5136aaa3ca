"""The fleet's standing at past moments, kept once counted (schema 19: `fleet_marks`).

`report fleet --as-of 2026-11-01` asks how the fleet stood at a local midnight (a date is
that day's start in the company's time zone). Counting a past moment from the history takes
0.4-1.3 s over 100,000 devices (bench/fleet_report.py), and more as the history grows;
`serve` counts each past midnight once (`collector/fleet_history.mark_days`, hourly, under
the fleet-day lease) and the report reads the count back in milliseconds. Any other moment
is still counted from the history.

A mark must stay what counting again would give. The count depends on: the state history up
to the moment (dated by when the facts were collected, so a report delivered late can add a
change dated before a mark), the reports received by then (which devices were STALE; dated
by the receiving collector's clock, which may run behind, so a report that changes no
verdict may still be received before a mark counted earlier), the waivers in force then
(granted and revoked when they are made, never back-dated), and the policy's judging
parameters (`judging_key`: a mark counted under another policy, or under the rule
before revoked and retired devices left the counts, is not read), and which devices had left
the fleet by then (revoked or retired: dated by the clock of the collector that stores it,
which may run behind the one that counted a mark, so a leaving stored after a mark may be
dated before it; an operator may edit the date too), and which had joined it (enrolled: dated
the same way, and written by a migration or an operator too). So:

- a change dated at or before a mark voids it: a trigger on `state_changes` deletes the
  marks at or after each inserted change, whoever writes it;
- so does a device's leaving (schema 25): a trigger on `devices` deletes the fleet's marks
  and the device's group's from the moment it left (the earlier moment, when an edit moves
  it), whoever writes the status;
- and its arrival (schema 26): triggers on `devices` delete them from its enrollment when a
  row is inserted (or deleted, which only an operator's shell without foreign keys can do),
  and from the earlier date when an edit moves `enrolled_us`;
- and a report received before them (schema 27): a trigger on `reports` deletes every mark
  from its receipt on (a report received now: none, as every mark is an hour old at least);
- a count that was under way while such a change was stored is not kept: `keep` reads the
  evidence chain's state entries appended since the count began (the chain is one sequence
  in commit order, appended under the store's write lock, in the same transaction as the
  change itself) and refuses when one is dated at or before the moment; and when a device
  was revoked or retired meanwhile (stored by a collector whose clock runs behind, it may be
  dated at or before the moment; the next hourly run counts the moment again), or enrolled
  meanwhile dated at or before the moment; and when a report received at or before the
  moment was stored meanwhile (numbered after the highest report number when the count
  began: a report is chained only by its group's seal, up to half a minute later).

A device group's marks (schema 21: `group_marks`, `report fleet --group G --as-of DATE`)
are kept the same way, of the group's devices as grouped now: a device moved in or out of a
group voids that group's marks (a trigger on `devices`), and a count of a group is not kept
when any device event was chained while it was under way (a regrouping, an enrollment).

Marks are a summary, not evidence: the audit export never reads them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from devposture.collector.compliance import STATES
from devposture.collector.evidence import chain
from devposture.collector.store.base import to_us
from devposture.collector.store.engine import AnyDatabase, Cursor
from devposture.policy import Policy


@dataclass(frozen=True)
class Measured:
    """A past moment's counts and where the evidence chain and the reports' numbers stood
    when counting began."""

    at_us: int
    judged_by: str
    counts: dict[str, dict[str, int]]
    chain_seq: int
    reports_through: int  # the highest report number then (`report_number`)
    group: str | None = None  # a device group's counts (None: the whole fleet's)


def judging_key(policy: Policy) -> str:
    """What a past moment's counts depend on in the policy: the window after which a silent
    device is STALE, and each check with its grace period (SHA-256, hex)."""
    parameters: dict[str, object] = {
        # Revoked and retired devices leave the counts from that moment (`standing_rule
        # .in_fleet`): a mark counted before that rule held them is not read.
        "fleet": "without revoked or retired",
        "stale_after_hours": policy.stale_after_hours,
        "checks": [[c.check_id, c.grace_hours] for c in policy.checks],
    }
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


def _where(group: str | None) -> tuple[str, str, tuple[str, ...]]:
    """The table of a group's marks or the fleet's, its condition and its parameters."""
    if group is None:
        return "fleet_marks", "", ()
    return "group_marks", " AND device_group = ?", (group,)


def marked(
    db: AnyDatabase, policy: Policy, at: dt.datetime, group: str | None = None
) -> dict[str, dict[str, int]] | None:
    """The counts kept for `at` under this policy's judging (of `group`'s devices), or None
    (not counted yet, or voided since)."""
    table, of_group, grouped = _where(group)
    rows = db.execute(
        f"SELECT check_id, state, devices FROM {table}"  # noqa: S608 (a table named above)
        f" WHERE at_us = ? AND judged_by = ?{of_group}",
        (to_us(at), judging_key(policy), *grouped),
    ).fetchall()
    if not rows:
        return None
    counts = {c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks}
    for check_id, state, devices in rows:
        if check_id in counts and state in counts[check_id]:
            counts[check_id][state] = int(devices)
    return counts


def chain_seq(db: AnyDatabase) -> int:
    """The newest entry of the evidence chain (0 before the first)."""
    row = db.execute("SELECT MAX(seq) FROM evidence_chain").fetchone()
    return int(row[0] or 0)


def report_number(db: AnyDatabase) -> int:
    """The highest number a stored report has (0 before the first numbered one): numbers
    are taken under the write lock, in commit order (`sealing.next_number`)."""
    row = db.execute("SELECT MAX(n) FROM reports").fetchone()
    return int(row[0] or 0)


def keep(cur: Cursor, measured: Measured) -> bool:
    """Keep `measured` (in the caller's write transaction) unless a state change dated at or
    before its moment, a revocation or retirement, an enrollment dated at or before it (for
    a group's, any device event: a regrouping too), or a report received at or before it,
    was stored since its count began; whether it was kept."""
    kinds = (chain.STATE, chain.DEVICE)
    rows = cur.execute(
        "SELECT kind, record_key FROM evidence_chain"  # noqa: S608 (placeholders only)
        f" WHERE seq > ? AND kind IN ({', '.join('?' * len(kinds))})",
        (measured.chain_seq, *kinds),
    ).fetchall()
    events: list[int] = []
    for kind, key in rows:
        if kind == chain.DEVICE and measured.group is not None:
            return False
        if kind == chain.DEVICE:  # a device event's key is device/event
            events.append(int(str(key).rsplit("/", 1)[1]))
            continue
        # A state entry's key is device/check/since (chain.state_key).
        if int(str(key).rsplit("/", 1)[1]) <= measured.at_us:
            return False
    # A new device's event is dated as its row (`enrolled_us`); one enrolled again was
    # counted already and its row keeps its date.
    if events and cur.execute(
        "SELECT COUNT(*) FROM device_events"  # noqa: S608 (placeholders only)
        " WHERE (action IN (?, ?) OR (action = ? AND at_us <= ?))"
        f" AND event_id IN ({', '.join('?' * len(events))})",
        ("revoked", "retired", "enrolled", measured.at_us, *events),
    ).fetchone()[0]:
        return False
    if _received_meanwhile(cur, measured):
        return False
    table, of_group, grouped = _where(measured.group)
    cur.execute(
        f"DELETE FROM {table} WHERE at_us = ? AND judged_by = ?{of_group}",  # noqa: S608
        (measured.at_us, measured.judged_by, *grouped),
    )
    of = "" if measured.group is None else "device_group, "
    cur.executemany(
        f"INSERT INTO {table}(at_us, judged_by, {of}check_id, state, devices)"  # noqa: S608
        f" VALUES ({', '.join('?' * (5 + len(grouped)))})",
        [
            (measured.at_us, measured.judged_by, *grouped, check_id, state, devices)
            for check_id, per_state in measured.counts.items()
            for state, devices in per_state.items()
        ],
    )
    return True


def _received_meanwhile(cur: Cursor, measured: Measured) -> bool:
    """Whether a report received at or before the moment was stored since the count began:
    numbered after the highest number then (a report is chained only by its group's seal,
    up to half a minute later, so the chain cannot tell). A range of `reports_by_number`:
    the reports of the count's second or so."""
    row = cur.execute(
        "SELECT 1 FROM reports WHERE n > ? AND received_us <= ? LIMIT 1",
        (measured.reports_through, measured.at_us),
    ).fetchone()
    return row is not None


def unmarked(
    db: AnyDatabase, policy: Policy, moments: list[dt.datetime], group: str | None = None
) -> list[dt.datetime]:
    """Those of `moments` with no counts kept under this policy's judging (of `group`)."""
    if not moments:
        return []
    table, of_group, grouped = _where(group)
    rows = db.execute(
        f"SELECT DISTINCT at_us FROM {table}"  # noqa: S608 (a table named above)
        f" WHERE judged_by = ? AND at_us >= ?{of_group}",
        (judging_key(policy), min(to_us(m) for m in moments), *grouped),
    ).fetchall()
    kept = {int(r[0]) for r in rows}
    return [m for m in moments if to_us(m) not in kept]
