"""The dashboard's downloads: each table as CSV, XLSX or JSON (`/download/TABLE?format=…`,
with the page's own filters), the same files `report …` writes (`collector.exports`).

A download holds every row the table's filters match, not only the page shown: IT downloads
to work on the whole list in Excel. Tables whose CLI twin exists (the overview is `report
fleet`, failing-longest `report failing`, a device's checks `report device ID` and its
timelines `report history ID`) carry the same columns, clause texts included; the device list
has a column per check, in the page's order. Waivers, tokens and the audit log carry the
columns of `waiver list --all`, `token list` and `audit log` (the audit log for the auditor
and admin roles only: `AUDITOR_TABLES`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from devposture.collector.clock import utcnow
from devposture.collector.company_time import stamp, zone_of
from devposture.collector.exports import FILE_FORMATS, MEDIA_TYPES, export, file_name
from devposture.collector.render import Row
from devposture.collector.reports import (
    DEVICE_COLUMNS,
    FAILING_COLUMNS,
    FLEET_COLUMNS,
    HISTORY_COLUMNS,
    device_rows,
    fleet_rows,
    history_rows,
)
from devposture.collector.store.device_list import ListedDevice
from devposture.collector.web import records
from devposture.collector.web.failing_rows import failing_page_rows
from devposture.collector.web.views import (
    REPORTS_SHOWN,
    FailingFilters,
    Filters,
    Views,
    trend_days,
)
from devposture.policy.catalogs import Lang

Table = tuple[tuple[str, ...], list[Row]]
DEVICE_LIST_COLUMNS = ("device", "hostname", "os", "group", "last_report")


def _fleet(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    group = q.get("group", "").strip()[:64] or None
    rows = fleet_rows(views.store, views.policy(), utcnow(), current=True, group=group)
    return FLEET_COLUMNS, rows


def _failing(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    policy, at = views.policy(), utcnow()
    wanted = FailingFilters.of_query(q).wanted(policy)
    return FAILING_COLUMNS, failing_page_rows(
        policy, at, views.store.dashboard.failing(policy, at, wanted), lang
    )


def _listed_row(device: ListedDevice, checks: tuple[str, ...], zone: dt.tzinfo) -> Row:
    row: Row = {
        "device": device.device_id, "hostname": device.hostname, "os": device.os_family,
        "group": device.group, "last_report": stamp(device.last_report_at, zone),
    }  # fmt: skip
    return row | {check: device.states.get(check, "UNKNOWN") for check in checks}


def _devices(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    policy, at, matching = views.ordered_ids(Filters.of_query(q))
    reader = views.store.device_list
    checks = tuple(c.check_id for c in policy.checks)
    zone = zone_of(policy)
    rows = [_listed_row(d, checks, zone) for d in reader.listed(policy, at, matching)]
    return (*DEVICE_LIST_COLUMNS, *checks), rows


def _device(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    rows = device_rows(views.store, views.policy(), utcnow(), q.get("device", ""), lang=lang)
    return DEVICE_COLUMNS, rows


def _history(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    rows = history_rows(views.store, q.get("device", ""), utcnow(), views.policy(), lang=lang)
    return HISTORY_COLUMNS, rows


WAIVER_COLUMNS = ("waiver", "device", "hostname", "check", "owner", "reason", "created",
                  "expires", "revoked", "status")  # fmt: skip
TOKEN_COLUMNS = ("token", "group", "created", "expires", "uses_left", "enrolled", "status")
AUDIT_COLUMNS = ("at", "actor", "credential", "role", "command", "arguments", "outcome",
                 "message", "peer")  # fmt: skip
REPORT_COLUMNS = ("report", "received", "collected", "agent_version")


def _waivers(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    policy, at = views.policy(), utcnow()
    zone = zone_of(policy)
    rows: list[Row] = [
        {"waiver": v.waiver.waiver_id, "device": v.waiver.device_id, "hostname": v.hostname,
         "check": v.waiver.check_id, "owner": v.waiver.owner, "reason": v.waiver.reason,
         "created": stamp(v.waiver.created_at, zone), "expires": stamp(v.waiver.expires_at, zone),
         "revoked": stamp(v.waiver.revoked_at, zone), "status": v.state}
        for v in records.waiver_views(views, at)
    ]  # fmt: skip
    return WAIVER_COLUMNS, rows


def _tokens(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    policy, at = views.policy(), utcnow()
    zone = zone_of(policy)
    rows: list[Row] = [
        {"token": v.token.token_id, "group": v.token.group,
         "created": stamp(v.token.created_at, zone), "expires": stamp(v.token.expires_at, zone),
         "uses_left": v.token.uses_left, "enrolled": v.enrolled, "status": v.state}
        for v in records.token_views(views, at)
    ]  # fmt: skip
    return TOKEN_COLUMNS, rows


def _audit(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    """Every entry, the oldest first (as `audit log` prints them)."""
    zone = zone_of(views.policy())
    rows: list[Row] = [
        {"at": stamp(e.at, zone), "actor": e.actor, "credential": e.credential_id,
         "role": e.role, "command": e.command, "arguments": e.arguments,
         "outcome": e.outcome, "message": e.message, "peer": e.peer}
        for e in views.store.admin.audit_entries()
    ]  # fmt: skip
    return AUDIT_COLUMNS, rows


def _reports(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    """A device's latest reports, as its page lists them."""
    zone = zone_of(views.policy())
    received, _ = views.store.device_pages.reports(q.get("device", ""), REPORTS_SHOWN)
    rows: list[Row] = [
        {"report": r.report_id, "received": stamp(r.received_at, zone),
         "collected": stamp(r.collected_at, zone), "agent_version": r.agent_version}
        for r in received
    ]  # fmt: skip
    return REPORT_COLUMNS, rows


