"""Benchmark: the store's own CPU per report on the ingest path (issue 17 item 5's "batched
ingest <= 120 us of server CPU per report", its storage share), without gRPC.

`Reports.store_reports` in groups (ReportBatch's 64 by default) over N enrolled devices, on a
fresh SQLite file with synchronous=FULL as the collector runs it, the reports the audit
benchmark's fleet sends (real serialized PostureReports made into records by the collector's
own `intake.record_of`, judged by the policy). The first `--warm-up` groups are not counted
(a device's first report writes its fact parts). Prints the process CPU per stored report,
the wall time per report and the database's size per report.

    .venv/bin/python bench/store_reports.py --devices 1000 --groups 300
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.audit_quarter's fleet

from bench import audit_quarter as aq
from devposture.collector.intake import record_of
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.tokens import new_token
from devposture.policy import default_policy

T0 = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warm-up", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    store = Store.open(folder / "devposture.db")
    devices = [f"{n:032x}" for n in range(args.devices)]
    for device in devices:
        token = new_token()
        store.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1)
        store.identity.enroll(token, T0, DeviceRecord(device, "01", T0 + dt.timedelta(days=90)))
    judged, rng = aq.Judged(default_policy()), random.Random(1)

    def group(k: int, at: dt.datetime) -> list[tuple[ReportRecord, list[CheckResult]]]:
        out = []
        for j in range(args.batch):
            device = devices[(k * args.batch + j) % len(devices)]
            report, results = judged.get(at, aq.HEALTHY)
            report.report_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            report.device_id, report.host.hostname = device, "PC-" + device[-4:]
            report.collected_at.FromDatetime(at.replace(tzinfo=None))
            out.append((record_of(report, device, at + dt.timedelta(seconds=1),
                                  dt.timedelta(0)), results))  # fmt: skip
        return out

    groups = [group(k, T0 + dt.timedelta(seconds=4 * (k + 1))) for k in range(args.groups)]
    for made in groups[: args.warm_up]:
        store.reports.store_reports(made)
    cpu, wall = time.process_time(), time.perf_counter()
    for made in groups[args.warm_up :]:
        store.reports.store_reports(made)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stored = args.batch * (len(groups) - args.warm_up)
    size = sum(f.stat().st_size for f in folder.iterdir())
    store.close()
    print(f"{stored} reports in groups of {args.batch} over {args.devices} devices (SQLite,"
          f" synchronous=FULL): {cpu / stored * 1e6:.0f} us CPU per report, wall"
          f" {wall / stored * 1e6:.0f} us; database {size / stored:,.0f} B per report")  # fmt: skip
    print(f"target (issue 17): batched ingest <= 120 us of server CPU per report, gRPC"
          f" included; the store alone took {cpu / stored * 1e6:.0f} us here")


if __name__ == "__main__":
    main()
