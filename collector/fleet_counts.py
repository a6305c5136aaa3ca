"""The fleet's standing right now, counted in SQL: per check and state, per device status,
and what the agents' outboxes lost.

`report fleet` (without --as-of), the dashboard's overview and the metrics endpoint ask this.
It counts the same way as `compliance.standings` (STALE, then EXEMPT, then the latest verdict
with GRACE for a failure younger than its grace period, UNKNOWN when never judged; tested
equal), but from the current verdicts (`check_results`) instead of the whole history, so it
stays fast with 100,000 devices (bench/fleet_report.py). A past moment still goes through
`compliance.standings`, which is exact for any moment.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field

from collector.compliance import STATES
from collector.policy import Policy
from collector.records import from_us, to_us

DEVICE_STATUSES = ("active", "revoked", "retired")


@dataclass
class FleetFigures:
    """How the fleet stands, as read from the database at one moment."""

    by_check: dict[str, dict[str, int]] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    pending: int = 0


# Per check and latest verdict, every device's: one pass over the index
# check_results_by_standing (check_id, state, since_us), no table row read.
_ALL = "SELECT check_id, state, COUNT(*) FROM check_results GROUP BY check_id, state"

# Failures still within their check's grace period (since_us is when the failure began).
_IN_GRACE = (
    "SELECT COUNT(*) FROM check_results WHERE check_id = ? AND state = 'FAIL' AND since_us > ?"
)

# The same, for the devices silent past the window only (few): they count as STALE instead.
# CROSS JOIN keeps SQLite from starting at check_results (a lookup per verdict of the fleet).
# `{grace_start}` is a CASE over the policy's checks giving the start of each grace window.
_OF_SILENT = """
SELECT c.check_id, c.state, COUNT(*),
       SUM(c.state = 'FAIL' AND c.since_us > {grace_start})
FROM devices d CROSS JOIN check_results c ON c.device_id = d.device_id
WHERE COALESCE(d.last_report_us, d.enrolled_us) < ?
GROUP BY c.check_id, c.state
"""

_ONE_RESULT = """
SELECT c.state, c.since_us FROM check_results c WHERE c.device_id = ? AND c.check_id = ?
"""

_DEVICES = """
SELECT COUNT(*), COALESCE(SUM(COALESCE(last_report_us, enrolled_us) < ?), 0),
       COALESCE(SUM(outbox_dropped_total), 0), COALESCE(SUM(outbox_coalesced_total), 0),
       COALESCE(SUM(outbox_corrupt_total), 0), COALESCE(SUM(outbox_pending), 0)
FROM devices
"""

# Waivers in force at a moment, on devices heard from within the window (few rows).
_WAIVED = """
SELECT DISTINCT w.device_id, w.check_id FROM waivers w JOIN devices d ON d.device_id = w.device_id
WHERE w.created_us <= ? AND ? < w.expires_us AND (w.revoked_us IS NULL OR w.revoked_us > ?)
  AND COALESCE(d.last_report_us, d.enrolled_us) >= ?
