"""A device's standing on each check at any moment, derived from the state history.

Pure: the history, the devices and the policy in; standings out. The same function answers
"now" and "as of last Tuesday", so a report of the past is computed exactly as the present
one was. The rules, in order:

* STALE: no report received within the policy's window before that moment (a silent device is
  never shown as compliant, whatever it last said);
* the check's last state before that moment, where FAIL newer than the check's grace period
  reads GRACE ("failing, within grace until ...") and does not yet count as a failure;
* UNKNOWN when the device was never judged on that check.

A device IT revoked or retired by that moment has no standing at all (`standing_rule.in_fleet`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import overload

from devposture.collector.standing_rule import Facts, decide, in_fleet
from devposture.policy import Policy
from devposture.policy.reasons import encode

STATES = ("PASS", "GRACE", "FAIL", "UNKNOWN", "EXEMPT", "STALE")


@dataclass(frozen=True)
class DeviceSeen:
    device_id: str
    hostname: str
    os_family: str
    enrolled_at: dt.datetime
    last_report_at: dt.datetime | None
    left_at: dt.datetime | None = None  # when IT revoked or retired it (None: active)


@dataclass(frozen=True)
class Standing:
    device_id: str
    check_id: str
    state: str
    # A reason code (devposture.policy.reasons), wrapping the verdict's own: rendered per
    # language and time zone where it is shown.
    reason: str
    since: dt.datetime | None


@dataclass(frozen=True)
class Waiver:
    waiver_id: str
    device_id: str
    check_id: str
    owner: str
    reason: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None

    def active(self, at: dt.datetime) -> bool:
        """In force at `at`: made by then, not yet expired, not revoked by then."""
        revoked = self.revoked_at is not None and self.revoked_at <= at
        return self.created_at <= at < self.expires_at and not revoked


Change = tuple[str, str, str, str, dt.datetime]  # device, check, state, reason, since


def standings(
    devices: Iterable[DeviceSeen],
    changes: Iterable[Change],
    policy: Policy,
    at: dt.datetime,
    waivers: Iterable[Waiver] = (),
    *,
    current: Mapping[tuple[str, str], tuple[str, str]] | None = None,
) -> list[Standing]:
    """Every device's standing on every policy check at `at`. `changes` must be those up to
    `at`, oldest first; `devices` those enrolled by `at`, with their last report by `at`.
    A waiver active at `at` makes a check EXEMPT, but never a silent device: STALE wins. A
    device revoked or retired by `at` has left the fleet: it has no standing then.

    A state's reason is the one it began with, unless `current` gives the (state, reason) of
    the latest verdict by `at` per (device, check): while the state holds, that verdict's
    reason is the current one (a failure whose cause changed says the new cause)."""
    latest: dict[tuple[str, str], Change] = {}
    for change in changes:
        latest[(change[0], change[1])] = change
    waived = {(w.device_id, w.check_id): w for w in waivers if w.active(at)}
    window = dt.timedelta(hours=policy.stale_after_hours)
    out: list[Standing] = []
    for device in devices:
        if not in_fleet(_micros(device.left_at), _micros(at)):
            continue
        silent_since = device.last_report_at or device.enrolled_at
        if decide(Facts(silent=at - silent_since > window, waived=False, latest=None,
                        in_grace=False)) == "STALE":  # fmt: skip
            hours = policy.stale_after_hours
            reason = (
                encode("standing.stale", hours=hours, last=_seconds(device.last_report_at))
                if device.last_report_at
                else encode("standing.stale_never", hours=hours)
            )
            out += [
                Standing(device.device_id, c.check_id, "STALE", reason, silent_since + window)
                for c in policy.checks
            ]
            continue
        for check in policy.checks:
            found = latest.get((device.device_id, check.check_id))
            if found is not None and current is not None:
                now_state, now_reason = current.get((found[0], found[1]), ("", ""))
                if now_state == found[2] and now_reason:
                    found = (found[0], found[1], found[2], now_reason, found[4])
            waiver = waived.get((device.device_id, check.check_id))
            out.append(_standing(device.device_id, check.check_id, check.grace_hours, found,
                                 at, waiver=waiver))  # fmt: skip
    return out


_NOT_JUDGED = encode("standing.not_judged")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@overload
def _micros(moment: dt.datetime) -> int: ...
@overload
def _micros(moment: None) -> None: ...
def _micros(moment: dt.datetime | None) -> int | None:
    """A moment as the store keeps it (UTC epoch microseconds), for the rule's comparisons."""
    return None if moment is None else (moment - _EPOCH) // dt.timedelta(microseconds=1)


def _seconds(moment: dt.datetime) -> int:
    """A moment as a reason stores it: whole UTC epoch seconds."""
    return int(moment.timestamp())


def _standing(
    device_id: str, check_id: str, grace_hours: int, change: Change | None, at: dt.datetime,
    *, waiver: Waiver | None,
) -> Standing:  # fmt: skip
    """One standing of a device heard from within the window, by the standing rule."""
    grace_until = None if change is None else change[4] + dt.timedelta(hours=grace_hours)
    facts = Facts(silent=False, waived=waiver is not None,
                  latest=None if change is None else change[2],
                  in_grace=grace_until is not None and at < grace_until)  # fmt: skip
    state = decide(facts)
    unwaived_state = decide(dataclasses.replace(facts, waived=False))
    if change is None:
        unwaived = Standing(device_id, check_id, unwaived_state, _NOT_JUDGED, None)
    else:
        reason, since = change[3], change[4]
        if unwaived_state == "GRACE" and grace_until is not None:
            reason = encode("standing.grace", until=_seconds(grace_until), reason=reason)
        unwaived = Standing(device_id, check_id, unwaived_state, reason, since)
    if state != "EXEMPT" or waiver is None:
        return unwaived
    return Standing(
        device_id, check_id, "EXEMPT",
        encode("standing.exempt", waiver=waiver.waiver_id, until=_seconds(waiver.expires_at),
               owner=waiver.owner, why=waiver.reason, state=unwaived.state),
        waiver.created_at,
    )  # fmt: skip
