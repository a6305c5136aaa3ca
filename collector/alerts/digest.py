"""Composing a digest: what is new since the last, what is still open and due a reminder, what
a waiver now covers, what was resolved; recorded once however many collectors share the
database.

At most one digest per interval: `compose` does nothing before `digest_minutes` have passed
since the last one any collector recorded, and the recording itself refuses when another
collector recorded one meanwhile (store.alerts.record_digest). What is found in the store is
compared with the open items kept in the database, so a restart tells nothing again.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.alerts import detect
from devposture.collector.alerts.settings import AlertSettings
from devposture.collector.store import Store
from devposture.collector.store.alerts import Composition, Detail
from devposture.collector.store.base import from_us, to_us
from devposture.policy import Policy

NEW, REMINDER, RESOLVED = "new", "reminder", "resolved"
# A failure told before that a waiver now covers while the device still does not pass it.
WAIVED = "waived"
STATUSES = (NEW, REMINDER, WAIVED, RESOLVED)
# How long an item must stay away to read resolved: one that comes and goes (a laptop moving
# between public Wi-Fi without VPN and the office each hour, a disk around its threshold)
# stays open, told once and reminded every repeat_hours, instead of told new and resolved by
# turns at every digest. A failure back after it was told resolved is told new at once.
RESOLVED_AFTER = dt.timedelta(hours=2)
# Kept in an open item's detail while it is away: when it went (UTC microseconds); never told.
ABSENT = "absent_since_us"


def _told(detail: Detail) -> Detail:
    """An item's detail as told: without what the store keeps for itself."""
    return {k: v for k, v in detail.items() if k != ABSENT}


def compose(
    store: Store, policy: Policy, settings: AlertSettings, now: dt.datetime
) -> Composition | None:
    """This interval's digest, recorded and queued on each channel; None when one is not due
    yet (or another collector recorded it). A digest with nothing to tell is recorded too (it
    marks the interval) but queues no message."""
    previous = store.alerts.last_composed()
    if previous is not None and now < previous + dt.timedelta(minutes=settings.digest_minutes):
        return None
    found = detect.current(store, policy, now)
    told = store.alerts.open_items()
    # A device IT revoked or retired is no longer one to fix: its failures are not told, and
    # those told before close without a word (told as resolved, a stolen laptop's failures
    # read as fixed once it fell silent).
    named = [d.get("device_id") for _, d in found.values()]
    named += [i.detail.get("device_id") for i in told.values()]
    gone = store.alerts.inactive({str(d) for d in named if d})
    found = {k: v for k, v in found.items() if v[1].get("device_id") not in gone}
    repeat = dt.timedelta(hours=settings.repeat_hours)
    opened = {key: item for key, item in found.items() if key not in told}
    reminded = [k for k in found if k in told and now - told[k].told >= repeat]
    stale_devices = {d["device_id"] for kind, d in found.values() if kind == detect.STALE}
    # An item away reads resolved once it has stayed away RESOLVED_AFTER: until then it is
    # kept open, marked with when it went (`kept`), and one back meanwhile is unmarked
    # without a word. An item of a revoked or retired device closes at once.
    kept: dict[str, Detail] = {
        k: {**found[k][1]} for k in found if k in told and ABSENT in told[k].detail
    }
    # A failure told before that left the failing set because a waiver now covers it (the
    # device still failing, or unknown) is told waived at once, with the waiver's end and
    # owner: told resolved, IT and auditors read the device as fixed. Closed, it is not told
    # again while the waiver stands; once the waiver ends, a device still failing is new.
    away = {
        (str(i.detail["device_id"]), str(i.detail["check"])): k
        for k, i in told.items()
        if k not in found and i.kind == detect.FAILING and i.detail.get("device_id") not in gone
    }
    covered = store.alerts.waived_failures(set(away), now) if away else {}
    waived = {away[pair]: cover for pair, cover in covered.items()}
    resolved = []
    for k, item in told.items():
        if k in found or k in waived:
            continue
        went = item.detail.get(ABSENT)
        if item.detail.get("device_id") in gone or (
            went is not None and now - from_us(int(went)) >= RESOLVED_AFTER
        ):
            resolved.append(k)
        elif went is None:
            kept[k] = {**item.detail, ABSENT: to_us(now)}
    items: list[Detail] = [{**d, "status": NEW} for _, d in opened.values()]
    items += [{**found[k][1], "status": REMINDER} for k in reminded]
    items += [
        {**_told(told[k].detail), "status": WAIVED, "waived_until": detect.iso(until),
         "waiver_owner": detect.one_line(owner)}
        for k, (until, owner) in waived.items()
    ]  # fmt: skip
    # A failing device that went silent is told as STALE, not as resolved.
    items += [
        {**_told(told[k].detail), "status": RESOLVED}
        for k in resolved
        if not (told[k].kind == detect.FAILING and told[k].detail["device_id"] in stale_devices)
        and told[k].detail.get("device_id") not in gone
    ]
    composition = Composition(
        composed=now, previous=previous, opened=opened, reminded=reminded, resolved=resolved,
        items=_ordered(items), open_items=len(told) + len(opened) - len(resolved) - len(waived),
        channels=settings.channels, kept=kept, waived=list(waived),
    )  # fmt: skip
    return composition if store.alerts.record_digest(composition) else None


def _ordered(items: list[Detail]) -> list[Detail]:
    """New first, then reminders, then waived, then resolved; within each by kind (as
    `detect.KINDS` lists them), then the oldest first."""
    return sorted(items, key=lambda d: (
        STATUSES.index(str(d["status"])), detect.KINDS.index(str(d["kind"])),
        str(d.get("since", d.get("expires_at", ""))), str(d.get("hostname", "")),
        str(d.get("check", "")),
    ))  # fmt: skip
