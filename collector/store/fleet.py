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

Every count holds the devices in the fleet at its moment only (`standing_rule.sql_in_fleet`):
one IT revoked or retired by then is in none, neither as STALE nor as UNKNOWN.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from devposture.collector.compliance import STATES
from devposture.collector.standing_rule import sql_in_fleet, sql_left_fleet
from devposture.collector.store import fleet_marks
from devposture.collector.store.base import Part, from_us, to_us
from devposture.collector.store.engine import AnyDatabase
from devposture.policy import Policy
from devposture.policy.time_zone import company_zone

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

# The same, for the devices silent past the window only (few): they count as STALE instead;
# and for those IT revoked or retired (few): they count in nothing.
# Their verdicts are read from schema 32's index (`{lookup}`, `_VERDICTS_OF_DEVICES`).
# `{grace_start}` is a CASE over the policy's checks giving the start of each grace window.
_OF_SILENT = """
SELECT c.check_id, c.state, COUNT(*),
       COUNT(*) FILTER (WHERE c.state = 'FAIL' AND c.since_us > {grace_start})
FROM {lookup}
WHERE d.last_report_us < :silent OR (d.last_report_us IS NULL AND d.enrolled_us < :silent)
   OR {left}
GROUP BY c.check_id, c.state
"""

# The checks that have verdicts: one index probe per check (check_results_by_standing
# leads with the check), not a pass over the verdicts. While they are all the policy's,
# each device's count of passing verdicts (schema 18: `devices.passing`) is its count of
# the policy's checks it passes.
_JUDGED_CHECKS = """
WITH RECURSIVE judged(check_id) AS (
  SELECT MIN(check_id) FROM check_results
  UNION ALL
  SELECT (SELECT MIN(c.check_id) FROM check_results c WHERE c.check_id > j.check_id)
  FROM judged j WHERE j.check_id IS NOT NULL
)
SELECT check_id FROM judged WHERE check_id IS NOT NULL
"""


def passing_counts_hold(db: AnyDatabase, policy: Policy) -> bool:
    """Whether `devices.passing` counts the checks of `policy` each device passes: every
    verdict is of one of its checks (a policy that dropped a check leaves its verdicts)."""
    checks = {c.check_id for c in policy.checks}
    return bool(checks) and {r[0] for r in db.execute(_JUDGED_CHECKS)} <= checks


# The waivers in force at a moment (few rows).
_IN_FORCE = """
SELECT DISTINCT device_id, check_id FROM waivers
WHERE created_us <= :t AND :t < expires_us AND (revoked_us IS NULL OR revoked_us > :t)
"""

# Each waiver in force now on a device of the fleet: its device's freshness and verdict on
# the waived check (if judged), in one statement (a lookup per waiver, not a round trip per
# waiver).
_WAIVED_NOW = """
SELECT w.check_id, COALESCE(d.last_report_us, d.enrolled_us) >= :fresh, c.state, c.since_us
FROM ({in_force}) w JOIN devices d ON d.device_id = w.device_id
LEFT JOIN check_results c ON c.device_id = w.device_id AND c.check_id = w.check_id
WHERE {in_fleet} {of_group}
"""

# The devices' figures in one pass over the table (a pass reads every device's row: in a new
# process, with 100,000 devices, about 0.1 s each on SQLite). (PostgreSQL sums BIGINTs as
# NUMERIC: cast back.)
_DEVICES = """
SELECT COUNT(*) FILTER (WHERE {in_fleet}),
       COUNT(*) FILTER (WHERE {in_fleet} AND COALESCE(last_report_us, enrolled_us) < :fresh),
       COUNT(*) FILTER (WHERE {left}),
       CAST(COALESCE(SUM(outbox_dropped_total), 0) AS BIGINT),
       CAST(COALESCE(SUM(outbox_coalesced_total), 0) AS BIGINT),
       CAST(COALESCE(SUM(outbox_corrupt_total), 0) AS BIGINT),
       CAST(COALESCE(SUM(outbox_pending), 0) AS BIGINT),
       COUNT(*) FILTER (WHERE status = :active), COUNT(*) FILTER (WHERE status = :revoked),
       COUNT(*) FILTER (WHERE status = :retired)
FROM devices d
"""


