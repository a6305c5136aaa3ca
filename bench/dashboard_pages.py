"""Benchmark: the dashboard's pages over a fleet of 100,000 devices, over real HTTP.

Makes a collector data folder (`collector.datadir.initialize`), fills its database as
`fleet_report.py` does (`--devices` devices, a report each, 3 % silent, a current verdict per
check, `--changes` state changes per device and check over 8 weeks), puts a quarter of the
devices in each of two groups and one in a hundred under a waiver on 6.3.2, then starts the
real dashboard (`start_dashboard`, uvicorn on loopback), logs in with a viewer credential and
times each page as a browser would ask for it: the first request (cold: nothing cached), and
the same again (warm: the dashboard's cache, reused while the database is unchanged).

    .venv/bin/python bench/dashboard_pages.py --devices 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet_report import populate
from devposture.collector.admin.credentials import VIEWER, new_credential
from devposture.collector.compliance import Waiver
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from devposture.collector.web.server import start_dashboard

TARGET_SECONDS = 0.5  # what "loads fast" means here: a page within half a second
GROUP = "财务部"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=3, help="state changes per check")
    args = parser.parse_args()
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="devposture-dashboard-") as tmp:
        config, _ = initialize(Path(tmp) / "collector", "127.0.0.1")
        store = Store.open(config.database)
        started = time.perf_counter()
        populate(store, args.devices, args.changes, now)
        db = store._db
        db.execute(
            "UPDATE devices SET device_group = CASE rowid % 4 WHEN 0 THEN ? WHEN 1 THEN 'sales'"
            " ELSE '' END",
            (GROUP,),
        )
        # One device in a hundred waived on 6.3.2 for a week, as IT grants them.
        for (device_id,) in db.execute("SELECT device_id FROM devices WHERE rowid % 100 = 5"):
            store.waivers.add_waiver(Waiver(f"w-{device_id}", device_id, "public-wifi", "IT",
                                    "travelling, VPN ordered", now, now + dt.timedelta(days=7)),
                             now)  # fmt: skip
        credential = new_credential()
        store.admin.add_credential(credential, "bench viewer", VIEWER, now)
        some_device = db.execute("SELECT device_id FROM devices LIMIT 1 OFFSET 777").fetchone()[0]
        store.close()
        print(f"{args.devices} devices written in {time.perf_counter() - started:.1f} s")
        dashboard = start_dashboard(config, "127.0.0.1", 0)
        try:
            cookie = _log_in(dashboard.port, str(credential))
            pages = [
                ("overview", "/"),
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
            ]
            worst = 0.0
            print(f"{'page':30} {'cold':>8} {'warm':>8}  size")
            for label, path in pages:
                status, cold, size = _get(dashboard.port, path, cookie)
                assert status == 200, f"{path}: HTTP {status}"
                _, warm, _ = _get(dashboard.port, path, cookie)
                worst = max(worst, cold)
                print(f"{label:30} {cold:7.3f}s {warm:7.3f}s  {size // 1024} KB")
        finally:
            dashboard.stop()
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"target: every page within {TARGET_SECONDS} s, cold -> {verdict}"
          f" (slowest {worst:.3f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
