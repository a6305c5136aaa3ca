"""Benchmark: the store's own CPU per report on the ingest path (issue 17 item 5's "batched
ingest <= 120 us of server CPU per report", its storage share), without gRPC.

`Reports.store_reports` in groups (ReportBatch's 64 by default) over N enrolled devices, on a
fresh SQLite file with synchronous=FULL as the collector runs it, the reports the audit
benchmark's fleet sends (real serialized PostureReports made into records by the collector's
own `intake.record_of`, judged by the policy). The first `--warm-up` groups are not counted
(a device's first report writes its fact parts). Prints the process CPU per stored report,
the wall time per report and the database's size per report.

    .venv/bin/python bench/store_reports.py --devices 1000 --groups 300
    .venv/bin/python bench/store_reports.py --devices 10000 --groups 200 --batch 512 \
        --postgresql postgresql://postgres@127.0.0.1:5432/postgres

It also prints the **serialized section**: how long each group's write transaction held the
store's one write lock (from the moment it had the lock to the end of its COMMIT: SQLite's,
or the advisory lock every collector on a PostgreSQL database takes, store/engine.py). Any
number of collectors and workers on one database write one group at a time, so reports per
group over that time is the most the whole site can store per second however many cores
serve it (issue 17 item 5: the backlog's drain "with the workers and engines it takes").
`--per-device 64` makes each group's reports come 64 at a time from one device, as a backlog's
ReportBatch calls bring them (a device's verdict rows are then written once for its 64); the
default, one report a device, is a fleet reporting as it goes. On
PostgreSQL (`--postgresql SERVER`: a database made for the run and dropped after) the CPU of
the server's backends serving the store is printed too: what the database host spends per
report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.audit_quarter's fleet

from bench import audit_quarter as aq
from bench.process_cpu import cpu_seconds, database_backends
from devposture.collector.intake import record_of
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.store.engine import PostgresDatabase, SqliteDatabase
from devposture.collector.store.target import DatabaseTarget, PostgresTarget, SqliteTarget
from devposture.collector.tokens import new_token
from devposture.policy import default_policy

T0 = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--per-device", type=int, default=1, metavar="N",
        help="consecutive reports of a group from one device (a fleet reporting as it goes: 1;"
        " a backlog's ReportBatch: 64)",
    )  # fmt: skip
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--postgresql", metavar="SERVER", default="",
                        help="store on a new database of this PostgreSQL server")  # fmt: skip
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    with _database(folder, args.postgresql) as target:
        _measure(args, folder, target)


@contextlib.contextmanager
def _database(folder: Path, server: str) -> Iterator[DatabaseTarget]:
    """A SQLite file in `folder`, or a database made on `server` for the run and dropped."""
    if not server:
        yield SqliteTarget(folder / "devposture.db")
        return
    from bench.fleet_load import _create_database, _drop_database, _with_database  # noqa: PLC0415

    name = f"devposture_bench_store_{os.getpid()}"
    _create_database(server, name)
    try:
        yield PostgresTarget(_with_database(server, name))
    finally:
        _drop_database(server, name)


# How long each write transaction held the write lock (seconds), in the order they ended.
_held: list[float] = []


def _timing_the_lock() -> None:
    """Each engine's write transaction timed from when it holds the lock to its COMMIT's end."""
    for engine in (SqliteDatabase, PostgresDatabase):
        real = engine.transaction

        @contextlib.contextmanager
        def timed(self: object, real: Callable[..., Any] = real) -> Iterator[object]:
            with real(self) as cursor:
                start = time.perf_counter()
                yield cursor
            _held.append(time.perf_counter() - start)

        engine.transaction = timed  # type: ignore[method-assign, assignment]


def _measure(args: argparse.Namespace, folder: Path, target: DatabaseTarget) -> None:
    store = Store.open_for_reports(target)  # as the report writer opens it
    devices = [f"{n:032x}" for n in range(args.devices)]
    for device in devices:
        token = new_token()
        store.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1)
        store.identity.enroll(token, T0, DeviceRecord(device, "01", T0 + dt.timedelta(days=90)))
    judged, rng = aq.Judged(default_policy()), random.Random(1)

    def group(k: int, at: dt.datetime) -> list[tuple[ReportRecord, list[CheckResult]]]:
        out = []
        for j in range(args.batch):
            device = devices[(k * args.batch + j) // args.per_device % len(devices)]
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
    _timing_the_lock()
    backends = database_backends(os.getpid(), target)  # the store's pool's connections
    database_cpu = cpu_seconds(backends)
    cpu, wall = time.process_time(), time.perf_counter()
    for made in groups[args.warm_up :]:
        store.reports.store_reports(made)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    database_cpu = cpu_seconds(backends) - database_cpu
    stored = args.batch * (len(groups) - args.warm_up)
    size = (sum(f.stat().st_size for f in folder.iterdir()) if not args.postgresql
            else aq.database_bytes(store))  # fmt: skip
    store.close()
    engine = "PostgreSQL" if args.postgresql else "SQLite, synchronous=FULL"
    print(f"{stored} reports in groups of {args.batch} over {args.devices} devices,"
          f" {args.per_device} at a time from one ({engine}):"
          f" {cpu / stored * 1e6:.0f} us CPU per report, wall {wall / stored * 1e6:.0f} us;"
          f" database {size / stored:,.0f} B per report")  # fmt: skip
    if backends:
        print(f"database server's backends: {database_cpu / stored * 1e6:.0f} us CPU per report")
    held = statistics.median(_held)
    print(
        f"write lock held per group (median of {len(_held)}): {held * 1e3:.1f} ms, so at most"
        f" {args.batch / held:,.0f} reports/s on this database however many collectors"
        f" write to it (the serialized section: {held / args.batch * 1e6:.0f} us a report)"
    )
    print(
        f"target (issue 17): batched ingest <= 120 us of server CPU per report, gRPC"
        f" included; the store alone took {cpu / stored * 1e6:.0f} us here"
    )


if __name__ == "__main__":
    main()