# Devices (`d`) joined to their verdicts (`c`), which schema 32's index holds whole: SQLite
# takes the devices first and looks each one's verdicts up (CROSS JOIN: else it starts at
# check_results, a lookup per verdict of the fleet); PostgreSQL chooses, on its statistics.
# It had been kept to a lookup per device (`Dialect.lookup_join`) since it hashed every
# verdict's whole row to join a few devices to them; with the index it reads them alone, and
# the plain join runs in parallel (bench/fleet_report.py's 100,000 devices: the silent
# devices' verdicts 71 -> 45 ms, a group's 143-165 -> 114-122 ms; half the fleet silent,
# after an outage: 366-413 -> 258-326 ms, and 609 -> 255 ms hashed once its statistics knew).
_VERDICTS_OF_DEVICES = "devices d {join} check_results c ON c.device_id = d.device_id"


def waived_at(db: AnyDatabase, at: dt.datetime) -> set[tuple[str, str]]:
    """(device, check) of every waiver in force at `at`."""
    t = to_us(at)
    return set(db.execute(_IN_FORCE, {"t": t}).fetchall())


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
    judged), of the devices in the fleet now, plus devices per status (every device's) and
    the agents' outbox figures summed."""
    now = to_us(at)
    fresh_since = now - policy.stale_after_hours * 3_600_000_000
    bound: dict[str, object] = {"fresh": fresh_since, "now": now}
    bound |= {status: status for status in DEVICE_STATUSES}
    devices = _DEVICES.format(in_fleet=sql_in_fleet("d", ":now"), left=sql_left_fleet("d", ":now"))
    total, stale, left, dropped, coalesced, corrupt, pending, *by_status = db.execute(
        devices, bound
    ).fetchone()
    figures = FleetFigures(
        outbox={"dropped": dropped, "coalesced": coalesced, "corrupt": corrupt}, pending=pending
    )
    figures.by_status = dict(zip(DEVICE_STATUSES, by_status, strict=True))
    fresh = total - stale
    grace_of = {c.check_id: c.grace_hours * 3_600_000_000 for c in policy.checks}
    counts = {c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks}
    if counts:
        # Every device's verdicts, minus the silent devices' (those read STALE) and those of
        # the devices that left the fleet.
        verdicts: dict[tuple[str, str], list[int]] = {}
        for check_id, state, count in db.execute(_ALL):
            verdicts[(check_id, state)] = [count, 0]
        for check_id, grace in grace_of.items():
            if (check_id, "FAIL") in verdicts:
                row = db.execute(_IN_GRACE, (check_id, now - grace)).fetchone()
                verdicts[(check_id, "FAIL")][1] = row[0]
        # Only placeholders go into the text; the values are bound.
        params: dict[str, object] = {"silent": fresh_since, "now": now}
        starts = {check_id: now - grace for check_id, grace in grace_of.items()}
        grace_start = _per_check("c.check_id", starts, params)
        silent: list[tuple[str, str, int, int | None]] = []
        if stale or left:  # else no device is silent or gone: nothing to take off
            lookup = _VERDICTS_OF_DEVICES.format(join=db.dialect.ordered_join)
            query = _OF_SILENT.format(
                grace_start=grace_start, lookup=lookup, left=sql_left_fleet("d", ":now")
            )
            silent = db.execute(query, params).fetchall()
        for check_id, state, count, in_grace in silent:
            if (check_id, state) in verdicts:
                verdicts[(check_id, state)][0] -= count
                verdicts[(check_id, state)][1] -= in_grace or 0
        for (check_id, state), (count, in_grace) in verdicts.items():
            _add_verdicts(counts, check_id, state, count, in_grace)
    _exempt_and_rest(
        db, counts, grace_of=grace_of, now=now, fresh_since=fresh_since, fresh=fresh, stale=stale
    )
    figures.by_check = counts
    return figures


def _exempt_and_rest(
    db: AnyDatabase, counts: dict[str, dict[str, int]], *, grace_of: dict[str, int], now: int,
    fresh_since: int, fresh: int, stale: int, group: str | None = None,
) -> None:  # fmt: skip
    """Finish the counts of now from the verdicts of the fresh devices: each waiver in force
    on a fresh device moves its check from the verdict's standing to EXEMPT, a fresh device
    with no verdict on a check is UNKNOWN on it, and every silent device STALE on all."""

    def state_of(check_id: str, state: str, since: int | None) -> str:
        if state == "FAIL" and since is not None and since > now - grace_of[check_id]:
            return "GRACE"
        return state if state in ("PASS", "FAIL") else "UNKNOWN"

    of_group = "" if group is None else "AND d.device_group = :group"
    waived = db.execute(
        _WAIVED_NOW.format(in_force=_IN_FORCE, of_group=of_group, in_fleet=sql_in_fleet("d", ":t")),
        {"t": now, "fresh": fresh_since, "group": group},
    ).fetchall()
    for check_id, heard, state, since in waived:
        if check_id not in counts or not heard:  # a silent device reads STALE, waived or not
            continue
        if state is not None:  # a waived device is EXEMPT whatever its verdict
            counts[check_id][state_of(check_id, state, since)] -= 1
        else:  # never judged: counted as UNKNOWN below, minus the waived
            counts[check_id]["UNKNOWN"] -= 1
        counts[check_id]["EXEMPT"] += 1
    for per_state in counts.values():
        counted = sum(per_state[s] for s in ("PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT"))
        per_state["UNKNOWN"] += fresh - counted
        per_state["STALE"] = stale


# One group's devices now: how many, how many silent; then the fresh ones' verdicts, read
# from schema 32's index (`{lookup}`, `_VERDICTS_OF_DEVICES`), not the fleet's history as of
# a moment (`fleet_figures_as_of`, which reads each device's reports for its freshness then).
_GROUP_DEVICES = """
SELECT COUNT(*), COUNT(*) FILTER (WHERE COALESCE(last_report_us, enrolled_us) < :fresh)
FROM devices d WHERE device_group = :group AND enrolled_us <= :now AND {in_fleet}
"""
# Grouped by the check alone, each state a FILTER: SQLite groups by sorting, and a key of one
# column sorts the group's 150,000 verdicts faster than a key of two.
_GROUP_VERDICTS = """
SELECT c.check_id, COUNT(*), COUNT(*) FILTER (WHERE c.state = 'PASS'),
       COUNT(*) FILTER (WHERE c.state = 'FAIL'),
       COUNT(*) FILTER (WHERE c.state = 'FAIL' AND c.since_us > {grace_start})
FROM {lookup}
WHERE d.device_group = :group AND d.enrolled_us <= :now AND {in_fleet}
  AND COALESCE(d.last_report_us, d.enrolled_us) >= :fresh
GROUP BY c.check_id
"""


def group_figures(
    db: AnyDatabase, policy: Policy, at: dt.datetime, group: str
) -> dict[str, dict[str, int]]:
    """One group's devices per check and state now (by the same rule as `fleet_figures`):
    its fresh devices' verdicts read device by device, its silent ones STALE."""
    now = to_us(at)
    fresh_since = now - policy.stale_after_hours * 3_600_000_000
    params: dict[str, object] = {"fresh": fresh_since, "group": group, "now": now}
    in_fleet = sql_in_fleet("d", ":now")
    enrolled, stale = db.execute(_GROUP_DEVICES.format(in_fleet=in_fleet), params).fetchone()
    grace_of = {c.check_id: c.grace_hours * 3_600_000_000 for c in policy.checks}
    counts = {c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks}
    starts = {check_id: now - grace for check_id, grace in grace_of.items()}
    lookup = _VERDICTS_OF_DEVICES.format(join=db.dialect.ordered_join)
    query = _GROUP_VERDICTS.format(
        grace_start=_per_check("c.check_id", starts, params), lookup=lookup, in_fleet=in_fleet
    )
    for check_id, judged, passing, failing, in_grace in db.execute(query, params):
        _add_verdicts(counts, check_id, "PASS", int(passing), 0)
        _add_verdicts(counts, check_id, "FAIL", int(failing), int(in_grace or 0))
        _add_verdicts(counts, check_id, "UNKNOWN", int(judged) - int(passing) - int(failing), 0)
    stale = int(stale or 0)
    fresh = int(enrolled or 0) - stale
    _exempt_and_rest(db, counts, grace_of=grace_of, now=now, fresh_since=fresh_since,
                     fresh=fresh, stale=stale, group=group)  # fmt: skip
    return counts


# Failures past their check's grace period, on devices of the fleet heard from within the
# window and not waived, the longest-failing first: a walk of the partial index
# check_results_failing (every FAIL verdict by since_us, schema 8), a device lookup per
# failure, stopping at the page's end
# (`{cutoff}` is a CASE giving each check's grace cutoff).
_FAILING = """
SELECT {columns}
FROM check_results c{indexed} JOIN devices d ON d.device_id = c.device_id
WHERE c.state = 'FAIL' AND c.check_id IN ({checks})
  AND c.since_us <= {cutoff} AND COALESCE(d.last_report_us, d.enrolled_us) >= :fresh
  AND {in_fleet}
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
        "waived": json.dumps(waived), "now": now,
    }  # fmt: skip
    cutoffs = {c.check_id: now - c.grace_hours * 3_600_000_000 for c in policy.checks}
    cutoff = _per_check("c.check_id", cutoffs, params)
    in_group = ""
    if group is not None:
        in_group, params["group"] = "AND d.device_group = :group", group
    dialect = db.dialect
    query = _FAILING.format(
        columns=columns, cutoff=cutoff, in_group=in_group, in_fleet=sql_in_fleet("d", ":now"),
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

# The devices of the fleet at the moment (enrolled by then, not revoked or retired by then)
# that are STALE then: nothing heard from them within the
# window before it (their last report by then, or their enrollment when none). A device whose
# last report (`last_report_us`) falls in the window is fresh without more; any other is
# looked up in its reports (an index seek, reports_by_device): a report within the window,
# or, enrolled within it, none at all by then. Written as NOT EXISTS, which PostgreSQL runs
# as an anti-join rather than a subquery per device (twice as fast there).
_STALE_AS_OF = """
SELECT d.device_id FROM devices d
WHERE d.enrolled_us <= :t {in_group} AND {in_fleet}
  AND COALESCE(d.last_report_us, -1) NOT BETWEEN :fresh AND :t
  AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.device_id = d.device_id
                  AND r.received_us BETWEEN :fresh AND :t)
  AND NOT (d.enrolled_us >= :fresh AND NOT EXISTS (
      SELECT 1 FROM reports r WHERE r.device_id = d.device_id AND r.received_us <= :t))
