"""What needs IT's attention now, found in the store: each item by a stable key (so a digest
can tell what is new, still open, or resolved) with what it says about itself.

Only what is safe to send outside is kept: device ids and hostnames, check ids, titles and the
clause each checks, and times. Never a check's reason: the public Wi-Fi check's names the
network, the backup check's may name folders.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.store import Store
from devposture.collector.store.alerts import Detail
from devposture.policy import Policy

FAILING, STALE, CLONE, CERTIFICATE, DISK = "failing", "stale", "clone", "certificate", "disk"
KINDS = (FAILING, STALE, CLONE, CERTIFICATE, DISK)
# A collector's problems count while it reported them within this long (one gone for good
# stops counting, and its items read as resolved).
PROBLEMS_HEARD_WITHIN = dt.timedelta(days=1)
# Longest hostname told (an agent reports it: bounded, and kept to one line).
HOSTNAME_CHARS = 64

Items = dict[str, tuple[str, Detail]]  # key -> kind, detail


def iso(moment: dt.datetime) -> str:
    """A UTC time as the webhook's JSON writes it: 2026-11-28T02:00:00Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line(text: str, limit: int = HOSTNAME_CHARS) -> str:
    """Text someone else wrote (an agent's hostname, a waiver's owner) as told: one line,
    without markdown's marks, at most `limit` characters."""
    kept = "".join(" " if not c.isprintable() or c in "`*_[]<>#|\\" else c for c in text)
    return " ".join(kept.split())[:limit]


def hostname(name: str, device_id: str) -> str:
    """A device's hostname as told: one line, without markdown's marks, at most
    HOSTNAME_CHARS; the device id's start when it reported none."""
    return one_line(name) or device_id[:12]


def current(store: Store, policy: Policy, now: dt.datetime) -> Items:
    """Every item open now: failures past grace, STALE devices, suspected clones, and the
    collectors' own problems."""
    items: Items = {}
    titles = {c.check_id: (c.title_zh, c.title_en, c.clause) for c in policy.checks}
    for f in store.alerts.failing(policy, now):
        zh, en, clause = titles.get(f.check_id, (f.check_id, f.check_id, ""))
        name = hostname(f.hostname, f.device_id)
        items[f"{FAILING}:{f.device_id}:{f.check_id}"] = (FAILING, {
            "kind": FAILING, "device_id": f.device_id, "hostname": name, "check": f.check_id,
            "check_title_zh": zh, "check_title_en": en, "clause": clause, "since": iso(f.since),
        })  # fmt: skip
    for kind, rows in ((STALE, store.alerts.stale(policy, now)), (CLONE, store.alerts.clones())):
        for device_id, name, since in rows:
            items[f"{kind}:{device_id}"] = (kind, {
                "kind": kind, "device_id": device_id, "hostname": hostname(name, device_id),
                "since": iso(since),
            })  # fmt: skip
    for key, detail in store.alerts.problems(now - PROBLEMS_HEARD_WITHIN).items():
        items[key] = (str(detail["kind"]), detail)
    return items
