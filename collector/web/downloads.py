"""The dashboard's downloads: each table as CSV, XLSX or JSON (`/download/TABLE?format=…`,
with the page's own filters), the same files `report …` writes (`collector.exports`).

A download holds every row the table's filters match, not only the page shown: IT downloads
to work on the whole list in Excel. Tables whose CLI twin exists (the overview is `report
fleet`, failing-longest `report failing`, a device's checks `report device ID` and its
timelines `report history ID`) carry the same columns, clause texts included; the device list
has a column per check.
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
    failing_rows,
    fleet_rows,
    history_rows,
)
from devposture.collector.store.device_list import ListedDevice
from devposture.collector.web.views import Filters, Views

Table = tuple[tuple[str, ...], list[Row]]
DEVICE_LIST_COLUMNS = ("device", "hostname", "os", "group", "last_report")


def _fleet(views: Views, q: Mapping[str, str]) -> Table:
    group = q.get("group", "").strip()[:64] or None
    rows = fleet_rows(views.store, views.policy(), utcnow(), current=True, group=group)
    return FLEET_COLUMNS, rows


def _failing(views: Views, q: Mapping[str, str]) -> Table:
    return FAILING_COLUMNS, failing_rows(views.store, views.policy(), utcnow(), current=True)


def _listed_row(device: ListedDevice, checks: tuple[str, ...], zone: dt.tzinfo) -> Row:
    row: Row = {
        "device": device.device_id, "hostname": device.hostname, "os": device.os_family,
        "group": device.group, "last_report": stamp(device.last_report_at, zone),
    }  # fmt: skip
    return row | {check: device.states.get(check, "UNKNOWN") for check in checks}


def _devices(views: Views, q: Mapping[str, str]) -> Table:
    policy, at = views.policy(), utcnow()
    reader = views.store.device_list
    matching = reader.matching(policy, at, Filters.of_query(q).wanted())
    checks = tuple(c.check_id for c in policy.checks)
    zone = zone_of(policy)
    rows = [_listed_row(d, checks, zone) for d in reader.listed(policy, at, matching)]
    return (*DEVICE_LIST_COLUMNS, *checks), rows


def _device(views: Views, q: Mapping[str, str]) -> Table:
    rows = device_rows(views.store, views.policy(), utcnow(), q.get("device", ""))
    return DEVICE_COLUMNS, rows


def _history(views: Views, q: Mapping[str, str]) -> Table:
    rows = history_rows(views.store, q.get("device", ""), utcnow(), views.policy())
    return HISTORY_COLUMNS, rows


TABLES: dict[str, Callable[[Views, Mapping[str, str]], Table]] = {
    "fleet": _fleet, "failing": _failing, "devices": _devices, "device": _device,
    "history": _history,
}  # fmt: skip


def table_of(views: Views, table: str, q: Mapping[str, str]) -> Table | None:
    """The columns and every row of one table (None: no such table)."""
    make = TABLES.get(table)
    return None if make is None else make(views, q)


def response(table: str, fmt: str, columns: tuple[str, ...], rows: list[Row]) -> Response:
    """The file, named for the table and the day, as an attachment."""
    stem = f"devposture-{table}-{utcnow():%Y-%m-%d}"
    data = export(rows, columns, fmt, title=f"{table}")
    return Response(data, media_type=MEDIA_TYPES[fmt], headers={
        "content-disposition": f'attachment; filename="{file_name(stem, fmt)}"',
    })  # fmt: skip


def wanted(request: Request) -> tuple[str, str] | None:
    """The table and the format asked for (None: not one the dashboard offers)."""
    table = str(request.path_params.get("table", ""))
    fmt = request.query_params.get("format", "csv")
    return (table, fmt) if table in TABLES and fmt in FILE_FORMATS else None
