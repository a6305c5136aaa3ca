"""The dashboard for IT's own reads (`Store.dashboard`): the overview's headline figures, the
columns the device list sorts by, failing-longest filtered, and the audit log a page at a time.

Each is one statement over an index or one pass over the devices (never a scan of the
reports), so that every page stays within the half second of issue 17 at 100,000 devices
(bench/dashboard_pages.py). The standing rule is the one `fleet` and `device_list` apply: a
silent device is STALE on every check, a waived check EXEMPT, a failure past its grace FAIL.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from devposture.collector.store.admin import AuditEntry
from devposture.collector.store.base import Part, from_us, maybe_from_us, to_us
from devposture.collector.store.device_list import _Query as StandingQuery
from devposture.collector.store.fleet import (
    _FAILING_ORDER,
    Failure,
    _failing_query,
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
class SortColumns:
    """What the device list sorts by, for one device."""

    hostname: str
    os_family: str
    group: str
    last_report_at: dt.datetime | None


@dataclass(frozen=True)
class FailingWanted:
    """Failing-longest's filters: some checks only (empty: all), one group, a minimum age."""

    checks: tuple[str, ...] = ()
    group: str = ""
    min_days: float = 0.0


# Per heard-from device, in one grouped pass over the current verdicts: how many of the
# policy's checks need action (FAIL past grace, not waived) and how many are PASS or EXEMPT
# (a waived check with no verdict yet counts as EXEMPT: the UNION's second part).
_HEADLINE = """
SELECT COUNT(*) FILTER (WHERE v.bad > 0), COUNT(*) FILTER (WHERE v.bad = 0 AND v.good = :n)
FROM (
  SELECT u.device_id, SUM(u.bad) AS bad, SUM(u.good) AS good FROM (
    SELECT c.device_id,
           CASE WHEN {waived} THEN 0
                WHEN c.state = 'FAIL' AND c.since_us <= {cutoff} THEN 1 ELSE 0 END AS bad,
           CASE WHEN {waived} OR c.state = 'PASS' THEN 1 ELSE 0 END AS good
    FROM check_results c WHERE c.check_id IN ({checks})
    UNION ALL
    SELECT w.*, 0, 1 FROM ({unjudged}) AS w
  ) AS u GROUP BY u.device_id
) AS v JOIN devices d ON d.device_id = v.device_id
WHERE COALESCE(d.last_report_us, d.enrolled_us) >= :fresh AND d.enrolled_us <= :now
  {in_group}
"""


class DashboardReads(Part):
    """The dashboard for IT's reads (`Store.dashboard`)."""

    def headline(
        self, policy: Policy, at: dt.datetime, stale: int, group: str = ""
    ) -> Headline:
        """The overview's figures at `at` (of one group's devices when `group` is given).
        `stale` comes from the fleet's counts (every check's STALE count is the silent
        devices'), which the overview has already read."""
        now = to_us(at)
        checks = [c.check_id for c in policy.checks]
        in_force = {(d, c) for d, c in waived_at(self._db, at) if c in checks}
        if group:
            in_force &= self._of_group(in_force, group)
        judged = self._judged(in_force)
        params: dict[str, object] = {
            "n": len(checks), "checks": json.dumps(checks), "now": now,
            "fresh": now - policy.stale_after_hours * 3_600_000_000,
            "waived": json.dumps(sorted(f"{d} {c}" for d, c in in_force)),
            "unjudged": json.dumps(sorted(d for d, c in in_force - judged)),
        }  # fmt: skip
        cutoff = "CASE c.check_id"
        for k, check in enumerate(policy.checks):
            cutoff += f" WHEN :check{k} THEN :cutoff{k}"
            params[f"check{k}"] = check.check_id
            params[f"cutoff{k}"] = now - check.grace_hours * 3_600_000_000
        dialect = self._db.dialect
        query = _HEADLINE.format(
            waived=f"c.device_id || ' ' || c.check_id IN ({dialect.json_values(':waived')})",
            cutoff=cutoff + " END", checks=dialect.json_values(":checks"),
            unjudged=dialect.json_values(":unjudged"),
            in_group="AND d.device_group = :group" if group else "",
        )  # fmt: skip
        params["group"] = group
        needing, compliant = self._db.execute(query, params).fetchone()
        return Headline(int(compliant), int(needing), stale, len(in_force))

    def _of_group(self, pairs: set[tuple[str, str]], group: str) -> set[tuple[str, str]]:
        """The pairs whose device is in `group` (primary-key lookups; waivers are few)."""
        ids = json.dumps(sorted({d for d, _ in pairs}))
        rows = self._db.execute(
            "SELECT device_id FROM devices"  # noqa: S608 (a placeholder)
            f" WHERE device_id IN ({self._db.dialect.json_values(':ids')})"
            " AND device_group = :group",
            {"ids": ids, "group": group},
        ).fetchall()
        members = {r[0] for r in rows}
        return {(d, c) for d, c in pairs if d in members}

    def _judged(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (device, check) pairs have a verdict (primary-key lookups; few)."""
        if not pairs:
            return set()
        ids = json.dumps(sorted({d for d, _ in pairs}))
        rows = self._db.execute(
            "SELECT device_id, check_id FROM check_results"  # noqa: S608 (a placeholder)
            f" WHERE device_id IN ({self._db.dialect.json_values(':ids')})",
            {"ids": ids},
        ).fetchall()
        return {(d, c) for d, c in rows} & pairs

    def sort_columns(self) -> dict[str, SortColumns]:
        """Every device's sortable columns: one pass over the devices (not their reports)."""
        rows = self._db.execute(
            "SELECT device_id, hostname, os_family, device_group, last_report_us FROM devices"
        ).fetchall()
        return {r[0]: SortColumns(r[1], r[2], r[3], maybe_from_us(r[4])) for r in rows}

    def standings_of(self, policy: Policy, at: dt.datetime, check_id: str) -> dict[str, str]:
        """Every device's standing on one check at `at` (a primary-key lookup per device),
        for sorting the device list by that check's column."""
        query = StandingQuery(self._db, policy, at)
        k = query.checks.index(check_id)
        rows = self._db.execute(
            f"SELECT d.device_id, {query.states[k]} FROM devices d{query.joins[k]}",  # noqa: S608
            query.params,
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # --- failing longest, filtered -------------------------------------------------------

    def _failing(
        self, policy: Policy, at: dt.datetime, wanted: FailingWanted, columns: str
    ) -> tuple[str, dict[str, object]]:
        query, params = _failing_query(self._db, policy, at, columns, wanted.group or None)
        if wanted.checks:
            query += f" AND c.check_id IN ({self._db.dialect.json_values(':only')})"
            params["only"] = json.dumps(list(wanted.checks))
        if wanted.min_days > 0:
            query += " AND c.since_us <= :began_by"
            params["began_by"] = to_us(at) - round(wanted.min_days * 86_400_000_000)
        return query, params

    def failing(
        self, policy: Policy, at: dt.datetime, wanted: FailingWanted, *, offset: int = 0,
        limit: int | None = None,
    ) -> list[Failure]:  # fmt: skip
        """The failures past grace `wanted` selects, the longest first (walking the partial
        index of failing verdicts, as `Fleet.failing_now` does), `limit` of them from
        `offset`."""
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
        query, params = self._failing(policy, at, wanted, "COUNT(*)")
        return int(self._db.execute(query, params).fetchone()[0])

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
