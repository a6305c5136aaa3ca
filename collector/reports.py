"""Report views for IT and auditors, computed from the state history at any moment.

Every view goes through `compliance.standings`, so "now" and "as of" a past date are the same
computation. Counts, days, hours and the pass rate are numbers (not texts such as "0.0%"), so
a spreadsheet can sum and chart them. JSON, CSV and XLSX carry every column, including each
row's clause and check texts in Chinese and English, so a spreadsheet needs no other source;
the terminal table leaves the long texts out (`render.FILE_ONLY_COLUMNS`).

A reason comes twice: `reason`, as stored (a reason code with its parameters, for programs;
`devposture.policy.reasons`), and `reason_text`, in the language asked for (Chinese unless
`--lang en`) with its times in the company's time zone, for people; the table shows the latter.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.company_time import shown, stamp, zone_of
from devposture.collector.compliance import STATES, DeviceSeen, Standing, standings
from devposture.collector.render import FILE_ONLY_COLUMNS, Row, code_cell
from devposture.collector.store import Store
from devposture.policy import Policy
from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import said
from devposture.policy.reasons import render

# The policy's own words for a row's clause and check: in JSON and CSV, not in the table.
TEXT_COLUMNS = FILE_ONLY_COLUMNS

FLEET_COLUMNS: tuple[str, ...] = (
    "clause", "check", "devices", "pass", "grace", "fail", "unknown", "exempt", "stale",
    "pass_rate_percent", *TEXT_COLUMNS,
)  # fmt: skip
# verdict: the latest report's judgment (PASS, FAIL, UNKNOWN); state: the standing over time
# (adds GRACE, EXEMPT, STALE).
DEVICE_COLUMNS: tuple[str, ...] = (
    "device", "hostname", "os", "clause", "check", "verdict", "state", "since", "reason",
    "reason_text", "evidence", "remediation_zh", "remediation_en", *TEXT_COLUMNS,
)  # fmt: skip
HISTORY_COLUMNS: tuple[str, ...] = (
    "clause", "check", "state", "from", "until", "hours", "reason", "reason_text",
    *TEXT_COLUMNS,
)  # fmt: skip
FAILING_COLUMNS: tuple[str, ...] = (
    "device",
    "hostname",
    "clause",
    "check",
    "failing_since",
    "days",
    "reason",
    "reason_text",
    *TEXT_COLUMNS,
)


def _texts(policy: Policy | None, check_id: str) -> Row:
    """The clause id and the clause's and check's texts for a row about `check_id`."""
    check = policy.check(check_id) if policy is not None else None
    if policy is None or check is None:
        return {"clause": None} | dict.fromkeys(TEXT_COLUMNS)
    clause = policy.clause(check.clause)
    return {
        "clause": check.clause,
        "clause_title_zh": clause.title_zh, "clause_title_en": clause.title_en,
        "clause_text_zh": clause.text_zh, "clause_text_en": clause.text_en,
        "check_title_zh": check.title_zh, "check_title_en": check.title_en,
    }  # fmt: skip


class _Reasons:
    """Stored reasons as people read them, each distinct one rendered once per listing (a
    fleet's reasons repeat)."""

    def __init__(self, policy: Policy | None, lang: Lang) -> None:
        self.zone, self.lang = zone_of(policy), lang
        self.seen: dict[str, str] = {}

    def columns(self, stored: str) -> Row:
        """The `reason` (as stored) and `reason_text` columns of a row."""
        text = self.seen.get(stored)
        if text is None:
            text = self.seen[stored] = render(stored, self.lang, self.zone)
        return {"reason": stored, "reason_text": text}


def _evidence(collected: dt.datetime, zone: dt.tzinfo, lang: Lang) -> str:
    """The `evidence` column: which report the verdict came from, in the reader's language."""
    return said("report collected {when}", when=shown(collected, zone)).worded(lang)


def _when(moment: dt.datetime | None, policy: Policy | None) -> str | None:
    """A row's time in the company's time zone, with its offset (`company_time.stamp`)."""
    return stamp(moment, zone_of(policy))


def _standings(
    store: Store, policy: Policy, at: dt.datetime
) -> tuple[dict[str, DeviceSeen], list[Standing]]:
    """The devices enrolled by `at` (by id) and their standings, from one read of each table."""
    devices = store.reports.devices_seen(at)
    judged = standings(
        devices, store.reports.state_changes(at), policy, at, store.waivers.recorded()
    )
    return {d.device_id: d for d in devices}, judged


def _members(store: Store, group: str | None) -> set[str] | None:
    """The ids of a group's devices (None: no group asked for, every device)."""
    return None if group is None else {d.device_id for d in store.identity.devices(group=group)}


def fleet_rows(
    store: Store, policy: Policy, at: dt.datetime, *, current: bool = False, exact: bool = False,
    group: str | None = None,
) -> list[Row]:  # fmt: skip
    """Per check: how many devices stand in each state at `at`, and the share that pass; of
    one group's devices (as grouped now) when `group` is given. Counted in SQL: `current`
    (the moment is now) for the whole fleet from one index (`fleet.fleet_figures`), for a
    group from its devices' verdicts (`fleet.group_figures`), else device by device as of
    the moment (`fleet_figures_as_of`). `exact` judges every device through
    `compliance.standings` instead: the reference the SQL counts are tested against, and
    slow over a large fleet."""
    if exact:
        counts: dict[str, dict[str, int]] = {
            c.check_id: dict.fromkeys(STATES, 0) for c in policy.checks
        }
        members = _members(store, group)
        for standing in _standings(store, policy, at)[1]:
            if members is None or standing.device_id in members:
                counts[standing.check_id][standing.state] += 1
    elif current and group is None:
        counts = store.fleet.fleet_figures(policy, at).by_check
    elif current and group is not None:
        counts = store.fleet.group_figures(policy, at, group)
    else:
        counts = store.fleet.fleet_figures_as_of(policy, at, group)
    rows: list[Row] = []
    for check in policy.checks:
        per_state = counts[check.check_id]
        total = sum(per_state.values())
        row: Row = _texts(policy, check.check_id) | {"check": check.check_id, "devices": total}
        row |= {state.lower(): per_state[state] for state in STATES}
        # A number (a spreadsheet sums and charts it), the unit in the name; none of no devices.
        row["pass_rate_percent"] = round(100 * per_state["PASS"] / total, 1) if total else None
        rows.append(row)
    return rows


def device_rows(
    store: Store, policy: Policy, at: dt.datetime, device_id: str | None = None,
    *, lang: Lang = "zh",
) -> list[Row]:  # fmt: skip
    """Each check of one device (or of every device): state, since when, why, what to do."""
    results = [r for r in store.reports.device_results() if r.check_id is not None]
    # The current reason of a state that still holds, where the verdict was made by `at`.
    reasons = {
        (r.device_id, r.check_id or ""): (r.state or "", r.reason or "")
        for r in results
        if r.evaluated_at is not None and r.evaluated_at <= at
    }
    devices = {d.device_id: d for d in store.reports.devices_seen(at)}
    judged = standings(
        devices.values(),
        store.reports.state_changes(at),
        policy,
        at,
        store.waivers.recorded(),
        current=reasons,
    )
    zone, why = zone_of(policy), _Reasons(policy, lang)
    # The latest report's verdict and when it was collected, where it was judged by `at`: as
    # of a past moment, a verdict made later is not that moment's (the columns stay empty).
    latest = {
        (r.device_id, r.check_id): (r.state, _evidence(r.collected_at, zone, lang))
        for r in results
        if r.collected_at is not None and r.evaluated_at is not None and r.evaluated_at <= at
    }
    rows: list[Row] = []
    for standing in judged:
        if device_id is not None and standing.device_id != device_id:
            continue
        device, check = devices[standing.device_id], policy.check(standing.check_id)
        assert check is not None
        verdict, evidence = latest.get((standing.device_id, standing.check_id), (None, None))
        rows.append(_texts(policy, check.check_id) | {
            "device": standing.device_id, "hostname": device.hostname, "os": device.os_family,
            "check": check.check_id, "verdict": _state_cell(verdict),
            "state": _state_cell(standing.state), "since": _when(standing.since, policy),
            **why.columns(standing.reason),
            "evidence": evidence,
            "remediation_zh": "" if standing.state == "PASS" else check.remediation_zh,
            "remediation_en": "" if standing.state == "PASS" else check.remediation_en,
        })  # fmt: skip
    return rows


def failing_rows(
    store: Store, policy: Policy, at: dt.datetime, *, current: bool = False, offset: int = 0,
    limit: int | None = None, group: str | None = None, lang: Lang = "zh",
) -> list[Row]:  # fmt: skip
    """Devices failing a check, the longest-failing first (grace periods have run out).
    `current` (the moment is now) reads them in SQL from the current verdicts, `limit` of
    them from `offset` (a page) or all; `group`: only that group's devices."""
    why = _Reasons(policy, lang)
    if current:
        return [
            _texts(policy, f.check_id) | {
                "device": f.device_id, "hostname": f.hostname, "check": f.check_id,
                "failing_since": _when(f.since, policy),
                "days": round((at - f.since).total_seconds() / 86400, 1),
                **why.columns(f.reason),
            }
            for f in store.fleet.failing_now(policy, at, offset=offset, limit=limit, group=group)
        ]  # fmt: skip
    devices, judged = _standings(store, policy, at)
    members = _members(store, group)
    if members is not None:
        judged = [s for s in judged if s.device_id in members]
    failing = [s for s in judged if s.state == "FAIL" and s.since]
    failing.sort(key=lambda s: (s.since, s.device_id, s.check_id))
    rows: list[Row] = []
    for standing in failing:
        check = policy.check(standing.check_id)
        assert check is not None and standing.since is not None
        rows.append(_texts(policy, check.check_id) | {
            "device": standing.device_id, "hostname": devices[standing.device_id].hostname,
            "check": check.check_id,
            "failing_since": _when(standing.since, policy),
            "days": round((at - standing.since).total_seconds() / 86400, 1),
            **why.columns(standing.reason),
        })  # fmt: skip
    return rows


# A state still going on (at the moment asked for: now, or `--as-of`) ends 'now' in the files,
# as scripts read it; a person's table words it.
_GOING_ON = {"now": said("ongoing")}
# A verdict's or a standing's code (PASS, FAIL, ...) stays the code in JSON, CSV and an English
# table, where scripts and IT's habits read it; a Chinese table says it in the dashboard's words.
_STATE_WORDS = {"PASS": said("PASS"), "GRACE": said("GRACE"), "FAIL": said("FAIL"),
                "UNKNOWN": said("UNKNOWN"), "EXEMPT": said("EXEMPT"),
                "STALE": said("STALE")}  # fmt: skip


def _state_cell(code: str | None) -> str | None:
    return None if code is None else code_cell(code, _STATE_WORDS)


def history_rows(
    store: Store, device_id: str, at: dt.datetime, policy: Policy | None = None,
    *, lang: Lang = "zh",
) -> list[Row]:  # fmt: skip
    """Every state a device had on each check, from when until when: since when it has been
    failing, and how long each failure took to fix. With the policy, each row carries its
    clause and texts."""
    # The device's own changes (an index seek), not the fleet's filtered here; in the order
    # of time, then check, alike on both engines.
    changes = store.device_pages.changes(device_id, at)
    why = _Reasons(policy, lang)
    rows: list[Row] = []
    for check_id in dict.fromkeys(c[1] for c in changes):
        mine = [c for c in changes if c[1] == check_id]
        for current, following in zip(mine, [*mine[1:], None], strict=True):
            until = following[4] if following is not None else None
            hours = ((until or at) - current[4]).total_seconds() / 3600
            rows.append(_texts(policy, check_id) | {
                "check": check_id, "state": _state_cell(current[2]),
                "from": _when(current[4], policy),
                "until": _when(until, policy) if until else code_cell("now", _GOING_ON),
                "hours": round(hours, 1),
                **why.columns(current[3]),
            })  # fmt: skip
    return rows