"""

# Each (device, check)'s standing as of the moment is its latest state change by then (GRACE
# for a failure younger than its grace period, UNKNOWN with none). Counted one of two ways,
# whichever reads fewer rows:
#
# * From the current verdicts: a verdict whose state has held since before the moment
#   (check_results.since_us, schema 5) was the state then too, counted from the index
#   check_results_by_standing alone; only a verdict that changed after the moment is looked
#   up in the history (its latest change by then, a primary-key seek). A moment a week back
#   costs about what now costs.
# * From the history up to the moment (`_BY_HISTORY`): each pair's latest change by then,
#   when the moment is so far back that fewer changes had happened by then than verdicts
#   changed since (weeks back, most verdicts changed since and little history came before).
#
# Whole fleet: every verdict counted from the index, less the few devices not counted (enrolled
# since, or stale then). One group: its counted devices' verdicts, device by device. Each
# reads the devices' table as few times as it can (in a new process, with 100,000 devices,
# a pass costs about 0.1 s on SQLite): the devices enrolled by then are counted from what
# was read already, or from an index.
_FLEET_SCOPE = """
late AS MATERIALIZED (SELECT d.device_id FROM devices d WHERE d.enrolled_us > :t OR {left}),
stale AS MATERIALIZED ({stale}),
excluded AS MATERIALIZED (
    SELECT l.device_id FROM late l UNION ALL SELECT s.device_id FROM stale s
)"""
_FLEET_ENROLLED = "(SELECT COUNT(*) FROM devices) - (SELECT COUNT(*) FROM late)"
_GROUP_SCOPE = """
stale AS MATERIALIZED ({stale}),
counted AS MATERIALIZED (
    SELECT d.device_id FROM devices d
    WHERE d.device_group = :group AND d.enrolled_us <= :t AND {in_fleet}
      AND NOT EXISTS (SELECT 1 FROM stale s WHERE s.device_id = d.device_id)
)"""
_GROUP_ENROLLED = "(SELECT COUNT(*) FROM counted) + (SELECT COUNT(*) FROM stale)"

# Rows: the head ('', '', devices enrolled by then, of them stale), and per check and state
# (or standing, GRACE included) the verdicts in it and of them in grace.
_HEAD = "SELECT '', '', {enrolled}, (SELECT COUNT(*) FROM stale)"

_IN_GRACE_AS_OF = "COUNT(*) FILTER (WHERE {v}.state = 'FAIL' AND {v}.since_us > {grace})"

# From the verdicts. `{held}`: where the verdicts whose state held since before the moment
# come from; `{minus}`: those to take off again (whole fleet: the excluded devices');
# `{changed}` and `{of_changed}`: the verdicts changed since (`_CHANGED`, left out when none
# did: the moment is now).
_BY_VERDICTS = """
WITH {scope}{changed}
{head}
UNION ALL
SELECT c.check_id, c.state, COUNT(*), {in_grace_c}
FROM {held} WHERE c.since_us <= :t GROUP BY c.check_id, c.state
{minus}{of_changed}
"""
_CHANGED = """,
changed AS MATERIALIZED (
    SELECT c.check_id, (
        SELECT CASE WHEN x.state = 'FAIL' AND x.since_us > {grace_x} THEN 'GRACE'
                    ELSE x.state END
        FROM state_changes x
        WHERE x.device_id = c.device_id AND x.check_id = c.check_id AND x.since_us <= :t
        ORDER BY x.since_us DESC LIMIT 1) AS standing
    FROM {changed_from}
    WHERE (c.since_us > :t OR c.since_us IS NULL) {changed_where}
)"""
_OF_CHANGED = """
UNION ALL
SELECT check_id, standing, COUNT(*), 0 FROM changed GROUP BY check_id, standing
"""
_MINUS = """
UNION ALL
SELECT c.check_id, c.state, -COUNT(*), -{in_grace_c}
FROM excluded e {join} check_results c ON c.device_id = e.device_id
WHERE c.since_us <= :t GROUP BY c.check_id, c.state
"""

# From the history up to the moment: each pair's latest change by then.
_BY_HISTORY = """
WITH {scope},
latest AS (
    SELECT x.device_id, x.check_id, x.state, x.since_us,
           ROW_NUMBER() OVER (PARTITION BY x.device_id, x.check_id ORDER BY x.since_us DESC) AS n
    FROM state_changes x WHERE x.since_us <= :t
)
{head}
UNION ALL
SELECT x.check_id, x.state, COUNT(*), {in_grace_x}
FROM latest x {counted} GROUP BY x.check_id, x.state
"""

# How many verdicts changed after the moment (the first way's lookups), and whether as many
# changes had happened by then (the second way's rows; counted no further than that).
_CHANGED_SINCE = "SELECT COUNT(*) FROM check_results c WHERE c.since_us > :t OR c.since_us IS NULL"
_HISTORY_UNTIL = """
SELECT COUNT(*) FROM (SELECT 1 FROM state_changes x WHERE x.since_us <= :t LIMIT :cap) AS h
"""


def changed_since(db: AnyDatabase, t: int) -> int:
    """How many verdicts changed after the moment `t` (or hold no since)."""
    return int(db.execute(_CHANGED_SINCE, {"t": t}).fetchone()[0])


def by_history(db: AnyDatabase, t: int, changed: int) -> bool:
    """Whether to count the fleet at `t` from the history up to it rather than from the
    verdicts, `changed` of which changed since: fewer changes had happened by then."""
    history = db.execute(_HISTORY_UNTIL, {"t": t, "cap": changed}).fetchone()
    return int(history[0]) < changed


def fleet_figures_as_of(
    db: AnyDatabase, policy: Policy, at: dt.datetime, group: str | None = None,
    *, way: str | None = None,
) -> dict[str, dict[str, int]]:  # fmt: skip
    """Devices per check and compliance state as of `at` (any moment, past or now), counted
    in SQL the way `compliance.standings` judges (tested equal): the devices enrolled by
    then, STALE when silent past the window, EXEMPT under a waiver in force then, else the
    latest state by then, GRACE for a failure younger than its grace, UNKNOWN when never
    judged. In one statement, instead of a judgment per device in Python
    (bench/fleet_report.py). `group`: only that group's devices (as grouped now).
    `way`: "verdicts" or "history" (None: whichever reads fewer rows; both give the same
    counts)."""
    t = to_us(at)
    params: dict[str, object] = {
        "t": t, "fresh": t - policy.stale_after_hours * 3_600_000_000, "group": group,
    }  # fmt: skip
    grace_of = {c.check_id: c.grace_hours * 3_600_000_000 for c in policy.checks}
    counts = {c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks}
    in_group = "" if group is None else "AND d.device_group = :group"
    join = db.dialect.ordered_join
    starts = {c: t - g for c, g in grace_of.items()}

    def in_grace(v: str) -> str:
        return _IN_GRACE_AS_OF.format(v=v, grace=_per_check(f"{v}.check_id", starts, params))

    in_fleet, left = sql_in_fleet("d", ":t"), sql_left_fleet("d", ":t")
    scope = (_FLEET_SCOPE if group is None else _GROUP_SCOPE).format(
        stale=_STALE_AS_OF.format(in_group=in_group, in_fleet=in_fleet), left=left,
        in_fleet=in_fleet,
    )
    head = _HEAD.format(enrolled=_FLEET_ENROLLED if group is None else _GROUP_ENROLLED)
    changed: int | None = None
    if way is None:
        changed = changed_since(db, t)
        way = "history" if by_history(db, t, changed) else "verdicts"
    if way == "history":
        counted = (
            "WHERE x.n = 1 AND NOT EXISTS (SELECT 1 FROM excluded e"
            " WHERE e.device_id = x.device_id)"
            if group is None
            else f"{join} counted k ON k.device_id = x.device_id WHERE x.n = 1"
        )
        query = _BY_HISTORY.format(
            scope=scope, head=head, in_grace_x=in_grace("x"), counted=counted
        )
    else:
        whole = group is None
        of_group = db.dialect.lookup_join(
            "counted k", "check_results", "c", "c.device_id = k.device_id"
        )
        looked_up = _CHANGED.format(
            grace_x=_per_check("x.check_id", starts, params),
            changed_from="check_results c" if whole else of_group,
            changed_where="AND NOT EXISTS (SELECT 1 FROM excluded e"
            " WHERE e.device_id = c.device_id)" if whole else "",
        )  # fmt: skip
        none_changed = changed == 0  # the moment is now: no verdict to look up
        query = _BY_VERDICTS.format(
            scope=scope, head=head, in_grace_c=in_grace("c"),
            held="check_results c" if whole else of_group,
            minus=_MINUS.format(join=join, in_grace_c=in_grace("c")) if whole else "",
            changed="" if none_changed else looked_up,
            of_changed="" if none_changed else _OF_CHANGED,
        )  # fmt: skip
    enrolled = stale = 0
    for check_id, state, count, grace in db.execute(query, params):
        if check_id == "" and state == "":  # the head row (UNION ALL keeps no order)
            enrolled, stale = int(count), int(grace)
        elif state == "GRACE":  # a verdict changed since: its standing then, GRACE included
            if check_id in counts:
                counts[check_id]["GRACE"] += count
        elif state is not None:  # None: not judged by then, counted as UNKNOWN below
            _add_verdicts(counts, check_id, state, count, grace)
    fresh = enrolled - stale
    for check_id, state, since in _waived_as_of(db, params, in_group):
        if check_id not in counts:
            continue
        if state is None:
            counts[check_id]["UNKNOWN"] -= 1  # counted as never judged below
        elif state == "FAIL" and since is not None and since > t - grace_of[check_id]:
            counts[check_id]["GRACE"] -= 1
        else:
            counts[check_id][state if state in ("PASS", "FAIL") else "UNKNOWN"] -= 1
        counts[check_id]["EXEMPT"] += 1
    for per_state in counts.values():
        counted_states = sum(per_state[s] for s in ("PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT"))
        per_state["UNKNOWN"] += fresh - counted_states
        per_state["STALE"] = stale
    return counts


# Each waiver in force at the moment on a device counted then (enrolled by then, of the
# group, not stale), with the waived check's latest state change by then (if any), in one
# statement: a few lookups per waiver, not a round trip per waiver.
_WAIVED_AS_OF = """
WITH w AS ({in_force}),
stale AS ({stale})
SELECT w.check_id, x.state, x.since_us
FROM w JOIN devices d ON d.device_id = w.device_id
LEFT JOIN state_changes x ON x.device_id = w.device_id AND x.check_id = w.check_id
     AND x.since_us = (SELECT MAX(y.since_us) FROM state_changes y
                       WHERE y.device_id = w.device_id AND y.check_id = w.check_id
                         AND y.since_us <= :t)
