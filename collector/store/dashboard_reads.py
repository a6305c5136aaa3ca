"""The dashboard for IT's own reads (`Store.dashboard`): the overview's headline figures, the
device list's orders, failing-longest filtered, and the audit log a page at a time.

Each is one statement over an index or one pass over the devices (never a scan of the
reports), so that every page stays within the half second of issue 17 at 100,000 devices
(bench/dashboard_pages.py). The standing rule is the one `fleet` and `device_list` apply: a
silent device is STALE on every check, a waived check EXEMPT, a failure past its grace FAIL,
and a device IT revoked or retired counts in none of the figures (`standing_rule.in_fleet`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from devposture.collector.standing_rule import sql_in_fleet, sql_left_fleet
from devposture.collector.store.admin import AuditEntry
from devposture.collector.store.base import Part, from_us, to_us
from devposture.collector.store.device_list import _Query as StandingQuery
from devposture.collector.store.fleet import (
    _FAILING_ORDER,
    Failure,
    _failing_query,
    _per_check,
    passing_counts_hold,
    waived_at,
)
from devposture.policy import Policy


@dataclass(frozen=True)
class Headline:
    """The overview's four figures, for the devices heard from within the window."""

    compliant: int  # every check PASS or EXEMPT
    needing_action: int  # some check failing past its grace period (and not waived)
    stale: int  # silent past the policy's window
    waivers_in_force: int  # waivers (device and check) in force now


@dataclass(frozen=True)
class FailingWanted:
    """Failing-longest's filters: some checks only (empty: all), one group, a minimum age."""

    checks: tuple[str, ...] = ()
    group: str = ""
    min_days: float = 0.0


# The raw figures, before the few silent and waived devices are set right (`headline`):
# devices whose every verdict passes, from the count the database keeps per device (schema
# 18: `devices.passing`), valid while every verdict is of one of the policy's checks (else
# `_RAW_GROUPED`); and devices with a failure past its check's grace, from the failing
# verdicts' own index in device order (schema 20: check_results_failing_by_device), where
# a pass over every verdict took 0.2-0.3 s. `{cutoff}` is a CASE giving each check's grace
# cutoff.
_RAW_COMPLIANT = "SELECT COUNT(*) FROM devices d WHERE d.passing = :n {in_group}"
_RAW_NEEDING = """
SELECT COUNT(*) FROM (
  SELECT 1 FROM check_results c WHERE c.state = 'FAIL' AND c.since_us <= {cutoff} {in_group}
  GROUP BY c.device_id
) AS v
"""
# The same two from one grouped pass over every verdict (about 0.3 s for 600,000 verdicts
# on SQLite and on PostgreSQL), for when some verdict is of a check the policy no longer has.
_RAW_GROUPED = """
SELECT COUNT(*) FILTER (WHERE v.bad > 0), COUNT(*) FILTER (WHERE v.good = :n) FROM (
  SELECT MAX(CASE WHEN c.state = 'FAIL' AND c.since_us <= {cutoff} THEN 1 ELSE 0 END) AS bad,
         SUM(CASE WHEN c.state = 'PASS' AND {cutoff} IS NOT NULL THEN 1 ELSE 0 END) AS good
  FROM check_results c {in_group} GROUP BY c.device_id
) AS v
"""
# Natural host order, on both engines: `devices.host_key` (schema 17, `schema.host_key`) is
# the name without its trailing digits case folded, the name's length (the smaller number
# of PC-2 and PC-10), the name case folded and the name, as one indexed key; ties by id.
# (Digits inside a name compare as text.)
_HOST_ORDER = "d.host_key, d.device_id"
# The device list's own columns, each a sort key `{way}` (ASC or DESC) applies to. A device
# that never reported sorts as the oldest report.
ORDER_COLUMNS = {
    "host": "d.host_key {way}",
    "device": "d.device_id {way}",
    "os": "lower(d.os_family) {way}",
    "group": "d.device_group {way}",
    "last_report": "COALESCE(d.last_report_us, -1) {way}",
}
# One group's failures past grace, from its devices (devices_by_group, then each device's
# verdicts by primary key; SQLite's CROSS JOIN keeps that order): the same conditions as
# `fleet._FAILING`, which walks every failure of the fleet instead.
_GROUP_FAILING = """
SELECT {columns}
FROM devices d {join} check_results c ON c.device_id = d.device_id
WHERE d.device_group = :group AND c.state = 'FAIL' AND c.check_id IN ({checks})
  AND c.since_us <= {cutoff} AND COALESCE(d.last_report_us, d.enrolled_us) >= :fresh
  AND {in_fleet}
  AND c.device_id || ' ' || c.check_id NOT IN ({waived})
"""
# A check's states, the ones needing attention first (its column's ascending order).
STATE_ORDER = ("FAIL", "GRACE", "UNKNOWN", "STALE", "EXEMPT", "PASS")

