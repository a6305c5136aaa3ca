"""Benchmark: the dashboard's pages over a fleet of 100,000 devices, over real HTTP, on
SQLite or PostgreSQL.

Makes a collector data folder (`collector.datadir.initialize`, on a SQLite file in it, or with
`--database` on a new PostgreSQL database the benchmark creates and drops), fills its
database as `fleet_report.py` does (`--devices` devices, the latest report each, 3 % silent,
a current verdict per check, `--changes` state changes per device and check over 8 weeks;
`--report-every` adds earlier reports), puts a quarter of the devices in each of two groups
and one in a hundred under a waiver on 6.3.2, then starts the real dashboard
(`start_dashboard`, uvicorn on loopback), logs in with an auditor credential and times each
page as a browser would ask for it: the first request (cold: nothing cached), and the same
again (warm: the dashboard's cache, reused while the database is unchanged).

    .venv/bin/python bench/dashboard_pages.py --devices 100000
    .venv/bin/python bench/dashboard_pages.py --database postgresql://postgres@127.0.0.1:5432/devposture_bench_pages

`--folder DIR` keeps the data folder (and the PostgreSQL database) after the run; run again
with the same `--folder` (and `--database`) to time the same fleet again without rebuilding it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet_report import populate, postgres_database
from devposture.collector.compliance import Waiver
from devposture.collector.config import CollectorConfig, load
from devposture.collector.credentials import AUDITOR, new_credential
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from devposture.collector.store.target import is_postgres_url, postgres_target
from devposture.collector.web.server import start_dashboard

TARGET_SECONDS = 0.5  # what "loads fast" means here: a page within half a second
GROUP = "财务部"
# In a kept folder: what a later --folder run needs (the auditor's credential, a device).
KEPT_FILE = "bench-pages.json"


def _get(port: int, path: str, cookie: str) -> tuple[int, float, int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    try:
        connection.request("GET", path, headers={"Cookie": cookie})
        response = connection.getresponse()
        body = response.read()
        return response.status, time.perf_counter() - started, len(body)
    finally:
        connection.close()


def _log_in(port: int, credential: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST", "/login", body=urlencode({"credential": credential}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        response = connection.getresponse()
        response.read()
        match = re.search(r"(devposture_session=[^;]+)", response.headers.get("set-cookie", ""))
        assert response.status == 303 and match, f"login failed: {response.status}"
        return match.group(1)
    finally:
        connection.close()


# Each bench device's number n, from its host name (pc-n): the same on both engines.
_NUMBER = "(CAST(substr(hostname, 4) AS INTEGER) + 1)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=3, help="state changes per check")
    parser.add_argument(
        "--report-every", type=float, default=0, metavar="HOURS",
        help="hours between a device's reports before its latest (default 0: the latest only)",
    )  # fmt: skip
    parser.add_argument(
        "--database", metavar="URL",
        help="a new PostgreSQL database to build the fleet in (postgresql://user@host/NAME;"
        " created, and dropped at the end); default: a SQLite file in the data folder",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="start the dashboard afresh this many times; each page's median is shown",
    )  # fmt: skip
    parser.add_argument("--folder", type=Path, help="keep the data folder here (see above)")
    args = parser.parse_args()
    if args.database is not None and not is_postgres_url(args.database):
        parser.error("--database takes a postgresql:// address")
    engine = "PostgreSQL" if args.database else "SQLite"
    with tempfile.TemporaryDirectory(prefix="devposture-dashboard-") as tmp:
        folder = args.folder or Path(tmp) / "collector"
        keep = args.folder is not None
        with postgres_database(args.database, keep) if args.database else nullcontext(False) as new:
            kept = folder / KEPT_FILE
            if kept.exists() and new:
                raise SystemExit(f"{folder} holds a fleet, but its database was just created")
            if not kept.exists():
                target = postgres_target(args.database) if args.database else None
                config, _ = initialize(folder, "127.0.0.1", database=target)
                credential, some_device = _build(config, args)
                kept.write_text(json.dumps({"credential": credential, "device": some_device}))
            else:
                config = load(folder)
                saved = json.loads(kept.read_text())
                credential, some_device = saved["credential"], saved["device"]
            worst = _time_pages(config, args.rounds, credential, some_device)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"target: every page within {TARGET_SECONDS} s, cold, on {engine} -> {verdict}"
          f" (slowest {worst:.3f} s)")  # fmt: skip


def _build(config: CollectorConfig, args: argparse.Namespace) -> tuple[str, str]:
    """Fill the new data folder's database with the fleet; (the auditor's credential, a
    device id) for the pages."""
    now = dt.datetime.now(dt.UTC)
    store = Store.open(config.database)
    started = time.perf_counter()
    populate(store, args.devices, args.changes, now, args.report_every)
    db = store._db
    with db.transaction() as cursor:
        cursor.execute(
            f"UPDATE devices SET device_group = CASE {_NUMBER} % 4 WHEN 0 THEN ?"
            " WHEN 1 THEN 'sales' ELSE '' END",
            (GROUP,),
        )
    # One device in a hundred waived on 6.3.2 for a week, as IT grants them.
    # (Bound values: on PostgreSQL a statement's % is read as psycopg's only with them.)
    waived = db.execute(f"SELECT device_id FROM devices WHERE {_NUMBER} % ? = ?", (100, 5))
    for (device_id,) in waived.fetchall():
        store.waivers.add_waiver(Waiver(f"w-{device_id}", device_id, "public-wifi", "IT",
                                "travelling, VPN ordered", now, now + dt.timedelta(days=7)),
                         now)  # fmt: skip
    # An audit log of some size: 10,000 commands (the audit-log page reads one page).
    for n in range(10_000):
        store.admin.audit(now, actor="bench admin", credential_id=None, role="admin",
                          command="device list", arguments={"n": str(n)}, outcome="ok",
                          message="", peer="local")  # fmt: skip
    credential = new_credential()
    # An auditor: a viewer sees every page but the audit log.
    store.admin.add_credential(credential, "bench auditor", AUDITOR, now)
    some_device = db.execute(
        "SELECT device_id FROM devices ORDER BY device_id LIMIT 1 OFFSET 777"
    ).fetchone()[0]
    if args.database:
        db.execute("VACUUM ANALYZE")  # as autovacuum would have by now
    store.close()
    engine = "PostgreSQL" if args.database else "SQLite"
    print(f"{engine}: {args.devices} devices written in"
          f" {time.perf_counter() - started:.1f} s")  # fmt: skip
    return str(credential), str(some_device)


def _time_pages(config: CollectorConfig, rounds: int, credential: str, some_device: str) -> float:
    """Fetch each page cold and warm in `rounds` fresh dashboards; print the medians and
    return the slowest cold one."""
    pages = [
        ("overview", "/"),
        ("overview, one group", f"/?group={quote(GROUP)}"),
        ("device list", "/devices"),
        ("device list, page 1000", "/devices?page=1000"),
        ("failing 6.3.2 (public-wifi)", "/devices?check=public-wifi&state=FAIL"),
        ("  its page 300", "/devices?check=public-wifi&state=FAIL&page=300"),
        ("not passing any check", "/devices?state=NOT_PASSING"),
        ("failing any check", "/devices?state=FAIL"),
        ("stale devices", "/devices?stale=1"),
        ("search a host name", "/devices?q=pc-9999"),
        ("one group, one OS", f"/devices?group={quote(GROUP)}&os=linux"),
        ("a device page", f"/devices/{some_device}"),
        ("failing longest", "/failing"),
        ("  its page 1000", "/failing?page=1000"),
        # The dashboard for IT (issue 19 item 7).
        ("fully compliant (headline)", "/devices?state=COMPLIANT"),
        ("device list by last report", "/devices?sort=last_report&order=desc"),
        ("device list by 6.3.2", "/devices?sort=check:public-wifi"),
        ("failing 6.3.2, 3 days or more", "/failing?check=public-wifi&min_days=3"),
        ("failing, one group", f"/failing?group={quote(GROUP)}"),
        ("waivers", "/waivers"),
        ("tokens", "/tokens"),
        ("audit log", "/audit"),
    ]
    cold: dict[str, list[float]] = {label: [] for label, _ in pages}
    warm: dict[str, list[float]] = {label: [] for label, _ in pages}
    sizes: dict[str, int] = {}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    for _ in range(rounds):  # each round a new dashboard: nothing cached
        dashboard = start_dashboard(config, "127.0.0.1", 0)
        try:
            cookie = _log_in(dashboard.port, credential)
            for label, path in pages:
                status, seconds, sizes[label] = _get(dashboard.port, path, cookie)
                assert status == 200, f"{path}: HTTP {status}"
                cold[label].append(seconds)
                warm[label].append(_get(dashboard.port, path, cookie)[1])
        finally:
            dashboard.stop()
    told = f"median of {rounds} rounds" if rounds > 1 else "one round"
    print(f"{'page':30} {'cold':>8} {'warm':>8}  size  ({told}; load average {load})")
    worst = 0.0
    for label, _ in pages:
        first, again = statistics.median(cold[label]), statistics.median(warm[label])
        worst = max(worst, first)
        print(f"{label:30} {first:7.3f}s {again:7.3f}s  {sizes[label] // 1024} KB")
    return worst


if __name__ == "__main__":
    main()