WHERE d.enrolled_us <= :t {in_group} AND {in_fleet}
  AND NOT EXISTS (SELECT 1 FROM stale s WHERE s.device_id = w.device_id)
"""


_ONLY_WAIVED = "AND d.device_id IN (SELECT v.device_id FROM w v)"


def _waived_as_of(
    db: AnyDatabase, params: dict[str, object], in_group: str
) -> list[tuple[str, str | None, int | None]]:
    """(check, state, since) as of the moment of each waiver in force then on a device
    counted then (state None: not judged by then)."""
    in_fleet = sql_in_fleet("d", ":t")
    stale = _STALE_AS_OF.format(in_group=" ".join((in_group, _ONLY_WAIVED)), in_fleet=in_fleet)
    query = _WAIVED_AS_OF.format(
        in_force=_IN_FORCE, stale=stale, in_group=in_group, in_fleet=in_fleet
    )
    return list(db.execute(query, params).fetchall())


class Fleet(Part):
    """The fleet's standing, now and as of any moment, and its daily records
    (`Store.fleet`)."""

    def fleet_figures(self, policy: Policy, at: dt.datetime) -> FleetFigures:
        """The fleet's standing now, counted in SQL (this module)."""
        return fleet_figures(self._db, policy, at)

    def group_figures(
        self, policy: Policy, at: dt.datetime, group: str
    ) -> dict[str, dict[str, int]]:
        """One group's devices per check and state now, counted in SQL."""
        return group_figures(self._db, policy, at, group)

    def fleet_figures_as_of(
        self, policy: Policy, at: dt.datetime, group: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Devices per check and state at any moment (of one group), counted in SQL; read
        from the moment's mark where it has one (store/fleet_marks)."""
        kept = fleet_marks.marked(self._db, policy, at, group)
        if kept is not None:
            return kept
        return fleet_figures_as_of(self._db, policy, at, group)

    def mark(self, policy: Policy, at: dt.datetime, group: str | None = None) -> bool:
        """Count the whole fleet (or one group's devices, as grouped now) as of `at` from the
        history and keep it as that moment's mark (store/fleet_marks): the count outside the
        write lock, ingest going on; kept unless a change dated by then (for a group, any
        device event) or a report received by then was stored meanwhile. Whether it was
        kept."""
        seq, numbered = fleet_marks.chain_seq(self._db), fleet_marks.report_number(self._db)
        counts = fleet_figures_as_of(self._db, policy, at, group)
        measured = fleet_marks.Measured(
            to_us(at), fleet_marks.judging_key(policy), counts, seq, numbered, group
        )
        with self._write() as cur:
            return fleet_marks.keep(cur, measured)

    def marked(
        self, policy: Policy, at: dt.datetime, group: str | None = None
    ) -> dict[str, dict[str, int]] | None:
        """The fleet's (or a group's) standing at `at` as its mark keeps it, or None."""
        return fleet_marks.marked(self._db, policy, at, group)

    def first_enrolled(self) -> dt.datetime | None:
        """When the first device was enrolled (None before any): no mark before it."""
        row = self._db.execute("SELECT MIN(enrolled_us) FROM devices").fetchone()
        return None if row is None or row[0] is None else from_us(row[0])

    def unmarked(
        self, policy: Policy, moments: list[dt.datetime], group: str | None = None
    ) -> list[dt.datetime]:
        """Those of `moments` whose fleet (or group) standing has no mark under this policy."""
        return fleet_marks.unmarked(self._db, policy, moments, group)

    def record_fleet_day(self, policy: Policy, at: dt.datetime) -> None:
        """Keep the fleet's standing now as its day's (the local day in the policy's time
        zone, as the trend's weeks end): the last record of a day is how the day ended. Not
        evidence (it is overwritten through the day): a summary."""
        figures = self.fleet_figures(policy, at)
        day = at.astimezone(company_zone(policy.time_zone)).date().isoformat()
        self.keep_fleet_days({day: figures.by_check}, at)

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
        """day (YYYY-MM-DD, local) -> check -> state -> devices, for every day recorded."""
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