# The silent devices and those IT revoked or retired (few; one pass over the devices), as
# `fleet` spells the silence: each counts in none of the headline's figures.
_SILENT = """
SELECT device_id, {left} FROM devices d
WHERE (last_report_us < :fresh OR (last_report_us IS NULL AND enrolled_us < :fresh)
       OR {left}) {in_group}
"""
_LEFT = sql_left_fleet("d", ":now")
_IN_FLEET = sql_in_fleet("d", ":now")


def _began_by(at: dt.datetime, days: float) -> int:
    """The moment a failure must have begun by to be `days` old at `at`."""
    return to_us(at) - round(days * 86_400_000_000)


def _figures(
    verdicts: dict[str, tuple[str, int | None]], cutoffs: dict[str, int], waived: set[str]
) -> tuple[bool, bool]:
    """Whether a device needs action and whether it is fully compliant, from its verdicts
    (check -> state and since), the policy's checks' grace cutoffs and its waived checks.
    With no waiver, exactly as `_RAW` counts it; a device with no verdict is in neither."""
    if not verdicts and not waived:
        return False, False
    needs = any(
        state == "FAIL" and since is not None and since <= cutoffs[check]
        for check, (state, since) in verdicts.items() if check in cutoffs and check not in waived
    )  # fmt: skip
    good = sum(
        1 for check in cutoffs
        if check in waived or verdicts.get(check, ("", None))[0] == "PASS"
    )  # fmt: skip
    return needs, good == len(cutoffs)


