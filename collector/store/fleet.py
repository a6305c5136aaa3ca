"""The fleet's standing at a moment, counted in SQL: per check and state, per device status,
what the agents' outboxes lost, and the failures past their grace.

It counts the same way as `compliance.standings` (STALE, then EXEMPT, then the latest state
with GRACE for a failure younger than its grace period, UNKNOWN when never judged; tested
equal), but from the current verdicts (`check_results`) instead of the whole history, so it
stays fast with 100,000 devices (bench/fleet_report.py). Now (`fleet_figures`: `report
fleet`, the dashboard's overview, the metrics endpoint) is counted from one index without
reading a device; a past moment or one group (`fleet_figures_as_of`) device by device,
looking up the history only where a verdict changed after the moment.
`compliance.standings` stays the reference (`reports`' `exact`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from devposture.collector.compliance import STATES
from devposture.collector.store.base import Part, from_us, to_us
from devposture.collector.store.engine import AnyDatabase
from devposture.policy import Policy

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
# SQLite's CROSS JOIN keeps it from starting at check_results (a lookup per verdict of the
# fleet). `{grace_start}` is a CASE over the policy's checks giving the start of each grace
# window.
_OF_SILENT = """
SELECT c.check_id, c.state, COUNT(*),
       COUNT(*) FILTER (WHERE c.state = 'FAIL' AND c.since_us > {grace_start})
FROM devices d {join} check_results c ON c.device_id = d.device_id
WHERE COALESCE(d.last_report_us, d.enrolled_us) < ?
GROUP BY c.check_id, c.state
"""

# A waived device's freshness and its verdict on the waived check (if judged).
_ONE_WAIVED = """
SELECT COALESCE(d.last_report_us, d.enrolled_us) >= ?, c.state, c.since_us
FROM devices d LEFT JOIN check_results c ON c.device_id = d.device_id AND c.check_id = ?
WHERE d.device_id = ?
"""

# (PostgreSQL sums BIGINTs as NUMERIC: cast back.)
_DEVICES = """
SELECT COUNT(*), COUNT(*) FILTER (WHERE COALESCE(last_report_us, enrolled_us) < ?),
       CAST(COALESCE(SUM(outbox_dropped_total), 0) AS BIGINT),
       CAST(COALESCE(SUM(outbox_coalesced_total), 0) AS BIGINT),
       CAST(COALESCE(SUM(outbox_corrupt_total), 0) AS BIGINT),
       CAST(COALESCE(SUM(outbox_pending), 0) AS BIGINT)
