"""A small fleet with every standing in it, written through the store's own methods into a
real database (a SQLite file, or PostgreSQL): devices that report passing, failing (past and
within their grace) and unknown, some silent past the window, some never heard from, waivers
in force, expired and revoked, two OS families and two groups, and devices IT revoked or
retired at LEFT (out of the fleet from then: a silent one, a never heard from, a waived one,
one of a group). The SQL views are tested equal to judging this fleet from its history
(`compliance.standings`)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from devposture.collector.compliance import Waiver
from devposture.collector.store import (
    CheckResult,
    DatabaseTarget,
    DeviceRecord,
    ReportRecord,
    Store,
)
from devposture.collector.tokens import new_token
from devposture.policy import Policy, default_policy

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
DEVICES = 60
# When IT revoked devices 0 and 9 and retired 3 and 7 (the moments tested fall on both sides).
LEFT = NOW - dt.timedelta(hours=3)
LEAVERS = {0: "revoked", 9: "revoked", 3: "retired", 7: "retired"}


def device_id_of(n: int) -> str:
    return f"{n:02x}" + "ab" * 15


def enroll(store: Store, device_id: str) -> None:
    token = new_token()
    enrolled = NOW - dt.timedelta(days=20)
    store.identity.add_token(token, enrolled, enrolled + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(
        token, enrolled, DeviceRecord(device_id, "01", NOW + dt.timedelta(days=90))
    )


def report(device_id: str, n: int, at: dt.datetime, host: str, os_family: str) -> ReportRecord:
    return ReportRecord(
        f"{device_id}-{n}", device_id, at, at, "1", b"body", host, os_family, "os", "1"
    )


def mixed_fleet(database: DatabaseTarget | Path) -> tuple[Store, Policy]:
    """The store (open: the caller closes it) and the policy it was judged by."""
    rng = random.Random(11)
    policy = default_policy()
    store = Store.open(database)
    for n in range(DEVICES):
        device_id = device_id_of(n)
        enroll(store, device_id)
        if n % 10 == 9:
            continue  # never reported: UNKNOWN on every check, STALE once the window passes
        host = rng.choice(["Laptop-Wang", "laptop-li", "Desk-Zhào", "pc"]) + f"-{n % 7}"
        os_family = rng.choice(["linux", "windows"])
        # Silent devices last reported days ago; the others within the hour. The earlier
        # reports make failures that began long ago, the later ones fresh failures in grace.
        last = NOW - (dt.timedelta(days=5) if n % 8 == 7 else dt.timedelta(minutes=n))
        times = sorted({last - dt.timedelta(hours=rng.choice([0, 2, 30, 200])), last})
        for k, at in enumerate(times):
            results = [
                CheckResult(c.check_id, rng.choice(["PASS", "FAIL", "FAIL", "UNKNOWN"]), "r")
                for c in policy.checks
                if rng.random() < 0.9  # a check not judged in a report keeps its verdict
            ]
            store.reports.store_reports([(report(device_id, k, at, host, os_family), results)])
        if n % 3 == 0:
            store.identity.set_device_group(device_id, "财务部" if n % 2 else "sales-eu", NOW)
        check = rng.choice(policy.checks).check_id
        if n % 5 == 0:  # in force
            store.waivers.add_waiver(Waiver(f"w{n}", device_id, check, "IT", "new laptop coming",
                                    NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=3)),
                             NOW)  # fmt: skip
        elif n % 5 == 1:  # expired
            store.waivers.add_waiver(Waiver(f"w{n}", device_id, check, "IT", "was replaced",
                                    NOW - dt.timedelta(days=9), NOW - dt.timedelta(days=2)),
                             NOW)  # fmt: skip
        elif n % 5 == 2:  # revoked
            store.waivers.add_waiver(Waiver(f"w{n}", device_id, check, "IT", "no longer needed",
                                    NOW - dt.timedelta(days=2), NOW + dt.timedelta(days=2)),
                             NOW)  # fmt: skip
            store.waivers.revoke_waiver(f"w{n}", NOW - dt.timedelta(hours=1), "fixed")
    for n, status in LEAVERS.items():
        assert store.identity.set_device_status(device_id_of(n), status, LEFT, "replaced")
    return store, policy
