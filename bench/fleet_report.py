"""Benchmark: the fleet report over a large fleet (target: under 0.5 s for 100,000 devices,
through the CLI, now and as of any past date), on SQLite or PostgreSQL.

Makes a collector data folder with `devposture-collector init` (on a SQLite file in it, or with
`--database` on a new PostgreSQL database the benchmark creates), fills its database with
`--devices` devices, each with a current verdict per check and a history of `--changes` state
changes per check over the last 8 weeks, and reports received every `--report-every` hours
since enrollment 60 days ago, 3 % of the devices silent for the last 5 days (written straight
into the tables, as the store would have them; on PostgreSQL by COPY, in one transaction).

Then it times:

* `devposture-collector report fleet` as a real process (Python's start and imports included):
  now, `--as-of` a week ago and 7 weeks ago; the median of `--runs` runs after one untimed
  run. The CLI runs with Python's bytecode cache on (in a temporary folder) as an installed
  collector has it, even where PYTHONDONTWRITEBYTECODE is set; `--version` (start-up and
  imports alone) is timed the same way.
* the report views in this process, through collector/reports.py as the CLI and the dashboard
  call them (`--reference` adds the per-device judgment, the slow reference, ~10 s each).

    .venv/bin/python bench/fleet_report.py --devices 100000 --changes 3
    .venv/bin/python bench/fleet_report.py --database postgresql://postgres@127.0.0.1:5432/devposture_bench

`--folder DIR` keeps the data folder (and the PostgreSQL database) after the run; run again
with the same `--folder` (and `--database`) to time the same fleet again without rebuilding it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sized
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devposture.collector.company_time import zone_of
from devposture.collector.config import load
from devposture.collector.fleet_history import MARKS_PER_RUN, mark_days
from devposture.collector.reports import failing_rows, fleet_rows
from devposture.collector.store import DatabaseTarget, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.engine import PostgresDatabase
from devposture.collector.store.fleet import fleet_figures_as_of
from devposture.collector.store.target import is_postgres_url
from devposture.policy import Policy, default_policy

TARGET_SECONDS = 0.5
STATES = ("PASS", "FAIL", "UNKNOWN")
# Four departments of a quarter of the fleet each: `report fleet --group` is timed on one.
GROUPS = ("研发部", "财务部", "销售部", "行政部")
TABLES = {
    "devices": ("device_id", "enrolled_us", "token_id", "cert_serial", "cert_not_after_us",
                "hostname", "os_family", "last_report_us", "device_group"),
    "reports": ("report_id", "device_id", "received_us", "collected_us", "agent_version", "body"),
    "state_changes": ("device_id", "check_id", "state", "reason", "since_us", "report_id"),
    "check_results": ("device_id", "check_id", "state", "reason", "report_id", "collected_us",
                      "evaluated_us", "since_us"),
}  # fmt: skip
# Where the benchmark notes the moment its fleet was built around (for a later --folder run).
NOW_FILE = "bench-now.txt"


def fleet(
    devices: int, changes: int, now: dt.datetime, report_every: float, first: int = 0
) -> Iterator[dict[str, list[tuple[object, ...]]]]:
    """The fleet's rows, table by table, 1,000 devices at a time. Devices enrolled 60 days
    ago; most report hourly, the latest within the hour (some went silent 5 days ago), and
    have a report every `report_every` hours before that back to their enrollment (0: only the
    latest); each check changed state `changes` times over the last 8 weeks."""
    rng = random.Random(7)
    checks = [c.check_id for c in default_policy().checks]
    enrolled = now - dt.timedelta(days=60)
    rows: dict[str, list[tuple[object, ...]]] = {table: [] for table in TABLES}
    for n in range(first, devices):
        device = f"{n:032x}"
        silent = rng.random() < 0.03
        last = now - (dt.timedelta(days=5) if silent else dt.timedelta(minutes=rng.randint(1, 60)))
        rows["devices"].append(
            (device, to_us(enrolled), "t", f"{n:x}", to_us(now + dt.timedelta(days=14)),
             f"pc-{n}", rng.choice(("linux", "windows", "macos")), to_us(last), GROUPS[n % 4])
        )  # fmt: skip
        rows["reports"].append((f"last-{n}", device, to_us(last), to_us(last), "1", b""))
        if report_every > 0:
            step = dt.timedelta(hours=report_every)
            received, k = last - step, 0
            while received > enrolled:
                rows["reports"].append(
                    (f"r{n}-{k}", device, to_us(received), to_us(received), "1", b"")
                )
                received, k = received - step, k + 1
        for check in checks:
            since = now - dt.timedelta(weeks=8)
            state = "UNKNOWN"
            for k in range(changes):
                since += dt.timedelta(hours=rng.randint(1, 8 * 7 * 24 // max(1, changes)))
                state = STATES[(k + n) % len(STATES)] if k < changes - 1 else rng.choice(STATES)
                rows["state_changes"].append(
                    (device, check, state, f"{check} {state.lower()}", to_us(min(since, last)),
                     f"r{n}-{k}")
                )  # fmt: skip
            # The current verdict, as the store keeps it beside the history.
            rows["check_results"].append(
                (device, check, state, f"{check} {state.lower()}", f"last-{n}", to_us(last),
                 to_us(last), to_us(min(since, last)))
            )  # fmt: skip
        if (n + 1) % 1000 == 0:
            yield rows
            rows = {table: [] for table in TABLES}
    if any(rows.values()):
        yield rows


def populate(
    store: Store, devices: int, changes: int, now: dt.datetime, report_every: float = 0
) -> None:
    """Write the fleet (`fleet`) into the store's tables in one transaction: executemany on
    SQLite, COPY on PostgreSQL (no round trip per row)."""
    db = store._db
    with db.transaction() as cursor:
        for batch in fleet(devices, changes, now, report_every):
            for table, columns in TABLES.items():
                if isinstance(db, PostgresDatabase):
                    copy_in = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                    with cursor.copy(copy_in) as copy:  # type: ignore[union-attr]
                        for row in batch[table]:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" * len(columns))
                    cursor.executemany(
                        f"INSERT INTO {table}({', '.join(columns)}) VALUES ({marks})",
                        batch[table],
                    )
    if isinstance(db, PostgresDatabase):
        # What autovacuum would have done by now on a live database: statistics for the
        # planner, and the visibility map that lets an index answer alone. (The collector
        # never runs ANALYZE on SQLite, so the benchmark does not either.)
        db.execute("VACUUM ANALYZE")


def timed(label: str, work: Callable[[], Sized]) -> float:
    """Run `work` once; print and return its wall time (and print its CPU time)."""
    cpu = time.process_time()
    started = time.perf_counter()
    rows = work()
    took = time.perf_counter() - started
    cpu = time.process_time() - cpu
    print(f"{label:44} {took:7.3f} s  (CPU {cpu:.3f} s here; {len(rows)} rows)")
    return took


# --- the CLI as a process ----------------------------------------------------------------------


# Set by `cli_environment` where the CLI runs another checkout's code: this environment's
# console script starts `devposture.collector.launch`, which an older checkout may lack, so
# the CLI is started as `python -m devposture.collector`, which every checkout has.
OTHER_CODE = "DEVPOSTURE_BENCH_OTHER_CODE"


def cli_command(env: Mapping[str, str] | None = None) -> list[str]:
    """The collector's command line: its console script in this environment, else (or where
    `env` runs another checkout's code) `python -m devposture.collector`."""
    script = Path(sys.executable).with_name("devposture-collector")
    if script.exists() and not (env and env.get(OTHER_CODE)):
        return [str(script)]
    return [sys.executable, "-m", "devposture.collector"]


