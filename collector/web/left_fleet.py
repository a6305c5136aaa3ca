"""The page of a device that has left the fleet (IT revoked or retired it).

Such a device counts in no figure from that moment (`standing_rule.in_fleet`), and its
page judged it as a member all the same: silent since it left, it read STALE on every check
beside its status "retired", with each check's remedy, as if a laptop in use had gone quiet.
Its page now says that it left, when and why, and shows what it last stood on as history:
each check's last verdict before it left (PASS, FAIL or UNKNOWN as judged), with since when.
Never STALE, GRACE or EXEMPT, which are what the fleet asks of a member now; nothing is
asked of it any more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from devposture.collector.compliance import Change, Standing
from devposture.collector.standing_rule import ACTIVE
from devposture.collector.store.device_pages import Verdict
from devposture.collector.store.identity import DeviceInfo
from devposture.policy import Policy
from devposture.policy.reasons import encode

_NOT_JUDGED = encode("standing.not_judged")


@dataclass(frozen=True)
class LeftFleet:
    """How a device left: `status` revoked or retired, `at` when (None: a status without its
    moment, an operator's edit, which the fleet reads as left since ever), `reason` IT's."""

    status: str
    at: dt.datetime | None
    reason: str


def left_fleet(device: DeviceInfo, at: dt.datetime) -> LeftFleet | None:
    """How `device` had left the fleet by `at`, or None while it is a member then (active,
    or revoked or retired later: `standing_rule.sql_left_fleet` in Python)."""
    if device.status == ACTIVE or (device.status_at is not None and device.status_at > at):
        return None
    return LeftFleet(device.status, device.status_at, device.status_reason or "")


def last_verdicts(
    device_id: str, history: Iterable[Change], policy: Policy, verdicts: Mapping[str, Verdict],
    left: LeftFleet,
) -> dict[str, Standing]:  # fmt: skip
    """Each check's last state before the device left (`history`: its changes up to then,
    oldest first), by check id: the state and since when it held, with the reason of the
    latest verdict that kept it (as the page words a standing that still holds), or UNKNOWN
    when the check was never judged."""
    last: dict[str, Change] = {}
    for each in history:
        last[each[1]] = each
    out: dict[str, Standing] = {}
    for check in policy.checks:
        change = last.get(check.check_id)
        if change is None:
            out[check.check_id] = Standing(device_id, check.check_id, "UNKNOWN", _NOT_JUDGED, None)
            continue
        verdict = verdicts.get(check.check_id)
        kept = (verdict is not None and verdict.state == change[2]
                and (left.at is None or verdict.collected_at <= left.at))  # fmt: skip
        reason = verdict.reason if kept and verdict is not None else change[3]
        out[check.check_id] = Standing(device_id, check.check_id, change[2], reason, change[4])
    return out