"""


def fleet_figures(db: sqlite3.Connection, policy: Policy, at: dt.datetime) -> FleetFigures:
    """Devices per check and compliance state, as `report fleet` counts them (STALE, then
    EXEMPT, then the latest verdict with GRACE for a fresh failure, UNKNOWN when never
    judged), plus devices per status and the agents' outbox figures summed."""
    now = to_us(at)
    fresh_since = now - policy.stale_after_hours * 3_600_000_000
    total, stale, dropped, coalesced, corrupt, pending = db.execute(
        _DEVICES, (fresh_since,)
    ).fetchone()
    figures = FleetFigures(
        outbox={"dropped": dropped, "coalesced": coalesced, "corrupt": corrupt}, pending=pending
    )
    figures.by_status = dict.fromkeys(DEVICE_STATUSES, 0)
    for status, count in db.execute("SELECT status, COUNT(*) FROM devices GROUP BY status"):
        if status in figures.by_status:
            figures.by_status[status] = count
    fresh = total - stale
    grace_of = {c.check_id: c.grace_hours * 3_600_000_000 for c in policy.checks}
    counts = {c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks}

    def state_of(check_id: str, state: str, since: int | None) -> str:
        if state == "FAIL" and since is not None and since > now - grace_of[check_id]:
            return "GRACE"
        return state if state in ("PASS", "FAIL") else "UNKNOWN"

    if counts:
        # Every device's verdicts, minus the silent devices' (those read STALE).
        verdicts: dict[tuple[str, str], list[int]] = {}
        for check_id, state, count in db.execute(_ALL):
            verdicts[(check_id, state)] = [count, 0]
        for check_id, grace in grace_of.items():
            if (check_id, "FAIL") in verdicts:
                row = db.execute(_IN_GRACE, (check_id, now - grace)).fetchone()
                verdicts[(check_id, "FAIL")][1] = row[0]
        # Only placeholders go into the text; the values are bound.
        grace_start = "CASE c.check_id" + " WHEN ? THEN ?" * len(counts) + " ELSE 0 END"
        values: list[object] = []
        for check_id, grace in grace_of.items():
            values += [check_id, now - grace]
        silent = db.execute(_OF_SILENT.format(grace_start=grace_start), (*values, fresh_since))
        for check_id, state, count, in_grace in silent:
            if (check_id, state) in verdicts:
                verdicts[(check_id, state)][0] -= count
                verdicts[(check_id, state)][1] -= in_grace or 0
        for (check_id, state), (count, in_grace) in verdicts.items():
            if check_id not in counts:  # a check the policy no longer has
                continue
            if state == "FAIL":
                counts[check_id]["GRACE"] += in_grace
                counts[check_id]["FAIL"] += count - in_grace
            else:
                counts[check_id][state_of(check_id, state, None)] += count
    for device_id, check_id in db.execute(_WAIVED, (now, now, now, fresh_since)).fetchall():
        if check_id not in counts:
            continue
        row = db.execute(_ONE_RESULT, (device_id, check_id)).fetchone()
        if row is not None:  # a waived device is EXEMPT whatever its verdict
            counts[check_id][state_of(check_id, row[0], row[1])] -= 1
            counts[check_id]["EXEMPT"] += 1
        else:  # never judged: counted as UNKNOWN below, minus the waived
            counts[check_id]["EXEMPT"] += 1
            counts[check_id]["UNKNOWN"] -= 1
    for per_state in counts.values():
        counted = sum(per_state[s] for s in ("PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT"))
        per_state["UNKNOWN"] += fresh - counted
        per_state["STALE"] = stale
    figures.by_check = counts
    return figures


# Failures past their check's grace period, of one check, on devices heard from within the
# window: an index range over check_results_by_standing, then a device lookup per failure.
_FAILING = """
SELECT c.device_id, d.hostname, c.since_us, c.reason
FROM check_results c JOIN devices d ON d.device_id = c.device_id
WHERE c.check_id = ? AND c.state = 'FAIL' AND c.since_us <= ?
  AND COALESCE(d.last_report_us, d.enrolled_us) >= ?
"""


@dataclass(frozen=True)
class Failure:
    device_id: str
    hostname: str
    check_id: str
    since: dt.datetime
    reason: str


def failing_now(db: sqlite3.Connection, policy: Policy, at: dt.datetime) -> list[Failure]:
    """Devices failing a check now, past its grace, not silent and not waived; the longest
    failing first. The same set as `compliance.standings` gives (tested equal); the reason
    is the latest report's."""
    now = to_us(at)
    fresh_since = now - policy.stale_after_hours * 3_600_000_000
    waived = set(db.execute(_WAIVED, (now, now, now, fresh_since)).fetchall())
    failures = []
    for check in policy.checks:
        cutoff = now - check.grace_hours * 3_600_000_000
        for device_id, hostname, since, reason in db.execute(
            _FAILING, (check.check_id, cutoff, fresh_since)
        ):
            if (device_id, check.check_id) not in waived and since is not None:
                failures.append(
                    Failure(device_id, hostname, check.check_id, from_us(since), reason)
                )
    failures.sort(key=lambda f: (f.since, f.device_id, f.check_id))
    return failures
