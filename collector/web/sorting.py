"""The device list's order: by a column the person clicked, on the server (the list is paged,
so a browser could only ever sort the page it has), from `?sort=COLUMN&order=asc|desc`.

The orders themselves are the store's (`store.dashboard.ordered`, in SQL): host names in
natural order (PC-2 before PC-10), a check's column by how much it needs attention (FAIL
first when ascending), ties in host order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devposture.collector.store.dashboard_reads import ORDER_COLUMNS

CHECK_PREFIX = "check:"


@dataclass(frozen=True)
class Sort:
    """A column (`ORDER_COLUMNS`, or `check:ID`) and the direction."""

    column: str = "host"
    descending: bool = False

    @classmethod
    def of_query(cls, q: Mapping[str, str]) -> Sort:
        column = q.get("sort", "host")
        known = column in ORDER_COLUMNS or column.startswith(CHECK_PREFIX)
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


def in_order(matching: list[str], order: list[str]) -> list[str]:
    """The `matching` devices in `order` (every device's); one enrolled since `order` was
    read goes last."""
    wanted = set(matching)
    ordered = [d for d in order if d in wanted]
    if len(ordered) < len(wanted):
        seen = set(ordered)
        ordered += [d for d in matching if d not in seen]
    return ordered