def _trend(views: Views, q: Mapping[str, str], lang: Lang) -> Table:
    """The trend's values: a row per check, a column per week's end, in %: headed by the
    week's last day (local date; the last column today's, now), as the page labels them."""
    policy, at = views.policy(), utcnow()
    moments, series = views.trend_points(policy, at)
    weeks = tuple(day.isoformat() for day in trend_days(moments, zone_of(policy)))
    rows: list[Row] = []
    for line in series:
        spec = policy.check(line.name)
        row: Row = {"clause": spec.clause if spec else None, "check": line.name,
                    "check_title_zh": spec.title_zh if spec else None,
                    "check_title_en": spec.title_en if spec else None}  # fmt: skip
        rows.append(row | {
            week: None if value is None else round(value, 1)
            for week, value in zip(weeks, line.values, strict=True)
        })  # fmt: skip
    return ("clause", "check", "check_title_zh", "check_title_en", *weeks), rows


# Each takes the page's language: the reasons' words (`reason_text`) and the evidence are in it.
TABLES: dict[str, Callable[[Views, Mapping[str, str], Lang], Table]] = {
    "fleet": _fleet, "failing": _failing, "devices": _devices, "device": _device,
    "history": _history, "waivers": _waivers, "tokens": _tokens, "audit": _audit,
    "reports": _reports, "trend": _trend,
}  # fmt: skip
# Tables only the auditor and admin roles may download (`auth.may_read_audit`).
AUDITOR_TABLES = frozenset({"audit"})


def table_of(views: Views, table: str, q: Mapping[str, str], lang: Lang = "zh") -> Table | None:
    """The columns and every row of one table (None: no such table), its words in `lang`."""
    make = TABLES.get(table)
    return None if make is None else make(views, q, lang)


def response(
    table: str, fmt: str, columns: tuple[str, ...], rows: list[Row], zone: dt.tzinfo
) -> Response:
    """The file, named for the table and the day in the company's time zone (`zone`: a
    download at 01:30 in Beijing is of that day, not of the day before in UTC), as an
    attachment."""
    stem = f"devposture-{table}-{utcnow().astimezone(zone):%Y-%m-%d}"
    data = export(rows, columns, fmt, title=f"{table}")
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={
        "content-disposition": f'attachment; filename="{file_name(stem, fmt)}"',
    })  # fmt: skip


def wanted(request: Request) -> tuple[str, str] | None:
    """The table and the format asked for (None: not one the dashboard offers)."""
    table = str(request.path_params.get("table", ""))
    fmt = request.query_params.get("format", "csv")
    return (table, fmt) if table in TABLES and fmt in FILE_FORMATS else None