FROM devices
"""

# Waivers in force at a moment (few rows).
_WAIVED = """
SELECT DISTINCT device_id, check_id FROM waivers
WHERE created_us <= ? AND ? < expires_us AND (revoked_us IS NULL OR revoked_us > ?)
"""


def waived_at(db: AnyDatabase, at: dt.datetime) -> set[tuple[str, str]]:
    """(device, check) of every waiver in force at `at`."""
    t = to_us(at)
    return set(db.execute(_WAIVED, (t, t, t)).fetchall())


def _per_check(column: str, values: dict[str, int], params: dict[str, object]) -> str:
    """A CASE over `column` (a check id) giving each check's value, its values bound in
    `params`: only placeholders go into the SQL text."""
    case = f"CASE {column}"
    for k, (check_id, value) in enumerate(values.items()):
        case += f" WHEN :check{k} THEN :value{k}"
        params |= {f"check{k}": check_id, f"value{k}": value}
    return case + " ELSE 0 END"


def _add_verdicts(
    counts: dict[str, dict[str, int]], check_id: str, state: str, count: int, in_grace: int
) -> None:
    """Count `count` verdicts of `check_id` in `state`, `in_grace` of the failures still
    within their grace period (GRACE); a check the policy no longer has is left out."""
    if check_id not in counts:
        return
    if state == "FAIL":
        counts[check_id]["GRACE"] += in_grace
        counts[check_id]["FAIL"] += count - in_grace
    else:
        counts[check_id]["PASS" if state == "PASS" else "UNKNOWN"] += count


def fleet_figures(db: AnyDatabase, policy: Policy, at: dt.datetime) -> FleetFigures:
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
        silent = db.execute(
            _OF_SILENT.format(grace_start=grace_start, join=db.dialect.ordered_join),
            (*values, fresh_since),
        )
        for check_id, state, count, in_grace in silent:
            if (check_id, state) in verdicts:
                verdicts[(check_id, state)][0] -= count
                verdicts[(check_id, state)][1] -= in_grace or 0
        for (check_id, state), (count, in_grace) in verdicts.items():
            _add_verdicts(counts, check_id, state, count, in_grace)
    for device_id, check_id in waived_at(db, at):
        if check_id not in counts:
            continue
        row = db.execute(_ONE_WAIVED, (fresh_since, check_id, device_id)).fetchone()
        if row is None or not row[0]:  # a silent device reads STALE, waived or not
            continue
        if row[1] is not None:  # a waived device is EXEMPT whatever its verdict
            counts[check_id][state_of(check_id, row[1], row[2])] -= 1
        else:  # never judged: counted as UNKNOWN below, minus the waived
            counts[check_id]["UNKNOWN"] -= 1
        counts[check_id]["EXEMPT"] += 1
    for per_state in counts.values():
        counted = sum(per_state[s] for s in ("PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT"))
        per_state["UNKNOWN"] += fresh - counted
        per_state["STALE"] = stale
    figures.by_check = counts
    return figures


# Failures past their check's grace period, on devices heard from within the window and not
# waived, the longest-failing first: a walk of the partial index check_results_failing (every
# FAIL verdict by since_us, schema 8), a device lookup per failure, stopping at the page's end
# (`{cutoff}` is a CASE giving each check's grace cutoff).
_FAILING = """
SELECT {columns}
FROM check_results c{indexed} JOIN devices d ON d.device_id = c.device_id
WHERE c.state = 'FAIL' AND c.check_id IN ({checks})
  AND c.since_us <= {cutoff} AND COALESCE(d.last_report_us, d.enrolled_us) >= :fresh
  AND c.device_id || ' ' || c.check_id NOT IN ({waived})
  {in_group}
"""
_FAILING_ORDER = " ORDER BY c.since_us, c.device_id, c.check_id LIMIT :limit OFFSET :offset"


@dataclass(frozen=True)
class Failure:
    device_id: str
    hostname: str
    check_id: str
    since: dt.datetime
    reason: str


def _failing_query(
    db: AnyDatabase, policy: Policy, at: dt.datetime, columns: str, group: str | None
) -> tuple[str, dict[str, object]]:
    now = to_us(at)
    fresh_since = now - policy.stale_after_hours * 3_600_000_000
    waived = [f"{d} {c}" for d, c in waived_at(db, at)]
    params: dict[str, object] = {
        "checks": json.dumps([c.check_id for c in policy.checks]), "fresh": fresh_since,
        "waived": json.dumps(waived),
    }  # fmt: skip
    cutoffs = {c.check_id: now - c.grace_hours * 3_600_000_000 for c in policy.checks}
    cutoff = _per_check("c.check_id", cutoffs, params)
    in_group = ""
    if group is not None:
        in_group, params["group"] = "AND d.device_group = :group", group
    dialect = db.dialect
    query = _FAILING.format(
        columns=columns, cutoff=cutoff, in_group=in_group,
        indexed=dialect.indexed_by("check_results_failing"),
        checks=dialect.json_values(":checks"), waived=dialect.json_values(":waived"),
    )  # fmt: skip
    return query, params


def failing_now(
    db: AnyDatabase, policy: Policy, at: dt.datetime, *, offset: int = 0,
    limit: int | None = None, group: str | None = None,
) -> list[Failure]:  # fmt: skip
    """Devices failing a check now, past its grace, not silent and not waived; the longest
    failing first (then by device and check), `limit` of them from `offset` (all without a
    limit). The same set as `compliance.standings` gives (tested equal); the reason is the
    latest report's. `group`: only that group's devices."""
    query, params = _failing_query(
        db, policy, at, "c.since_us, c.device_id, c.check_id, d.hostname, c.reason", group
    )
    params |= {"limit": db.dialect.no_limit if limit is None else limit, "offset": offset}
    return [
        Failure(device_id, hostname, check_id, from_us(since), reason)
        for since, device_id, check_id, hostname, reason in db.execute(
            query + _FAILING_ORDER, params
        )
    ]


def failing_count(db: AnyDatabase, policy: Policy, at: dt.datetime) -> int:
    """How many failures `failing_now` lists in all: the FAIL counts of `fleet_figures`
    (failing past grace, heard from, not waived), read from the index without a join."""
    return sum(per_state["FAIL"] for per_state in fleet_figures(db, policy, at).by_check.values())


# --- the fleet at a moment, now or past -------------------------------------------------------

# Devices enrolled by the moment and heard from within the window before it (their last
# report by then, or their enrollment). A device whose last report (`last_report_us`) is
# not after the moment needs nothing more; only one that reported since is looked up in its
# reports (an index seek, reports_by_device).
_FRESH_AS_OF = """
SELECT d.device_id FROM devices d
WHERE d.enrolled_us <= :t {in_group} AND COALESCE(
    CASE WHEN d.last_report_us <= :t THEN d.last_report_us
         ELSE (SELECT MAX(r.received_us) FROM reports r
               WHERE r.device_id = d.device_id AND r.received_us <= :t) END,
    d.enrolled_us) >= :fresh
