"""Report views over the stored verdicts, for IT at the terminal and for spreadsheets."""

from __future__ import annotations

from collector.checks import CHECKS, State
from collector.render import Row
from collector.store import Store

FLEET_COLUMNS = ("device", "hostname", "os", "clause", "check", "state", "reason", "collected_at")


def fleet_rows(store: Store) -> list[Row]:
    """One row per device and check: its latest verdict, or UNKNOWN if it never reported."""
    devices: dict[str, tuple[Row, dict[str, Row]]] = {}
    for item in store.device_results():
        device: Row = {"device": item.device_id, "hostname": item.hostname, "os": item.os_family}
        _, verdicts = devices.setdefault(item.device_id, (device, {}))
        if item.check_id is not None and item.collected_at is not None:
            verdicts[item.check_id] = {
                "state": item.state,
                "reason": item.reason,
                "collected_at": item.collected_at.isoformat(timespec="seconds"),
            }
    never: Row = {
        "state": State.UNKNOWN.value,
        "reason": "no report received from this device yet",
        "collected_at": None,
    }
    return [
        device
        | {"clause": check.clause, "check": check.check_id}
        | verdicts.get(check.check_id, never)
        for device, verdicts in devices.values()
        for check in CHECKS
    ]
