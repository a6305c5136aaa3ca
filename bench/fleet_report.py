"""Benchmark: the fleet report over a large fleet (target: under 0.5 s for 100,000 devices).

Builds a collector database in a temporary folder with `--devices` devices, each with a
report and a history of `--changes` state changes per check spread over the last weeks
(written straight into the tables, as the store would have), then times `report fleet` now
and as of a week ago, and `report failing`, each through collector/reports.py as the CLI and
the dashboard call it. "now" counts in SQL from the current verdicts (collector/fleet_counts.py);
"as of" a past moment judges every device from the history.

    .venv/bin/python bench/fleet_report.py --devices 100000 --changes 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devposture.collector.reports import failing_rows, fleet_rows
from devposture.collector.store import Store
from devposture.collector.store.base import to_us
from devposture.policy import default_policy

TARGET_SECONDS = 0.5
STATES = ("PASS", "FAIL", "UNKNOWN")


def populate(store: Store, devices: int, changes: int, now: dt.datetime) -> None:
    """Devices enrolled 60 days ago; most report hourly (some went silent); each check changed
    state `changes` times over the last 8 weeks."""
    rng = random.Random(7)
    checks = [c.check_id for c in default_policy().checks]
    db = store._db
    db.execute("BEGIN")
    enrolled = to_us(now - dt.timedelta(days=60))
    for n in range(devices):
        device = f"{n:032x}"
        silent = rng.random() < 0.03
        last = now - (dt.timedelta(days=5) if silent else dt.timedelta(minutes=rng.randint(1, 60)))
        db.execute(
            "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us,"
            " hostname, os_family, last_report_us) VALUES (?, ?, 't', ?, ?, ?, ?, ?)",
            (device, enrolled, f"{n:x}", to_us(now + dt.timedelta(days=14)), f"pc-{n}",
             rng.choice(("linux", "windows", "macos")), to_us(last)),
        )  # fmt: skip
        db.execute(
            "INSERT INTO reports(report_id, device_id, received_us, collected_us,"
            " agent_version, body) VALUES (?, ?, ?, ?, '1', x'')",
            (f"last-{n}", device, to_us(last), to_us(last)),
        )
        for check in checks:
            since = now - dt.timedelta(weeks=8)
            for k in range(changes):
                since += dt.timedelta(hours=rng.randint(1, 8 * 7 * 24 // max(1, changes)))
                state = STATES[(k + n) % len(STATES)] if k < changes - 1 else rng.choice(STATES)
                db.execute(
                    "INSERT INTO state_changes(device_id, check_id, state, reason, since_us,"
                    " report_id) VALUES (?, ?, ?, ?, ?, ?)",
                    (device, check, state, f"{check} {state.lower()}", to_us(min(since, last)),
                     f"r{n}-{k}"),
                )  # fmt: skip
            # The current verdict, as the store keeps it beside the history.
            db.execute(
                "INSERT INTO check_results(device_id, check_id, state, reason, report_id,"
                " collected_us, evaluated_us, since_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (device, check, state, f"{check} {state.lower()}", f"last-{n}", to_us(last),
                 to_us(last), to_us(min(since, last))),
            )  # fmt: skip
    db.execute("COMMIT")


def timed(label: str, work: object) -> float:
    assert callable(work)
    started = time.perf_counter()
    rows = work()
    took = time.perf_counter() - started
    print(f"{label:40} {took:7.3f} s  ({len(rows)} rows)")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=3, help="state changes per check")
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    policy = default_policy()
    with tempfile.TemporaryDirectory(prefix="devposture-fleet-") as tmp:
        store = Store.open(Path(tmp) / "devposture.db")
        started = time.perf_counter()
        populate(store, args.devices, args.changes, now)
        print(f"{args.devices} devices, {args.devices * len(policy.checks) * args.changes}"
              f" state changes written in {time.perf_counter() - started:.1f} s")  # fmt: skip
        fleet = timed("report fleet (now)",
                      lambda: fleet_rows(store, policy, now, current=True))  # fmt: skip
        timed("report fleet (now, judged per device)",
              lambda: fleet_rows(store, policy, now, exact=True))  # fmt: skip
        # Each device has one report, its latest: at any past moment few had been heard from
        # yet, which makes the past cheap here. Counted device by device as of now, every
        # device is heard from: what a past moment costs in a fleet that reported all along.
        as_of = timed("report fleet (as of now, device by device)",
                      lambda: fleet_rows(store, policy, now))  # fmt: skip
        week_ago = now - dt.timedelta(weeks=1)
        as_of = max(as_of, timed("report fleet (as of a week ago)",
                                 lambda: fleet_rows(store, policy, week_ago)))  # fmt: skip
        timed("  the same, judged per device",
              lambda: fleet_rows(store, policy, week_ago, exact=True))  # fmt: skip
        weeks_ago = now - dt.timedelta(weeks=7)
        as_of = max(as_of, timed("report fleet (as of 7 weeks ago)",
                                 lambda: fleet_rows(store, policy, weeks_ago)))  # fmt: skip
        timed("report failing (now)",
              lambda: failing_rows(store, policy, now, current=True))  # fmt: skip
        timed("report failing (now, judged per device)",
              lambda: failing_rows(store, policy, now))  # fmt: skip
        timed("report failing (now, page 100 of 50)", lambda: failing_rows(
            store, policy, now, current=True, offset=4950, limit=50))  # fmt: skip
        store.close()
    slowest = max(fleet, as_of)
    verdict = "met" if slowest < TARGET_SECONDS else "NOT met"
    print(f"target: fleet report over {args.devices} devices, now and as of a past date,"
          f" < {TARGET_SECONDS} s -> {verdict} (slowest {slowest:.3f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
