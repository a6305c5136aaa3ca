"""The fleet's devices with their standing now, filtered and a page at a time, in SQL.

The dashboard's device list asks this. It judges by the standing rule
(`collector/standing_rule.py`, rendered as a SQL CASE; tested equal to `compliance.standings`),
but from the current verdicts (`check_results`, one primary-key lookup per device and check)
instead of the whole history, so a page costs one pass over the devices with 100,000 of them,
not a judgment of every device in Python (bench/dashboard_pages.py).

A device IT revoked or retired has left the fleet: it is in no listing here from then (`device
list` and `device show` still name it, with its status).

A page is read in two steps: the matching devices' ids (ordered by host name, then id: the
total and every page come from it, so the dashboard caches it while the pages are turned),
then the standings of the page's few devices only; SQLite would otherwise compute every
column of every matching device before sorting.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass

from devposture.collector.compliance import STATES
from devposture.collector.standing_rule import Conditions, sql_case, sql_in_fleet
from devposture.collector.store.base import Part, maybe_from_us, to_us
from devposture.collector.store.engine import AnyDatabase, Dialect
from devposture.collector.store.fleet import passing_counts_hold, waived_at
from devposture.policy import Policy

# Any state but PASS and EXEMPT: what needs a fix (or an answer) now.
NOT_PASSING = "NOT_PASSING"


@dataclass(frozen=True)
class DeviceFilter:
    """Which devices to list. Empty fields match everything."""

    text: str = ""  # the start of a device id, or part of a host name (case-insensitive)
    check: str = ""  # the check `state` applies to; empty: any check
    state: str = ""  # one of compliance.STATES, or NOT_PASSING
    os_family: str = ""
    group: str = ""
    stale: bool = False  # only devices silent past the policy's window


@dataclass(frozen=True)
class ListedDevice:
    device_id: str
    hostname: str
    os_family: str
    group: str
    last_report_at: dt.datetime | None
    states: dict[str, str]  # check id -> standing, for each of the policy's checks


class _Query:
    """One listing's SQL: the standing of each check as a CASE over a LEFT JOIN, and the
    filter as a WHERE over them. Only placeholders go into the text; values are bound."""

    def __init__(self, db: AnyDatabase, policy: Policy, at: dt.datetime) -> None:
        now = to_us(at)
        self.checks = [c.check_id for c in policy.checks]
        self.params: dict[str, object] = {
            "now": now, "fresh": now - policy.stale_after_hours * 3_600_000_000,
        }  # fmt: skip
        waived: dict[str, list[str]] = {c: [] for c in self.checks}
        for device_id, check_id in waived_at(db, at):
            if check_id in waived:
                waived[check_id].append(device_id)
        self.dialect = db.dialect
        self.joins: list[str] = []
        self.states: list[str] = []
        self.params["checks"] = json.dumps(self.checks)
        # The same rule over one verdict row `c` of any of the policy's checks, its grace and
        # waivers picked by its check id: "on any check" filters for a standing that only a
        # verdict can give (`_ON_ANY_VERDICT`) test it in one probe of the device's verdicts.
        grace_of = "CASE c.check_id"
        waived_of = "CASE c.check_id"
        for k, check in enumerate(policy.checks):
            grace_of += f" WHEN :check{k} THEN :grace{k}"
            if waived[check.check_id]:
                waived_of += (
                    f" WHEN :check{k} THEN c.device_id IN ({db.dialect.json_values(f':waived{k}')})"
                )
        self.grace_of = f"{grace_of} END"
        self._db, self._policy = db, policy
        self.params["waived_devices"] = json.dumps(
            sorted({d for ds in waived.values() for d in ds})
        )
        self.params["waived_pairs"] = json.dumps(
            [
                f"{device_id} {check_id}"
                for check_id, devices in waived.items()
                for device_id in devices
            ]
        )
        self.any_state = sql_case(Conditions(
            silent="FALSE",  # the device is not silent: see `where`
            waived=None if waived_of == "CASE c.check_id" else f"{waived_of} ELSE FALSE END",
            latest="c.state", in_grace=f"c.since_us > {grace_of} END",
        ))  # fmt: skip
        for k, check in enumerate(policy.checks):
            self.params[f"check{k}"] = check.check_id
            self.params[f"grace{k}"] = now - check.grace_hours * 3_600_000_000
            self.params[f"waived{k}"] = json.dumps(waived[check.check_id])
            self.joins.append(
                f" LEFT JOIN check_results c{k}"
                f" ON c{k}.device_id = d.device_id AND c{k}.check_id = :check{k}"
            )
            # The standing rule (collector/standing_rule.py) as SQL. Without a waiver in force
            # on the check, no device is EXEMPT on it: that step (a lookup per device) is
            # left out.
            waived_here = f"d.device_id IN ({db.dialect.json_values(f':waived{k}')})"
            self.states.append(sql_case(Conditions(
                silent="COALESCE(d.last_report_us, d.enrolled_us) < :fresh",
                waived=waived_here if waived[check.check_id] else None,
                latest=f"c{k}.state", in_grace=f"c{k}.since_us > :grace{k}",
            )))  # fmt: skip

    @functools.cached_property
    def counted(self) -> bool:
        """Whether each device's count of passing verdicts is its count of these checks (a
        read of the database, asked only by a filter that uses the count)."""
        return passing_counts_hold(self._db, self._policy)

    def where(self, wanted: DeviceFilter) -> tuple[str, str]:
        """The joins the filter needs and its WHERE clause."""
        # The fleet's devices: one IT revoked or retired is listed by `device list`, not here.
        terms = ["d.enrolled_us <= :now", sql_in_fleet("d", ":now")]
        if wanted.text:
            self.params["prefix"] = wanted.text.lower().replace("\\", "\\\\").replace(
                "%", "\\%").replace("_", "\\_") + "%"  # fmt: skip
            self.params["needle"] = self.dialect.fold(wanted.text)
            found = self.dialect.contains_folded("d.hostname", ":needle")
            terms.append(f"(d.device_id LIKE :prefix ESCAPE '\\' OR {found})")
        if wanted.os_family:
            self.params["os"] = wanted.os_family
            terms.append("d.os_family = :os")
        if wanted.group:
            self.params["group"] = wanted.group
            terms.append("d.device_group = :group")
        if wanted.stale:
            terms.append("COALESCE(d.last_report_us, d.enrolled_us) < :fresh")
        joins = ""
        if (
            wanted.state in _ON_ANY_VERDICT and wanted.check not in self.checks
            and not self.dialect.is_sqlite
        ):  # fmt: skip
            # Any check: the devices with a verdict in the state the standing needs (an index
            # answers it) whose standing is the one wanted; no join per check. A silent device
            # is STALE on every check (the rule's first step), so it has none of these.
            terms.append("NOT (COALESCE(d.last_report_us, d.enrolled_us) < :fresh)")
            terms.append(_ANY_VERDICT.format(
                checks=self.dialect.json_values(":checks"),
                verdict=_ON_ANY_VERDICT[wanted.state].format(grace=self.grace_of),
                waived=self.dialect.json_values(":waived_pairs"),
            ))  # fmt: skip
        elif (
            wanted.state == NOT_PASSING
            and not wanted.check
            and (self.counted or not self.dialect.is_sqlite)
        ):
            terms.append(self._not_passing_any())
        elif wanted.state:
            chosen = [self.checks.index(wanted.check)] if wanted.check in self.checks else (
                range(len(self.checks)))  # fmt: skip
            joins = "".join(self.joins[k] for k in chosen)
            if wanted.state == NOT_PASSING:
                matches = [f"{self.states[k]} NOT IN ('PASS', 'EXEMPT')" for k in chosen]
            else:
                self.params["state"] = wanted.state
                matches = [f"{self.states[k]} = :state" for k in chosen]
            if len(chosen) == 1:
                terms += _index_hints(self.dialect, chosen[0], wanted.state)
            terms.append("(" + " OR ".join(matches or ["FALSE"]) + ")")
        return joins, " AND ".join(terms)

    def _not_passing_any(self) -> str:
        """Not passing on some check: silent (STALE on every check), or not among the devices
        whose every check is PASS or EXEMPT, counted as verdict rows judged PASS or EXEMPT
        plus waived checks that hold no verdict (EXEMPT without one). A device under no
        waiver passes every check when its count of passing verdicts says so (schema 18), so
        only the waived devices' verdicts are read (`counted`); else one grouped pass over
        the verdicts instead of a hash join per check (PostgreSQL)."""
        self.params["n"] = len(self.checks)
        of_waived = " AND c.device_id IN ({})".format(self.dialect.json_values(":waived_devices"))
        passing = [_PASSING_VERDICTS.format(
            checks=self.dialect.json_values(":checks"), standing=self.any_state
        ) + (of_waived if self.counted else "")]  # fmt: skip
        for k in range(len(self.checks)):
            if self.params[f"waived{k}"] != "[]":
                passing.append(_WAIVED_UNJUDGED.format(
                    waived=self.dialect.json_values(f":waived{k}"), k=k
                ))  # fmt: skip
        chosen = _NOT_PASSING_COUNTED if self.counted else _NOT_PASSING_ANY
        return chosen.format(passing=" UNION ALL ".join(passing))


# Standings only a verdict gives (steps 3 and 4 of the rule), each spelled as what it asks
# of a verdict of a fresh device on a check not waived: FAIL is a failure not within its
# grace (a failure whose start is unknown is not in grace), GRACE one within it, PASS a
# pass. On PostgreSQL, "on any check" filters for them read the verdicts in that state as a
# semi-join instead of judging all of each device's checks (a hash join per check): 0.6-0.75
# -> 0.1-0.3 s for 100,000 devices. Spelled out rather than as the rule's CASE `= :state`,
# whose share PostgreSQL cannot estimate (it guessed 1,000 of 200,000 failures and probed
# the devices one by one: 0.51 -> 0.27 s). Tested equal to the history's standings
# (tests/collector/test_device_list.py). SQLite keeps the join per check: there the list
# form is 2.5x slower when it holds most of the fleet, and its EXISTS form was no faster.
_ON_ANY_VERDICT = {
    "FAIL": "c.state = 'FAIL' AND (c.since_us IS NULL OR c.since_us <= {grace})",
    "GRACE": "c.state = 'FAIL' AND c.since_us > {grace}",
    "PASS": "c.state = 'PASS'",
}
_ANY_VERDICT = """d.device_id IN (
    SELECT c.device_id FROM check_results c
    WHERE c.check_id IN ({checks}) AND {verdict}
      AND c.device_id || ' ' || c.check_id NOT IN ({waived}))"""


# NOT_PASSING on any check, on PostgreSQL (`_Query._not_passing_any`): the rows counted are one
# per (device, check) that passes, so a device passes all when it has as many as the policy
# has checks.
_NOT_PASSING_ANY = """(COALESCE(d.last_report_us, d.enrolled_us) < :fresh OR d.device_id NOT IN (
    SELECT p.device_id FROM ({passing}) AS p GROUP BY p.device_id HAVING COUNT(*) = :n))"""
# The same when each device's count of passing verdicts holds (`_Query.counted`): a device
# under no waiver passes all when it passes as many checks as the policy has; the grouped
# rows are the waived devices' only. 0.3 -> 0.05 s for 100,000 devices.
_NOT_PASSING_COUNTED = """(COALESCE(d.last_report_us, d.enrolled_us) < :fresh OR (d.passing <> :n
    AND d.device_id NOT IN (
        SELECT p.device_id FROM ({passing}) AS p GROUP BY p.device_id HAVING COUNT(*) = :n)))"""
_PASSING_VERDICTS = """SELECT c.device_id FROM check_results c
    WHERE c.check_id IN ({checks}) AND {standing} IN ('PASS', 'EXEMPT')"""
_WAIVED_UNJUDGED = """SELECT w.device_id FROM devices w WHERE w.device_id IN ({waived})
    AND NOT EXISTS (SELECT 1 FROM check_results x
                      WHERE x.device_id = w.device_id AND x.check_id = :check{k})"""


def _index_hints(dialect: Dialect, k: int, state: str) -> list[str]:
    """Conditions implied by `state` on check `k` that SQLite can answer from an index
    (check_results_by_standing: check, state, since), so that it reads only the verdicts
    in that state instead of judging every device; the CASE still decides."""
    if state in ("FAIL", "GRACE"):
        since = "<=" if state == "FAIL" else ">"
        return [f"c{k}.state = 'FAIL'", f"c{k}.since_us {since} :grace{k}"]
    if state == "PASS":
        return [f"c{k}.state = 'PASS'"]
    if state == "STALE":
        return ["COALESCE(d.last_report_us, d.enrolled_us) < :fresh"]
    if state == "EXEMPT":
        return [f"d.device_id IN ({dialect.json_values(f':waived{k}')})"]
    return []


def matching_devices(
    db: AnyDatabase, policy: Policy, at: dt.datetime, wanted: DeviceFilter
) -> list[str]:
    """The ids of the devices matching `wanted` at `at`, ordered by host name then id: one
    pass over the devices (a page and the total both come from it)."""
    if wanted.state and wanted.state not in (*STATES, NOT_PASSING):
        raise ValueError(f"unknown state {wanted.state!r}: use one of {', '.join(STATES)}")
    query = _Query(db, policy, at)
    joins, where = query.where(wanted)
    rows = db.execute(
        f"SELECT d.device_id FROM devices d{joins} WHERE {where}"  # noqa: S608
        " ORDER BY d.hostname, d.device_id",
        query.params,
    )
    return [row[0] for row in rows]


def listed(
    db: AnyDatabase, policy: Policy, at: dt.datetime, device_ids: list[str]
) -> list[ListedDevice]:
    """Each of `device_ids` (a page: a primary-key lookup each) with its standing at `at` on
    each of the policy's checks, in the order given."""
    if not device_ids:
        return []
    query = _Query(db, policy, at)
    columns = "".join(f", {state}" for state in query.states)
    rows = db.execute(
        "SELECT d.device_id, d.hostname, d.os_family, d.device_group, d.last_report_us"  # noqa: S608
        f"{columns} FROM devices d{''.join(query.joins)}"
        f" WHERE d.device_id IN ({db.dialect.json_values(':ids')})",
        {**query.params, "ids": json.dumps(device_ids)},
    ).fetchall()
    found = {
        row[0]: ListedDevice(
            device_id=row[0],
            hostname=row[1],
            os_family=row[2],
            group=row[3],
            last_report_at=maybe_from_us(row[4]),
            states=dict(zip(query.checks, row[5:], strict=True)),
        )
        for row in rows
    }
    return [found[d] for d in device_ids if d in found]


def os_families(db: AnyDatabase) -> list[str]:
    """The operating-system families the fleet has, for the filter's choices."""
    rows = db.execute("SELECT DISTINCT os_family FROM devices WHERE os_family != ''")
    return sorted(row[0] for row in rows)


def groups(db: AnyDatabase) -> list[str]:
    """The device groups in use, for the filter's choices (index devices_by_group)."""
    rows = db.execute("SELECT DISTINCT device_group FROM devices WHERE device_group != ''")
    return sorted(row[0] for row in rows)


class DeviceList(Part):
    """The dashboard's device list: filtered, a page at a time (`Store.device_list`)."""

    def matching(self, policy: Policy, at: dt.datetime, wanted: DeviceFilter) -> list[str]:
        return matching_devices(self._db, policy, at, wanted)

    def listed(self, policy: Policy, at: dt.datetime, device_ids: list[str]) -> list[ListedDevice]:
        return listed(self._db, policy, at, device_ids)

    def os_families(self) -> list[str]:
        return os_families(self._db)

    def groups(self) -> list[str]:
        return groups(self._db)