"""

# Each fresh device's latest state per check as of the moment, in two parts. A current
# verdict whose state has held since before the moment (check_results.since_us, schema 5)
# was the state then too: counted from the verdicts alone. Only a verdict that changed after
# the moment is looked up in the history: the latest change by then, a primary-key seek.
# The history itself is never scanned, so a moment a week back costs about what now costs.
_LATEST_AS_OF = """
WITH fresh AS MATERIALIZED ({fresh})
SELECT c.check_id, c.state, COUNT(*),
       COUNT(*) FILTER (WHERE c.state = 'FAIL' AND c.since_us > {grace_start})
FROM check_results c
WHERE c.since_us <= :t AND c.device_id IN (SELECT device_id FROM fresh)
GROUP BY c.check_id, c.state
UNION ALL
SELECT c.check_id, s.state, COUNT(*),
       COUNT(*) FILTER (WHERE s.state = 'FAIL' AND s.since_us > {grace_start})
FROM check_results c {join} state_changes s
  ON s.device_id = c.device_id AND s.check_id = c.check_id AND s.since_us = (
     SELECT MAX(x.since_us) FROM state_changes x
     WHERE x.device_id = c.device_id AND x.check_id = c.check_id AND x.since_us <= :t)
WHERE (c.since_us > :t OR c.since_us IS NULL) AND c.device_id IN (SELECT device_id FROM fresh)
GROUP BY c.check_id, s.state
"""

_ONE_AS_OF = """
SELECT state, since_us FROM state_changes
WHERE device_id = ? AND check_id = ? AND since_us <= ? ORDER BY since_us DESC LIMIT 1
"""


def fleet_figures_as_of(
    db: AnyDatabase, policy: Policy, at: dt.datetime, group: str | None = None
) -> dict[str, dict[str, int]]:
    """Devices per check and compliance state as of `at` (any moment, past or now), counted
    in SQL from the state history the way `compliance.standings` judges (tested equal): the
    devices enrolled by then, STALE when silent past the window, EXEMPT under a waiver in
    force then, else the latest state by then, GRACE for a failure younger than its grace,
    UNKNOWN when never judged. From the current verdicts, and the history only where a
    verdict changed since `at`, instead of a judgment per device in Python
    (bench/fleet_report.py). `group`: only that group's devices (as grouped now)."""
    t = to_us(at)
    fresh_since = t - policy.stale_after_hours * 3_600_000_000
    grace_of = {c.check_id: c.grace_hours * 3_600_000_000 for c in policy.checks}
    counts = {c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks}
    params: dict[str, object] = {"t": t, "fresh": fresh_since, "group": group}
    in_group = "" if group is None else "AND d.device_group = :group"
    enrolled = db.execute(
        f"SELECT COUNT(*) FROM devices d WHERE d.enrolled_us <= :t {in_group}",  # noqa: S608
        params,
    ).fetchone()
    fresh_query = _FRESH_AS_OF.format(in_group=in_group)
    fresh = [row[0] for row in db.execute(fresh_query, params)]
    grace_start = _per_check("c.check_id", {c: t - g for c, g in grace_of.items()}, params)
    query = _LATEST_AS_OF.format(
        fresh=fresh_query, grace_start=grace_start, join=db.dialect.ordered_join
    )
    for check_id, state, count, in_grace in db.execute(query, params):
        _add_verdicts(counts, check_id, state, count, in_grace)
    fresh_set = set(fresh)
    for device_id, check_id in waived_at(db, at):
        if check_id not in counts or device_id not in fresh_set:
            continue
        row = db.execute(_ONE_AS_OF, (device_id, check_id, t)).fetchone()
        state, since = (None, None) if row is None else row
        if state is None:
            counts[check_id]["UNKNOWN"] -= 1  # counted as never judged below
        elif state == "FAIL" and since is not None and since > t - grace_of[check_id]:
            counts[check_id]["GRACE"] -= 1
        else:
            counts[check_id][state if state in ("PASS", "FAIL") else "UNKNOWN"] -= 1
        counts[check_id]["EXEMPT"] += 1
    for per_state in counts.values():
        counted = sum(per_state[s] for s in ("PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT"))
        per_state["UNKNOWN"] += len(fresh) - counted
        per_state["STALE"] = int(enrolled[0]) - len(fresh)
    return counts