class DashboardReads(Part):
    """The dashboard for IT's reads (`Store.dashboard`)."""

    def headline(self, policy: Policy, at: dt.datetime, stale: int, group: str = "") -> Headline:
        """The overview's figures at `at` (of one group's devices when `group` is given), by
        the standing rule: a silent device counts in neither, a waived check as EXEMPT.
        `stale` comes from the fleet's counts (every check's STALE count is the silent
        devices'), which the overview has already read."""
        now = to_us(at)
        cutoffs = {c.check_id: now - c.grace_hours * 3_600_000_000 for c in policy.checks}
        params: dict[str, object] = {
            "n": len(cutoffs), "fresh": now - policy.stale_after_hours * 3_600_000_000,
            "group": group, "now": now,
        }  # fmt: skip
        cutoff = "CASE c.check_id"
        for k, (check_id, moment) in enumerate(cutoffs.items()):
            cutoff += f" WHEN :check{k} THEN :cutoff{k}"
            params |= {f"check{k}": check_id, f"cutoff{k}": moment}
        in_group = (
            "WHERE c.device_id IN (SELECT device_id FROM devices WHERE device_group = :group)"
            if group else ""
        )  # fmt: skip
        needing, compliant = self._raw(policy, cutoff + " END", params, in_group)
        in_force = {(d, c) for d, c in waived_at(self._db, at) if c in cutoffs}
        rows = self._db.execute(
            _SILENT.format(in_group="AND device_group = :group" if group else "", left=_LEFT),
            params,
        ).fetchall()
        silent = {r[0] for r in rows}
        # A waiver on a device that left the fleet is in force no more for the overview.
        in_force -= {(d, c) for d, c in in_force if d in {r[0] for r in rows if r[1]}}
        special = silent | {d for d, _ in in_force}
        if group:
            special &= self._of_group(special, group)
            in_force = {(d, c) for d, c in in_force if d in special}
        waived: dict[str, set[str]] = {}
        for device_id, check_id in in_force:
            waived.setdefault(device_id, set()).add(check_id)
        for device_id, verdicts in self._verdicts_of(special).items():
            raw = _figures(verdicts, cutoffs, set())
            true = (False, False) if device_id in silent else _figures(
                verdicts, cutoffs, waived.get(device_id, set()))  # fmt: skip
            needing += true[0] - raw[0]
            compliant += true[1] - raw[1]
        return Headline(compliant, needing, stale, len(in_force))

    def _raw(
        self, policy: Policy, cutoff: str, params: dict[str, object], in_group: str
    ) -> tuple[int, int]:
        """Devices needing action and devices fully compliant, counting silent and waived
        devices as if neither mattered (`headline` sets those few right)."""
        if not passing_counts_hold(self._db, policy):
            query = _RAW_GROUPED.format(cutoff=cutoff, in_group=in_group)
            needing, compliant = self._db.execute(query, params).fetchone()
            return int(needing or 0), int(compliant or 0)
        of_group = in_group.replace("WHERE", "AND", 1)
        query = _RAW_NEEDING.format(cutoff=cutoff, in_group=of_group)
        needing = self._db.execute(query, params).fetchone()[0]
        of_group = "AND d.device_group = :group" if in_group else ""
        compliant = self._db.execute(_RAW_COMPLIANT.format(in_group=of_group), params).fetchone()[0]
        return int(needing), int(compliant)

    def _verdicts_of(self, devices: set[str]) -> dict[str, dict[str, tuple[str, int | None]]]:
        """Each device's verdicts (state and since) by check: primary-key lookups (few)."""
        found: dict[str, dict[str, tuple[str, int | None]]] = {d: {} for d in devices}
        if not devices:
            return found
        rows = self._db.execute(
            "SELECT device_id, check_id, state, since_us FROM check_results"  # noqa: S608
            f" WHERE device_id IN ({self._db.dialect.json_values(':ids')})",
            {"ids": json.dumps(sorted(devices))},
        )
        for device_id, check_id, state, since in rows:
            found[device_id][check_id] = (state, since)
        return found

    def _of_group(self, devices: set[str], group: str) -> set[str]:
        """Those of `devices` in `group` (primary-key lookups; few)."""
        if not devices:
            return set()
        rows = self._db.execute(
            "SELECT device_id FROM devices"  # noqa: S608 (a placeholder)
            f" WHERE device_id IN ({self._db.dialect.json_values(':ids')})"
            " AND device_group = :group",
            {"ids": json.dumps(sorted(devices)), "group": group},
        ).fetchall()
        return {r[0] for r in rows}

    def ordered(
        self, policy: Policy, at: dt.datetime, column: str, descending: bool = False
    ) -> list[str]:
        """The id of every device of the fleet at `at`, in the order of a device list column
        (`ORDER_COLUMNS`, or a check's id: its standing, the ones needing attention first),
        ties in natural host order. One pass over the devices and a sort in SQL (a check's
        column: a primary-key lookup of its verdict per device); nothing sorted in Python."""
        way = "DESC" if descending else "ASC"
        if column in ORDER_COLUMNS:
            order = ORDER_COLUMNS[column].format(way=way)
            rows = self._db.execute(
                "SELECT d.device_id FROM devices d WHERE d.enrolled_us <= :now"  # noqa: S608
                f" AND {_IN_FLEET} ORDER BY {order}, {_HOST_ORDER}",
                {"now": to_us(at)},
            )
            return [r[0] for r in rows]
        query = StandingQuery(self._db, policy, at)
        k = query.checks.index(column)
        rank = " ".join(f"WHEN '{state}' THEN {n}" for n, state in enumerate(STATE_ORDER))
        rows = self._db.execute(
            f"SELECT d.device_id FROM devices d{query.joins[k]}"  # noqa: S608 (fixed texts)
            f" WHERE d.enrolled_us <= :now AND {_IN_FLEET}"
            f" ORDER BY CASE ({query.states[k]}) {rank} ELSE 2 END {way}, {_HOST_ORDER}",
            query.params,
        )
        return [r[0] for r in rows]

    def hostnames(self, device_ids: set[str]) -> dict[str, str]:
        """The host names of a few devices (primary-key lookups)."""
        if not device_ids:
            return {}
        rows = self._db.execute(
            "SELECT device_id, hostname FROM devices"  # noqa: S608 (a placeholder)
            f" WHERE device_id IN ({self._db.dialect.json_values(':ids')})",
            {"ids": json.dumps(sorted(device_ids))},
        )
        return {r[0]: r[1] for r in rows}

    # --- failing longest, filtered -------------------------------------------------------

    def _failing(
        self, policy: Policy, at: dt.datetime, wanted: FailingWanted, columns: str
    ) -> tuple[str, dict[str, object]]:
        """The failures `wanted` selects: the whole fleet's by walking the partial index of
        failing verdicts in the order they began (`fleet._FAILING`); one group's from its
        devices (`_GROUP_FAILING`), so that a small group does not walk every failure."""
        query, params = _failing_query(self._db, policy, at, columns, None)
        if wanted.group:
            dialect = self._db.dialect
            cutoffs = {c.check_id: to_us(at) - c.grace_hours * 3_600_000_000
                       for c in policy.checks}  # fmt: skip
            query = _GROUP_FAILING.format(
                columns=columns, join=dialect.ordered_join,
                cutoff=_per_check("c.check_id", cutoffs, params),
                checks=dialect.json_values(":checks"), waived=dialect.json_values(":waived"),
                in_fleet=sql_in_fleet("d", ":now"),
            )  # fmt: skip
            params["group"] = wanted.group
        if wanted.checks:
            query += f" AND c.check_id IN ({self._db.dialect.json_values(':only')})"
            params["only"] = json.dumps(list(wanted.checks))
        if wanted.min_days > 0:
            query += " AND c.since_us <= :began_by"
            params["began_by"] = _began_by(at, wanted.min_days)
        return query, params

    def failing(
        self, policy: Policy, at: dt.datetime, wanted: FailingWanted, *, offset: int = 0,
        limit: int | None = None,
    ) -> list[Failure]:  # fmt: skip
        """The failures past grace `wanted` selects, the longest first, `limit` of them from
        `offset` (the same set and order as `Fleet.failing_now`)."""
        query, params = self._failing(
            policy, at, wanted, "c.since_us, c.device_id, c.check_id, d.hostname, c.reason"
        )
        params |= {"limit": self._db.dialect.no_limit if limit is None else limit,
                   "offset": offset}  # fmt: skip
        return [
            Failure(device_id, hostname, check_id, from_us(since), reason)
            for since, device_id, check_id, hostname, reason in self._db.execute(
                query + _FAILING_ORDER, params
            )
        ]

    def failing_count(self, policy: Policy, at: dt.datetime, wanted: FailingWanted) -> int:
        """How many failures `failing` lists in all. The fleet's: counted per check from the
        index check_results_by_standing (no row read), less those of silent devices and of
        waived checks (few, by their own rows); one group's: by `_failing`."""
        if wanted.group:
            query, params = self._failing(policy, at, wanted, "COUNT(*)")
            return int(self._db.execute(query, params).fetchone()[0])
        now = to_us(at)
        began_by = _began_by(at, wanted.min_days) if wanted.min_days > 0 else now
        limits = {
            c.check_id: min(now - c.grace_hours * 3_600_000_000, began_by)
            for c in policy.checks if not wanted.checks or c.check_id in wanted.checks
        }  # fmt: skip
        total = 0
        for check_id, limit in limits.items():
            total += int(self._db.execute(
                "SELECT COUNT(*) FROM check_results WHERE check_id = ? AND state = 'FAIL'"
                " AND since_us <= ?", (check_id, limit),
            ).fetchone()[0])  # fmt: skip
        fresh = now - policy.stale_after_hours * 3_600_000_000
        silent = {r[0] for r in self._db.execute(
            _SILENT.format(in_group="", left=_LEFT), {"fresh": fresh, "now": now}
        )}  # fmt: skip
        in_force = {(d, c) for d, c in waived_at(self._db, at) if c in limits}
        for device_id, verdicts in self._verdicts_of(silent | {d for d, _ in in_force}).items():
            for check_id, (state, since) in verdicts.items():
                counted = (state == "FAIL" and check_id in limits and since is not None
                           and since <= limits[check_id])  # fmt: skip
                if counted and (device_id in silent or (device_id, check_id) in in_force):
                    total -= 1
        return total

    # --- the audit log, newest first -----------------------------------------------------

    def audit_page(self, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        """`limit` entries of the audit log from `offset`, the newest first (its primary
        key, walked backwards), and how many it holds."""
        rows = self._db.execute(
            "SELECT at_us, actor, credential_id, role, command, arguments, outcome, message,"
            " peer FROM audit_log ORDER BY entry_id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        total = int(self._db.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
        return [AuditEntry(from_us(r[0]), *r[1:]) for r in rows], total

    def token_enrollments(self) -> dict[str, int]:
        """How many devices each enrollment token enrolled (one pass over the devices)."""
        rows = self._db.execute("SELECT token_id, COUNT(*) FROM devices GROUP BY token_id")
        return {r[0]: int(r[1]) for r in rows}

    # --- dashboard sessions, per credential ----------------------------------------------

    def keep_latest_sessions(self, credential_id: str, keep: int) -> None:
        """End a credential's sessions but its `keep` most recently seen (`auth.Sessions`
        calls it before adding one), so that one credential's logins cannot fill the table
        and push every other person's session out (`DashboardSessions.add`'s bound). Here, not
        in `sessions`, by the dashboard review's rule for new queries."""
        with self._write() as cur:
            cur.execute(
                "DELETE FROM dashboard_sessions WHERE credential_id = ? AND session_hash NOT IN"
                " (SELECT session_hash FROM dashboard_sessions WHERE credential_id = ?"
                " ORDER BY last_seen_us DESC, session_hash LIMIT ?)",
                (credential_id, credential_id, keep),
            )
