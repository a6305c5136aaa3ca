"""The device list's order: by a column the person clicked, on the server (the list is paged,
so a browser could only ever sort the page it has).

Host names sort naturally (PC-2 before PC-10, case folded): IT names machines with numbers,
and a plain string order puts PC-10 between PC-1 and PC-2. A check's column sorts by how
much it needs attention (FAIL first when ascending). Ties keep the host-name order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from devposture.collector.store.dashboard_reads import SortColumns

_DIGITS = re.compile(r"(\d+)")
# A check's states, the ones needing attention first.
STATE_ORDER = {"FAIL": 0, "GRACE": 1, "UNKNOWN": 2, "STALE": 3, "EXEMPT": 4, "PASS": 5}
COLUMNS = ("host", "device", "os", "group", "last_report")
CHECK_PREFIX = "check:"
_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)

NaturalKey = tuple[tuple[int, int, str], ...]


def natural_key(text: str) -> NaturalKey:
    """`text` split into runs of digits (compared as numbers) and the rest (case folded)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
        for part in _DIGITS.split(text)
        if part
    )


@dataclass(frozen=True)
class Sort:
    """A column (`COLUMNS`, or `check:ID`) and the direction."""

    column: str = "host"
    descending: bool = False

    @classmethod
    def of_query(cls, q: Mapping[str, str], check_ids: list[str] | None = None) -> Sort:
        column = q.get("sort", "host")
        known = column in COLUMNS or (
            column.startswith(CHECK_PREFIX)
            and (check_ids is None or column.removeprefix(CHECK_PREFIX) in check_ids)
        )
        return cls(column if known else "host", q.get("order") == "desc")

    @property
    def check(self) -> str:
        """The check whose column this is ("" for the device's own columns)."""
        return self.column.removeprefix(CHECK_PREFIX) if self.column.startswith(
            CHECK_PREFIX) else ""  # fmt: skip

    def toggled(self, column: str) -> dict[str, str]:
        """The query parameters of a click on `column`'s title: that column ascending, or
        reversed when it is already the one sorted by."""
        descending = column == self.column and not self.descending
        return {"sort": column, "order": "desc" if descending else "asc"}


def ordered(
    device_ids: list[str], sort: Sort, columns: Mapping[str, SortColumns],
    states: Mapping[str, str] | None = None,
) -> list[str]:  # fmt: skip
    """`device_ids` in `sort`'s order (`states`: each device's standing on the sorted check).
    A device missing from `columns` (enrolled since they were read) sorts last."""
    absent = SortColumns("", "", "", None)

    def host(device_id: str) -> tuple[NaturalKey, str]:
        return natural_key(columns.get(device_id, absent).hostname), device_id

    by_host = sorted(device_ids, key=host)
    key: Callable[[str], object]
    if sort.column == "host":
        return by_host[::-1] if sort.descending else by_host
    if sort.column == "device":
        key = str
    elif sort.column == "os":
        key = lambda d: columns.get(d, absent).os_family.casefold()  # noqa: E731
    elif sort.column == "group":
        key = lambda d: natural_key(columns.get(d, absent).group)  # noqa: E731
    elif sort.column == "last_report":
        key = lambda d: columns.get(d, absent).last_report_at or _NEVER  # noqa: E731
    else:
        found = states or {}
        key = lambda d: STATE_ORDER.get(found.get(d, "UNKNOWN"), 2)  # noqa: E731
    return sorted(by_host, key=key, reverse=sort.descending)