class Fleet(Part):
    """The fleet's standing, now and as of any moment, and its daily records
    (`Store.fleet`)."""

    def fleet_figures(self, policy: Policy, at: dt.datetime) -> FleetFigures:
        """The fleet's standing now, counted in SQL (this module)."""
        return fleet_figures(self._db, policy, at)

    def fleet_figures_as_of(
        self, policy: Policy, at: dt.datetime, group: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Devices per check and state at any moment (of one group), counted in SQL."""
        return fleet_figures_as_of(self._db, policy, at, group)

    def record_fleet_day(self, policy: Policy, at: dt.datetime) -> None:
        """Keep the fleet's standing now as its day's (UTC): the last record of a day is how
        the day ended. Not evidence (it is overwritten through the day): a summary."""
        figures = self.fleet_figures(policy, at)
        self.keep_fleet_days({at.astimezone(dt.UTC).date().isoformat(): figures.by_check}, at)

    def keep_fleet_days(
        self, days: dict[str, dict[str, dict[str, int]]], recorded_at: dt.datetime
    ) -> None:
        """Replace the records of `days` (day -> check -> state -> devices), in one
        transaction."""
        with self._write() as cur:
            for day, by_check in days.items():
                cur.execute("DELETE FROM fleet_days WHERE day = ?", (day,))
                cur.executemany(
                    "INSERT INTO fleet_days(day, check_id, state, devices, recorded_us)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (day, check_id, state, count, to_us(recorded_at))
                        for check_id, per_state in by_check.items()
                        for state, count in per_state.items()
                    ],
                )

    def fleet_days(self) -> dict[str, dict[str, dict[str, int]]]:
        """day (YYYY-MM-DD, UTC) -> check -> state -> devices, for every day recorded."""
        days: dict[str, dict[str, dict[str, int]]] = {}
        for day, check_id, state, count in self._db.execute(
            "SELECT day, check_id, state, devices FROM fleet_days"
        ):
            days.setdefault(day, {}).setdefault(check_id, {})[state] = count
        return days

    def failing_now(
        self, policy: Policy, at: dt.datetime, *, offset: int = 0, limit: int | None = None,
        group: str | None = None,
    ) -> list[Failure]:  # fmt: skip
        """Devices failing a check past its grace now, longest first, read in SQL; `limit`
        of them from `offset`, or all; of one group, or all."""
        return failing_now(self._db, policy, at, offset=offset, limit=limit, group=group)

    def failing_count(self, policy: Policy, at: dt.datetime) -> int:
        return failing_count(self._db, policy, at)