def cli_environment(pycache: Path, code: Path | None = None) -> dict[str, str]:
    """The CLI's environment: bytecode cached (in `pycache`), as installed; `code`: another
    checkout's `protos` folder to run the CLI from (an older version, to compare)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
        if code.resolve() != (Path(__file__).resolve().parents[1] / "protos").resolve():
            env[OTHER_CODE] = "1"
    return env


def cli_seconds(
    label: str, arguments: list[str], env: dict[str, str], runs: int
) -> tuple[float, str]:
    """The median wall time of `runs` runs of the CLI with `arguments` (after one untimed
    run), and its output. Also printed: the median CPU time of the process (on PostgreSQL,
    the server's own work is not in it)."""
    command = [*cli_command(env), *arguments]
    took: list[float] = []
    cpu: list[float] = []
    out = ""
    for k in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
        if k:
            took.append(seconds)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out = done.stdout
    median = statistics.median(took)
    spread = f"min {min(took):.3f}, max {max(took):.3f}"
    print(f"{label:44} {median:7.3f} s  (median of {runs}; {spread};"
          f" CPU {statistics.median(cpu):.3f} s)")  # fmt: skip
    return median, out


# --- the database ------------------------------------------------------------------------------


def _server_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _admin(url: str, sql: str) -> None:
    import psycopg  # noqa: PLC0415  (only with --database)

    with psycopg.connect(_server_url(url, "postgres"), autocommit=True) as connection:
        connection.execute(sql)


@contextmanager
def postgres_database(url: str, keep: bool) -> Iterator[bool]:
    """Create the database `url` names (yield True), or use it as a previous `--folder` run
    left it (yield False); dropped on leaving unless `keep`."""
    name = urlsplit(url).path.strip("/")
    import psycopg  # noqa: PLC0415

    with psycopg.connect(_server_url(url, "postgres"), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    if exists and not keep:
        raise SystemExit(
            f"the database {name} exists: give a new name (fleet_report.py: or the --folder"
            " of the run that made it, to time it again)"
        )
    if not exists:
        _admin(url, f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    try:
        yield not exists
    finally:
        if not keep:
            _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=3, help="state changes per check")
    parser.add_argument(
        "--report-every", type=float, default=24, metavar="HOURS",
        help="hours between a device's reports before its latest (0: the latest only)",
    )  # fmt: skip
    parser.add_argument(
        "--database", metavar="URL",
        help="a new PostgreSQL database to build the fleet in (postgresql://user@host/NAME;"
        " created, and dropped at the end); default: a SQLite file in the data folder",
    )  # fmt: skip
    parser.add_argument("--folder", type=Path, help="keep the data folder here (see above)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each CLI command")
    parser.add_argument(
        "--reference", action="store_true",
        help="also time the per-device judgment (compliance.standings), ~10 s a view",
    )  # fmt: skip
    parser.add_argument("--no-cli", action="store_true", help="time in this process only")
    parser.add_argument("--cli-only", action="store_true", help="time through the CLI only")
    parser.add_argument(
        "--cli-code", type=Path, metavar="PROTOS",
        help="run the CLI from another checkout's protos/ folder (e.g. an older commit's,"
        " from `git archive`), to compare; the data are built by this one",
    )  # fmt: skip
    args = parser.parse_args()
    if args.database is not None and not is_postgres_url(args.database):
        parser.error("--database takes a postgresql:// address")
    policy = default_policy()
    keep = args.folder is not None
    with tempfile.TemporaryDirectory(prefix="devposture-fleet-") as tmp:
        folder = args.folder or Path(tmp) / "collector"
        engine = "PostgreSQL" if args.database else "SQLite"
        with postgres_database(args.database, keep) if args.database else _sqlite() as new_database:
            built = (folder / NOW_FILE).exists()
            if built and new_database:
                raise SystemExit(f"{folder} holds a fleet, but its database was just created")
            if not built:
                now = dt.datetime.now(dt.UTC)
                init = ["init", "--data", str(folder)]
                if args.database:
                    init += ["--database", args.database]
                subprocess.run([*cli_command(), *init], check=True, stdout=subprocess.DEVNULL)
            else:
                now = dt.datetime.fromisoformat((folder / NOW_FILE).read_text().strip())
            config = load(folder)
            store = Store.open(config.database)
            if not built:
                started = time.perf_counter()
                populate(store, args.devices, args.changes, now, args.report_every)
                (folder / NOW_FILE).write_text(now.isoformat())
                print(f"{engine}: {args.devices} devices written in"
                      f" {time.perf_counter() - started:.1f} s")  # fmt: skip
            counts = {
                table: store._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in TABLES
            }
            print(f"{engine} ({config.database.describe()}): "
                  + ", ".join(f"{count} {table}" for table, count in counts.items()))  # fmt: skip
            print(f"the fleet as built at {now:%Y-%m-%d %H:%M:%S} UTC")
            slowest = 0.0
            if not args.cli_only:
                slowest = _in_process(store, policy, now, args.reference)
            store.close()
            if not args.no_cli:
                if not args.cli_code:
                    _mark(config.database, policy, now)
                env = cli_environment(Path(tmp) / "pycache", args.cli_code)
                slowest = _through_cli(folder, env, now, args.runs, zone_of(policy))
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    verdict = "met" if slowest < TARGET_SECONDS else "NOT met"
    where = "in-process" if args.no_cli else "through the CLI"
    print(f"target: fleet report over {args.devices} devices {where}, now and as of a past date,"
          f" < {TARGET_SECONDS} s on {engine} -> {verdict} (slowest {slowest:.3f} s)")  # fmt: skip


@contextmanager
def _sqlite() -> Iterator[bool]:
    yield False


def _in_process(store: Store, policy: Policy, now: dt.datetime, reference: bool) -> float:
    print("-- in this process (collector/reports.py)")
    fleet_now = timed("report fleet (now)", partial(fleet_rows, store, policy, now, current=True))
    if reference:
        timed("  the same, judged per device", partial(fleet_rows, store, policy, now, exact=True))
    # As of now, device by device: the "as of" path with every device heard from.
    as_of = timed("report fleet (as of now, device by device)",
                  partial(fleet_rows, store, policy, now))  # fmt: skip
    for label, weeks in (("a week ago", 1), ("7 weeks ago", 7)):
        moment = now - dt.timedelta(weeks=weeks)
        as_of = max(as_of, timed(f"report fleet (as of {label})",
                                 partial(fleet_rows, store, policy, moment)))  # fmt: skip
        for way in ("verdicts", "history"):
            timed(f"  counted from the {way}", partial(
                fleet_figures_as_of, store._db, policy, moment, way=way))  # fmt: skip
        if reference and weeks == 1:
            timed("  judged per device", partial(fleet_rows, store, policy, moment, exact=True))
    timed("report failing (now)", partial(failing_rows, store, policy, now, current=True))
    if reference:
        timed("  the same, judged per device", partial(failing_rows, store, policy, now))
    timed("report failing (now, page 100 of 50)", partial(
        failing_rows, store, policy, now, current=True, offset=4950, limit=50))  # fmt: skip
    return max(fleet_now, as_of)


def _mark(database: DatabaseTarget, policy: Policy, now: dt.datetime) -> None:
    """Count the fleet, and each device group, at each past midnight, as `serve` does in the
    background (hourly, `MARKS_PER_RUN` fleets' worth at a time), and say how long it took."""
    started, cpu = time.perf_counter(), time.process_time()
    kept = mark_days(database, policy, now, most=10_000)
    print(f"marked {kept} past midnights (the fleet's, each group's) in"
          f" {time.perf_counter() - started:.1f} s"
          f" (CPU {time.process_time() - cpu:.1f} s here), as serve does in the background,"
          f" {MARKS_PER_RUN} an hour")  # fmt: skip


def _through_cli(
    folder: Path, env: dict[str, str], now: dt.datetime, runs: int, zone: dt.tzinfo
) -> float:
    """`report fleet` as a process: now, as of the dates a week and 7 weeks before the
    fleet's now (each the day's start in the company's time zone, as the CLI reads a date:
    its mark), and as of the moments a week and 7 weeks before (no mark: counted from the
    history). The data are as of `now`; "now" itself is the clock's, minutes later at most.
    The slowest of now and the dates is returned: what the target asks."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"-- through the CLI (a new process each time; load average {load})")
    cli_seconds("devposture-collector --version", ["--version"], env, runs)
    data = ["--data", str(folder)]
    slowest, out = cli_seconds("report fleet", ["report", "fleet", *data], env, runs)
    for label, weeks in (("a week ago", 1), ("7 weeks ago", 7)):
        then = now - dt.timedelta(weeks=weeks)
        for kind, moment in (
            ("the date", then.astimezone(zone).date().isoformat()),
            ("the moment", then.isoformat()),
        ):
            seconds, out = cli_seconds(
                f"report fleet --as-of ({kind} {label})",
                ["report", "fleet", *data, "--as-of", moment, "--format", "json"], env, runs,
            )  # fmt: skip
            if kind == "the date":
                slowest = max(slowest, seconds)
            devices = {row["devices"] for row in json.loads(out)}
            assert len(devices) == 1, f"checks counted over different fleets: {devices}"
    # One group's devices (a quarter of the fleet): now, and as of the same dates (its marks).
    group = ["--group", GROUPS[0]]
    seconds, _ = cli_seconds(f"report fleet --group {GROUPS[0]}",
                             ["report", "fleet", *data, *group], env, runs)  # fmt: skip
    slowest = max(slowest, seconds)
    for label, weeks in (("a week ago", 1), ("7 weeks ago", 7)):
        date = (now - dt.timedelta(weeks=weeks)).astimezone(zone).date().isoformat()
        seconds, _ = cli_seconds(f"report fleet --group --as-of (date {label})",
                                 ["report", "fleet", *data, *group, "--as-of", date], env, runs)
        slowest = max(slowest, seconds)
    return slowest


if __name__ == "__main__":
    main()
