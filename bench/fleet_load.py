"""Load generator: a simulated fleet of N agents at the policy's cadence, against one or more
real collectors, for sizing ("devices per collector core", "database size per device per
month").

By default it makes the collectors itself: `devposture-collector init` of a data folder (on
SQLite, or with `--database postgresql://…` on a fresh PostgreSQL database made on that
server for the run and dropped after it), `init --join` for each further collector (on
PostgreSQL only: a SQLite file serves one collector), and real `devposture-collector serve`
processes (`--workers N` each). `--running DATA` points it at collectors already serving
those data folders instead (their ports are read from collector.toml, their process id from
the folder's lock file).

The agents: N devices enrolled through the enrollment port with the agent's own code
(agent.enroll.enroll, a token good for N uses made in the store), `--enroll-threads` at a
time; `--cache DIR` keeps them, with the collector's data folder (and on PostgreSQL a template
database) as they were right after enrollment, so the next run with the same engine and N
starts at once. Each device then reports as the agent's service does: every
`report_interval_minutes` of the policy (with `--jitter`, each device at its own phase in the
interval), a new connection (mutual TLS) and one ReportBatch per delivery, as
agent.transport.drain opens a channel per drain; a failed delivery keeps its reports and
tries again after the agent's backoff (5 s doubling, full jitter; the collector's retry hint
obeyed), and an acknowledgement carrying a new configuration makes the agent save it and
collect again at once (a "policy change" report: every device's first contact, so a fleet's
first run from the cache has twice the reports in its warm-up; later runs do not). The reports are tests/e2e/fleet.py's `posture_report`:
every fact of a Linux laptop, about 2.5 KB. Time runs `--speedup` times faster than real:
with the default 60, one simulated hour takes a minute. Several collectors: each delivery's
connection goes to the next collector in turn (an L4 balancer's round robin per connection);
`--connection kept` keeps one channel per device for the whole run instead, with gRPC's
round_robin over every collector's address (fewer handshakes than real agents make).

Measured over the window after a warm-up (one interval by default, so every device has
reported once and holds its configuration): reports offered and acknowledged per second,
acknowledgement latency (per call, and per report from its collection), failures by status,
reports stored (rows the database gained), CPU seconds per stored report of the collector
processes (psutil, workers included), of the PostgreSQL backends serving them, and of the
load generator's own processes (which share this machine's cores with the collectors),
"devices per collector core" at the policy's cadence, and the database's growth per stored
report (by table too), extrapolated to a device's month.

    .venv/bin/python bench/fleet_load.py --devices 10000 --speedup 60 --minutes 60 --cache /tmp/fleet-cache
    .venv/bin/python bench/fleet_load.py --devices 10000 --database postgresql://postgres@127.0.0.1:5432/postgres --collectors 2
"""  # noqa: E501

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import heapq
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import psutil
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.e2e.fleet

from devposture.agent.enroll import EnrollError, TryLater, enroll
from devposture.agent.state import AgentState
from devposture.agent.transport import CHANNEL_OPTIONS, MAX_BATCH_REPORTS
from devposture.collector.config import load
from devposture.collector.store import Store
from devposture.collector.store.engine import connect
from devposture.collector.store.target import DatabaseTarget, PostgresTarget, SqliteTarget
from devposture.collector.tokens import new_token
from devposture.net.address import CollectorAddress
from devposture.net.pinning import fingerprint as pin_of
from devposture.net.rpc_status import retry_hint
from devposture.policy import default_policy
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.e2e.fleet import host_info, posture_report
from tests.ports import free_ports

__all__ = ["Options", "Result", "main", "print_result", "run"]

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")
MONTH_DAYS = 30
BATCH_DEADLINE_SECONDS = 60.0
FIRST_BACKOFF = 5.0  # agent.backoff: the first wait after a failure, doubling ...
LONGEST_BACKOFF = 15 * 60.0  # ... up to this, or the reporting interval
READY_SECONDS = 120.0
CACHE_FORMAT = 1
# One row per device, or per device and check: rewritten by each report, not added to.
PER_DEVICE_TABLES = ("devices", "check_results")


# -- options and results ------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    devices: int = 100
    collectors: int = 1
    workers: int = 1
    # A PostgreSQL server's address: a fresh database is made on it for the run and dropped
    # after it. None: SQLite, the data folder's own file.
    database: str | None = None
    # Use this PostgreSQL database (or schema, in the address's options) as it is: nothing
    # is made or dropped (tests give a schema of their own).
    existing_database: str | None = None
    # Data folders of collectors already serving: the generator makes none.
    running: tuple[Path, ...] = ()
    speedup: float = 60.0
    minutes: float = 60.0  # simulated minutes measured
    warmup_minutes: float | None = None  # None: one reporting interval
    interval_minutes: float | None = None  # None: the policy's report_interval_minutes
    jitter: float = 0.02
    connection: str = "per-report"  # or "kept"
    clients: int = 1
    max_inflight: int = 256
    grace_seconds: float = 60.0  # after the window, for deliveries still under way
    idle_seconds: float = 5.0  # the collectors' CPU with no load, measured before it
    enroll_threads: int = 8
    cache: Path | None = None
    work: Path | None = None  # the run's folder (kept); None: a temporary one, removed
    seed: int = 1
    quiet: bool = False


@dataclass
class Result:
    """What one run measured; `print_result` shows it."""

    options: Options
    interval_s: float
    devices: int
    engine: str
    data_folders: list[Path]
    window_wall_s: float
    sampled_s: float  # between the server side's two samples (about window_wall_s)
    window_sim_s: float
    target_per_s: float
    offered: int
    acknowledged: int
    stored_in_window: int  # reports the database gained in the window (COUNT(*) before, after)
    calls: int
    policy_change_in_window: int  # of `offered`: reports made on a new configuration
    peak_inflight: int  # calls in flight at once (each client's peak, summed)
    gate_waits: int  # calls that waited for the generator's own limit (--max-inflight)
    failures: Counter[str]
    call_latency: list[float]
    report_latency: list[float]
    lag: list[float]
    collector_cpu_s: float
    database_cpu_s: float | None  # PostgreSQL backends serving the collectors, if seen
    client_cpu_s: float
    idle_collector_cores: float | None  # CPU seconds per second with no load
    idle_database_cores: float | None
    size_before: dict[str, int]
    size_after: dict[str, int]
    table_growth: dict[str, int]  # in the window, by table with its indexes
    # The whole run (warm-up, window, grace), for checking what was stored.
    acknowledged_ids: list[str]
    made_total: int
    duplicates: int
    rejected: int
    unacknowledged: int
    policy_change_reports: int
    stored_total: int | None
    stored_distinct: int | None
    acked_not_stored: int | None
    enrolled_in_s: float | None
    received: list[float | None]  # per collector, from its metrics (worker 0's only)
    notes: list[str] = field(default_factory=list)

    def cpu_per_report(self) -> float | None:
        return self.collector_cpu_s / self.stored_in_window if self.stored_in_window else None

    def devices_per_core(self) -> float | None:
        """Devices one core of collector CPU serves at the policy's cadence: reports per
        CPU-second, times the reporting interval."""
        per = self.cpu_per_report()
        return self.interval_s / per if per else None

    def cpu_per_report_above_idle(self) -> float | None:
        """The collector's CPU per report less what it spends with no load at all (a fixed
        cost per collector, not per device)."""
        if not self.stored_in_window or self.idle_collector_cores is None:
            return None
        busy = self.collector_cpu_s - self.idle_collector_cores * self.sampled_s
        return max(0.0, busy) / self.stored_in_window

    def bytes_per_report(self, key: str) -> float | None:
        if not self.stored_in_window or key not in self.size_before or key not in self.size_after:
            return None
        return (self.size_after[key] - self.size_before[key]) / self.stored_in_window

    def bytes_per_report_growing(self) -> float | None:
        """Growth per report of the tables that grow with reports, leaving out those of one
        row per device (and check), bounded by the fleet rather than by time."""
        if not self.stored_in_window or not self.table_growth:
            return None
        growth = sum(v for k, v in self.table_growth.items() if k not in PER_DEVICE_TABLES)
        return growth / self.stored_in_window

    def reports_per_device_month(self) -> float:
        return MONTH_DAYS * 86400 / self.interval_s


# -- the collectors -----------------------------------------------------------------------


def _cli(*argv: str) -> str:
    done = subprocess.run([COLLECTOR, *argv], capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"devposture-collector {' '.join(argv)} failed:\n{done.stderr}")
    return done.stdout


def _set(text: str, section: str, key: str, value: str) -> str:
    text, found = re.subn(rf"(?ms)^(\[{section}\].*?^{key} = )[^\n]*$", rf"\g<1>{value}", text,
                          count=1)  # fmt: skip
    if found != 1:
        raise RuntimeError(f"collector.toml has no [{section}] {key} line to change")
    return text


def _configure(data: Path, speedup: float, url: str | None = None) -> None:
    """The per-device rate limit scaled by the speedup (a device calls `speedup` times as
    often as it would in real time; the limit keeps its real-time meaning), no drain at stop
    (no balancer polls these collectors); `url`: the database this copy of a folder uses."""
    path = data / "collector.toml"
    text = path.read_text(encoding="utf-8")
    per_minute = max(60, math.ceil(60 * speedup))
    text = _set(text, "limits", "device_calls_per_minute", str(per_minute))
    text = _set(text, "server", "drain_seconds", "0")
    if url is not None:
        text = _set(text, "database", "url", json.dumps(url))
    path.write_text(text, encoding="utf-8")


@dataclass
class Serving:
    """A `devposture-collector serve` process of this run, or one already running."""

    data: Path
    enroll_port: int
    report_port: int
    pid: int | None
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def processes(self) -> list[psutil.Process]:
        """The serving process and its workers (now: a restarted worker is a new process)."""
        if self.pid is None:
            return []
        try:
            top = psutil.Process(self.pid)
            return [top, *top.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
            return None
        finally:
            self.process = None
            if self.log is not None:
                self.log.close()

    def output(self) -> str:
        path = self.data.parent / f"{self.data.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def received(self) -> float | None:
        """Reports this collector acknowledged, from its metrics endpoint (with several
        workers: worker 0's only, the one that serves metrics); None if it cannot be read."""
        ready = self.data.parent / f"{self.data.name}.ready"
        try:
            if ready.exists():
                port = int(json.loads(ready.read_text(encoding="utf-8"))["metrics_port"])
            else:
                port = load(self.data).metrics_port
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
        except (OSError, KeyError, ValueError):
            return None
        return sum(float(m.group(1)) for m in re.finditer(
            r"^devposture_reports_received_total(?:\{[^}]*\})? (\S+)$", text, re.M))  # fmt: skip


def start_collector(data: Path, workers: int, enroll_port: int, report_port: int) -> Serving:
    ready = data.parent / f"{data.name}.ready"
    ready.unlink(missing_ok=True)
    log = (data.parent / f"{data.name}.log").open("ab")
    argv = [COLLECTOR, "serve", "--data", str(data), "--enroll-port", str(enroll_port),
            "--report-port", str(report_port), "--admin-port", "0", "--metrics-port", "0",
            "--web-port", "0", "--ready-file", str(ready)]  # fmt: skip
    if workers > 1:
        argv += ["--workers", str(workers)]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    serving = Serving(data, enroll_port, report_port, process.pid, process, log)
    deadline = time.monotonic() + READY_SECONDS
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            serving.stop()
            output = serving.output()[-3000:]
            raise RuntimeError(f"the collector in {data} did not start:\n{output}")
        time.sleep(0.05)
    return serving


def running_collector(data: Path) -> Serving:
    """A collector someone else runs: ports from collector.toml, process from the lock."""
    config = load(data)
    pid: int | None = None
    with contextlib.suppress(OSError, ValueError):
        pid = int((data / "collector.lock").read_text().strip())
    return Serving(data, config.enroll_port, config.report_port, pid)


# -- PostgreSQL ---------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def _database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")


def _admin(server: str, *statements: str) -> None:
    import psycopg  # noqa: PLC0415 (PostgreSQL only)

    with psycopg.connect(server, autocommit=True) as connection:
        for sql in statements:
            connection.execute(sql.encode())  # names made here, quoted


def _database_exists(server: str, name: str) -> bool:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(server, autocommit=True) as connection:
        row = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return row.fetchone() is not None


def _create_database(server: str, name: str, template: str = "template0") -> None:
    _admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\'')


def _drop_database(server: str, name: str) -> None:
    _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- measuring the server side ------------------------------------------------------------


def _cpu(processes: Sequence[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        out[process.pid] = times.user + times.system
    return out


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples by the processes of the second (one that started in
    between counts from zero; one that ended in between is lost)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def _database_backends(target: DatabaseTarget) -> list[psutil.Process]:
    """The PostgreSQL server processes serving the collectors' connections to this database
    (application_name devposture-collector); empty on SQLite, or if they cannot be read."""
    if not isinstance(target, PostgresTarget):
        return []
    import psycopg  # noqa: PLC0415

    try:
        with psycopg.connect(target.url, autocommit=True, application_name="fleet_load") as c:
            rows = c.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'devposture-collector'"
            ).fetchall()
    except psycopg.Error:
        return []
    out = []
    for (pid,) in rows:
        with contextlib.suppress(psutil.Error):
            out.append(psutil.Process(int(pid)))
    return out


def database_size(target: DatabaseTarget) -> dict[str, int]:
    """SQLite: the file, its WAL, and the pages in use (page_count - freelist_count, in
    bytes: what the rows and indexes take, whatever the WAL holds). PostgreSQL: the
    database (pg_database_size) and the tables of the collector's schema with their
    indexes and TOAST."""
    if isinstance(target, SqliteTarget):
        path = target.path
        wal = path.with_name(path.name + "-wal")
        sizes = {"file": path.stat().st_size, "wal": wal.stat().st_size if wal.exists() else 0}
        db = connect(target, read_only=True)
        try:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
        finally:
            db.close()
        sizes["file+wal"] = sizes["file"] + sizes["wal"]
        sizes["pages"] = (int(pages) - int(free)) * int(size)
        return sizes
    import psycopg  # noqa: PLC0415

    with psycopg.connect(target.url, autocommit=True, application_name="fleet_load") as c:
        database = c.execute("SELECT pg_database_size(current_database())").fetchone()
        tables = c.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
        ).fetchone()
    assert database is not None and tables is not None
    return {"database": int(database[0]), "tables": int(tables[0])}


def stored_count(target: DatabaseTarget) -> int:
    db = connect(target, read_only=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
    finally:
        db.close()


def table_sizes(target: DatabaseTarget) -> dict[str, int]:
    """Bytes by table, its indexes included: SQLite's dbstat (empty if this SQLite lacks
    it), or PostgreSQL's pg_total_relation_size (indexes and TOAST) of the schema's tables."""
    if isinstance(target, SqliteTarget):
        db = connect(target, read_only=True)
        try:
            rows = db.execute(
                "SELECT COALESCE(m.tbl_name, d.name), SUM(d.pgsize) FROM dbstat d"
                " LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
            ).fetchall()
        except sqlite3.Error:
            return {}
        finally:
            db.close()
        return {str(name): int(size) for name, size in rows}
    import psycopg  # noqa: PLC0415

    with psycopg.connect(target.url, autocommit=True, application_name="fleet_load") as c:
        rows = c.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


# -- enrolling the fleet ------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    device_id: str
    hostname: str
    state: str  # the agent's state folder


def _enroll_one(state_dir: Path, hostname: str, ports: Sequence[int], token: str,
                pin: str) -> Device:  # fmt: skip
    state = AgentState(state_dir)
    attempt = 0
    while True:
        port = ports[(attempt + hash(hostname)) % len(ports)]
        try:
            enrollment = enroll(state, CollectorAddress("127.0.0.1", port), token, pin,
                                host_info(hostname))  # fmt: skip
            return Device(enrollment.device_id, hostname, str(state_dir))
        except TryLater as exc:
            attempt += 1
            if attempt > 50:
                raise
            time.sleep(exc.retry_after if exc.retry_after is not None else 0.5)
        except EnrollError:
            attempt += 1
            if attempt > 5:
                raise
            time.sleep(0.5)


def enroll_fleet(data: Path, ports: Sequence[int], folder: Path, count: int, threads: int,
                 say: Callable[[str], None]) -> list[Device]:  # fmt: skip
    """`count` devices enrolled through the enrollment ports `ports` (in turn), with one token
    good for `count` uses made directly in the store."""
    config = load(data)
    store = Store.open(config.database)
    try:
        token = new_token()
        now = dt.datetime.now(dt.UTC)
        store.identity.add_token(token, now, now + dt.timedelta(days=2), uses=count)
    finally:
        store.close()
    pin = pin_of(x509.load_pem_x509_certificate(config.ca_cert.read_bytes()))
    folder.mkdir(parents=True, exist_ok=True)
    done = [0]
    lock = threading.Lock()
    step = max(1, count // 10)

    def one(i: int) -> Device:
        name = f"sim-{i:06d}"
        device = _enroll_one(folder / name, name, ports, str(token), pin)
        with lock:
            done[0] += 1
            if done[0] % step == 0:
                say(f"  enrolled {done[0]} of {count}")
        return device

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


# -- the cache of enrolled fleets ---------------------------------------------------------


def _cache_entry(cache: Path, engine: str, count: int, server: str | None) -> Path:
    key = f"{engine}-{count}"
    if server is not None:
        key += "-" + hashlib.sha256(f"{server}|{cache.resolve()}".encode()).hexdigest()[:10]
    return cache / key


def _template_name(entry: Path) -> str:
    digest = hashlib.sha256(str(entry.resolve()).encode()).hexdigest()[:10]
    return f"devposture_fleet_cache_{digest}"


def _cache_usable(entry: Path, server: str | None) -> list[Device] | None:
    """The cached fleet, if complete, its certificates good for another day, and (on
    PostgreSQL) its template database still on the server."""
    meta_path = entry / "fleet.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != CACHE_FORMAT:
        return None
    if meta["not_after"] < time.time() + 86400:
        return None
    if server is not None and not _database_exists(server, meta["template"]):
        return None
    return [Device(d, h, str(entry / "agents" / h)) for d, h in meta["devices"]]


def _cache_save(entry: Path, run_data: Path, devices: list[Device],
                server: str | None, run_url: str | None) -> None:  # fmt: skip
    """The data folder as it is after enrollment (collector stopped) and, on PostgreSQL, a
    template database copied from the run's; fleet.json last (it marks the entry whole)."""
    shutil.copytree(run_data, entry / "collector", ignore=shutil.ignore_patterns("workers"))
    meta: dict[str, Any] = {"format": CACHE_FORMAT, "devices": [[d.device_id, d.hostname]
                                                               for d in devices]}  # fmt: skip
    first = AgentState(Path(devices[0].state))
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    meta["not_after"] = cert.not_valid_after_utc.timestamp()
    if server is not None and run_url is not None:
        meta["template"] = _template_name(entry)
        _drop_database(server, meta["template"])
        _create_database(server, meta["template"], template=_database_name(run_url))
    (entry / "fleet.json").write_text(json.dumps(meta), encoding="utf-8")


# -- the simulated agents (client processes) ----------------------------------------------


@dataclass(frozen=True)
class Share:
    devices: list[Device]
    ports: list[int]
    connection: str
    interval_s: float  # simulated seconds
    jitter: float
    speedup: float
    start_at: float  # time.time(): simulated time 0
    window_start: float
    window_end: float  # no new reports after it
    hard_end: float  # deliveries still failing are given up here
    max_inflight: int
    seed: int


class _Agent:
    __slots__ = ("channel", "config_version", "credentials", "device", "failures", "pending",
                 "sending", "verdicts_held")  # fmt: skip

    def __init__(self, device: Device) -> None:
        state = AgentState(Path(device.state))
        self.device = device
        self.credentials = grpc.ssl_channel_credentials(
            root_certificates=state.ca_path.read_bytes(),
            private_key=state.key_path.read_bytes(),
            certificate_chain=state.cert_path.read_bytes(),
        )
        self.config_version = state.config_version()
        self.pending: list[tuple[pb.PostureReport, float]] = []
        self.sending = False
        self.failures = 0
        self.channel: grpc.aio.Channel | None = None
        # The digest of the verdicts this agent holds, sent as the agent sends it.
        self.verdicts_held = b""


class _Fleet:
    def __init__(self, share: Share) -> None:
        self.share = share
        self.rng = random.Random(share.seed)
        self.agents = [_Agent(d) for d in share.devices]
        self.gate = asyncio.Semaphore(share.max_inflight)
        self.turn = 0
        self.inflight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.stats: dict[str, Any] = {
            "offered": 0, "acknowledged": 0, "calls": 0, "made": 0, "duplicates": 0,
            "rejected": 0, "policy_change": 0, "policy_change_window": 0, "gate_waits": 0,
            "peak_inflight": 0, "failures": Counter[str](),
            "call_latency": [], "report_latency": [], "lag": [], "ids": [],
        }  # fmt: skip
        base = (*CHANNEL_OPTIONS, ("grpc.default_authority", "localhost"),
                ("grpc.use_local_subchannel_pool", 1))  # fmt: skip
        if share.connection == "kept":
            self.options: tuple[tuple[str, Any], ...] = (
                *base, ("grpc.lb_policy_name", "round_robin"))
            self.all_targets = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in share.ports)
        else:
            self.options = base
            self.all_targets = ""

    def in_window(self, moment: float) -> bool:
        return self.share.window_start <= moment < self.share.window_end

    def report(self, agent: _Agent, trigger: pb.CollectionTrigger.ValueType,
               due: float | None = None) -> None:  # fmt: skip
        """Collect: a new report into the agent's outbox, with the outbox's state. `due`:
        when the schedule wanted it (how late the generator is: its own saturation)."""
        now = time.time()
        if due is not None and self.in_window(now):
            self.stats["lag"].append(now - due)
        simulated_hour = int((now - self.share.start_at) * self.share.speedup // 3600)
        report = posture_report(
            agent.device.device_id, dt.datetime.now(dt.UTC), trigger=trigger,
            hostname=agent.device.hostname, updates_pending=40 + (simulated_hour // 8) % 5,
        )  # fmt: skip
        report.delivery.pending_reports = len(agent.pending)
        report.delivery.pending_bytes = sum(r.ByteSize() for r, _ in agent.pending)
        report.delivery.max_bytes = 32 << 20
        agent.pending.append((report, now))
        self.stats["made"] += 1
        if self.in_window(now):
            self.stats["offered"] += 1
            if trigger == pb.COLLECTION_TRIGGER_POLICY_CHANGE:
                self.stats["policy_change_window"] += 1
        if not agent.sending:
            agent.sending = True
            task = asyncio.get_running_loop().create_task(self.deliver(agent))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _channel(self, agent: _Agent) -> tuple[grpc.aio.Channel, bool]:
        """The channel for one delivery, and whether to close it after."""
        if self.share.connection == "kept":
            if agent.channel is None:
                agent.channel = grpc.aio.secure_channel(self.all_targets, agent.credentials,
                                                        options=self.options)  # fmt: skip
            return agent.channel, False
        port = self.share.ports[self.turn % len(self.share.ports)]
        self.turn += 1
        channel = grpc.aio.secure_channel(f"ipv4:127.0.0.1:{port}", agent.credentials,
                                          options=self.options)  # fmt: skip
        return channel, True

    async def _call(self, agent: _Agent, batch: list[pb.PostureReport]) -> pb.ReportBatchResponse:
        channel, close = self._channel(agent)
        try:
            request = pb.ReportBatchRequest(reports=batch, config_version=agent.config_version,
                                            verdicts_held=agent.verdicts_held)  # fmt: skip
            request.sent_at.GetCurrentTime()
            stub = pb_grpc.CollectorStub(channel)
            return await stub.ReportBatch(request, timeout=BATCH_DEADLINE_SECONDS)
        finally:
            if close:
                await channel.close()

    async def deliver(self, agent: _Agent) -> None:
        """Drain the agent's outbox as agent.transport.drain does, retrying after the agent's
        backoff until it is empty or the run gives up."""
        stats = self.stats
        try:
            while agent.pending and time.time() < self.share.hard_end:
                batch = agent.pending[:MAX_BATCH_REPORTS]
                failure: grpc.aio.AioRpcError | None = None
                if self.gate.locked() and self.in_window(time.time()):
                    stats["gate_waits"] += 1
                async with self.gate:
                    self.inflight += 1
                    stats["peak_inflight"] = max(stats["peak_inflight"], self.inflight)
                    started = time.time()
                    try:
                        response = await self._call(agent, [r for r, _ in batch])
                    except grpc.aio.AioRpcError as exc:
                        failure = exc
                    finally:
                        self.inflight -= 1
                    ended = time.time()
                if self.in_window(ended):
                    stats["calls"] += 1
                if failure is not None:
                    stats["failures"][failure.code().name] += 1
                    await asyncio.sleep(self._backoff(agent, failure))
                    continue
                agent.failures = 0
                if self.in_window(ended):
                    stats["call_latency"].append(ended - started)
                self._apply(agent, batch, response, ended)
        finally:
            agent.sending = False

    def _apply(self, agent: _Agent, batch: list[tuple[pb.PostureReport, float]],
               response: pb.ReportBatchResponse, ended: float) -> None:  # fmt: skip
        stats = self.stats
        made = {r.report_id: at for r, at in batch}
        answered = set()
        for ack in response.acks:
            if ack.report_id not in made:
                continue
            answered.add(ack.report_id)
            stats["ids"].append(ack.report_id)
            stats["duplicates"] += ack.duplicate
            if self.in_window(ended):
                stats["acknowledged"] += 1
                stats["report_latency"].append(ended - made[ack.report_id])
        for rejection in response.rejections:
            if rejection.report_id in made:
                answered.add(rejection.report_id)
                stats["rejected"] += 1
        agent.pending = [(r, at) for r, at in agent.pending if r.report_id not in answered]
        if response.acks and response.acks[-1].verdicts_digest:
            agent.verdicts_held = response.acks[-1].verdicts_digest
        if response.HasField("config") and response.config.version != agent.config_version:
            # Saved, as the agent does: a later run on the same (cached) fleet starts with it.
            AgentState(Path(agent.device.state)).save_config(response.config)
            agent.config_version = response.config.version
            if ended < self.share.window_end:  # judged under the new configuration at once
                stats["policy_change"] += 1
                self.report(agent, pb.COLLECTION_TRIGGER_POLICY_CHANGE)

    def _backoff(self, agent: _Agent, exc: grpc.aio.AioRpcError) -> float:
        """agent.backoff in simulated time; the collector's hint (about its real load) in
        real time."""
        agent.failures += 1
        longest = max(FIRST_BACKOFF, min(LONGEST_BACKOFF, self.share.interval_s))
        step = min(longest, FIRST_BACKOFF * 2.0 ** min(agent.failures - 1, 30))
        floor = min(1.0, step)
        delay = (floor + (step - floor) * self.rng.random()) / self.share.speedup
        _, hint = retry_hint(exc)
        return max(delay, hint or 0.0)

    async def run(self) -> dict[str, Any]:
        share = self.share
        per_wall = share.interval_s / share.speedup
        due: list[tuple[float, int]] = []
        for index in range(len(self.agents)):  # each device at its own phase
            heapq.heappush(due, (share.start_at + self.rng.random() * per_wall, index))
        while due:
            moment, index = due[0]
            if moment >= share.window_end:
                break
            now = time.time()
            if moment > now:
                await asyncio.sleep(min(moment - now, 0.5))
                continue
            heapq.heappop(due)
            self.report(self.agents[index], pb.COLLECTION_TRIGGER_INTERVAL, moment)
            step = per_wall * (1 + self.rng.uniform(-share.jitter, share.jitter))
            heapq.heappush(due, (moment + step, index))
        while self.tasks and time.time() < share.hard_end:
            await asyncio.wait(set(self.tasks), timeout=1.0)
        for task in list(self.tasks):
            task.cancel()
        for agent in self.agents:
            if agent.channel is not None:
                await agent.channel.close()
        self.stats["unacknowledged"] = sum(len(a.pending) for a in self.agents)
        return self.stats


def simulate(share: Share, out: Connection) -> None:
    """A client process: its share of the fleet, one asyncio loop."""
    try:
        out.send(asyncio.run(_Fleet(share).run()))
    except BaseException as exc:
        out.send({"error": repr(exc)})
        raise


# -- a run --------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


@dataclass
class _Setup:
    root: Path
    engine: str
    server: str | None = None  # where a fresh database was made (dropped at the end)
    run_url: str | None = None
    serving: list[Serving] = field(default_factory=list)
    enrolled_in_s: float | None = None


def _first_folder(
    options: Options, setup: _Setup, say: Callable[[str], None]
) -> tuple[Path, list[Device]]:
    """The first collector's data folder with the fleet enrolled (from the cache, or now)."""
    data = setup.root / "collector-0"
    entry = None
    if options.cache is not None:
        entry = _cache_entry(options.cache, setup.engine, options.devices, setup.server)
        cached = _cache_usable(entry, setup.server)
        if cached is not None:
            say(f"fleet of {options.devices} from the cache {entry}")
            shutil.copytree(entry / "collector", data)
            if setup.server is not None:
                assert setup.run_url is not None
                meta = json.loads((entry / "fleet.json").read_text(encoding="utf-8"))
                _create_database(setup.server, _database_name(setup.run_url), meta["template"])
            _configure(data, options.speedup, setup.run_url)
            return data, cached
        if entry.exists():
            shutil.rmtree(entry)
        entry.mkdir(parents=True)
    if setup.server is not None:
        assert setup.run_url is not None
        _create_database(setup.server, _database_name(setup.run_url))
    database = setup.run_url or options.existing_database
    _cli("init", "--data", str(data), *(["--database", database] if database else []))
    _configure(data, options.speedup)
    say(f"enrolling {options.devices} devices ({options.enroll_threads} threads)")
    enroll_port, report_port = free_ports(2)
    serving = start_collector(data, 1, enroll_port, report_port)
    started = time.monotonic()
    try:
        agents = entry / "agents" if entry is not None else setup.root / "agents"
        devices = enroll_fleet(data, [enroll_port], agents, options.devices,
                               options.enroll_threads, say)  # fmt: skip
    finally:
        code = serving.stop()
    setup.enrolled_in_s = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"the collector stopped with {code}:\n{serving.output()[-3000:]}")
    say(f"enrolled {len(devices)} devices in {setup.enrolled_in_s:.1f} s")
    if entry is not None:
        _cache_save(entry, data, devices, setup.server, setup.run_url)
    return data, devices


def _start_all(options: Options, setup: _Setup, first: Path) -> None:
    folders = [first]
    for k in range(1, options.collectors):
        data = setup.root / f"collector-{k}"
        enroll_port, report_port = free_ports(2)
        _cli("init", "--data", str(data), "--join", str(first),
             "--enroll-port", str(enroll_port), "--report-port", str(report_port))  # fmt: skip
        _configure(data, options.speedup)
        folders.append(data)
    for data in folders:
        enroll_port, report_port = free_ports(2)
        setup.serving.append(start_collector(data, options.workers, enroll_port, report_port))


def run(options: Options) -> Result:
    """One run: collectors up, the fleet enrolled (or reused), the load, the figures. The
    collectors made here are stopped and a database made here is dropped before it returns."""

    def say(text: str) -> None:
        if not options.quiet:
            print(text, flush=True)

    if options.collectors > 1 and options.database is None and options.existing_database is None:
        raise SystemExit("several collectors share a PostgreSQL database: give --database")
    if options.database and options.existing_database:
        raise SystemExit("--database makes a database, --existing-database uses one: not both")
    if options.cache is not None and (options.existing_database or options.running):
        raise SystemExit("--cache is for fleets this generator enrolls on databases it makes")
    interval_s = 60.0 * (options.interval_minutes or default_policy().report_interval_minutes)
    warmup_s = 60.0 * options.warmup_minutes if options.warmup_minutes is not None else interval_s
    temporary = None
    if options.work is None:
        temporary = tempfile.TemporaryDirectory(prefix="devposture-fleet-")
        root = Path(temporary.name)
    else:
        root = options.work
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"{root} is not empty: give --work a new or empty folder")
        root.mkdir(parents=True, exist_ok=True)
    engine = "postgresql" if (options.database or options.existing_database) else "sqlite"
    setup = _Setup(root, engine)
    if options.database:
        setup.server = options.database
        name = f"devposture_fleet_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        setup.run_url = _with_database(options.database, name)
    try:
        if options.running:
            setup.serving = [running_collector(d) for d in options.running]
            target = load(options.running[0]).database
            engine = setup.engine = "postgresql" if isinstance(target, PostgresTarget) else "sqlite"
            say(f"enrolling {options.devices} devices ({options.enroll_threads} threads)")
            started = time.monotonic()
            devices = enroll_fleet(options.running[0], [s.enroll_port for s in setup.serving],
                                   root / "agents", options.devices, options.enroll_threads,
                                   say)  # fmt: skip
            setup.enrolled_in_s = time.monotonic() - started
        else:
            first, devices = _first_folder(options, setup, say)
            _start_all(options, setup, first)
            target = load(first).database
        return _load(options, setup, devices, target, interval_s, warmup_s, say)
    finally:
        codes = [s.stop() for s in setup.serving]
        if setup.server is not None and setup.run_url is not None:
            _drop_database(setup.server, _database_name(setup.run_url))
        if temporary is not None:
            temporary.cleanup()
        if any(code not in (0, None) for code in codes):
            print(f"warning: a collector stopped with {codes}", file=sys.stderr)


def _load(options: Options, setup: _Setup, devices: list[Device], target: DatabaseTarget,
          interval_s: float, warmup_s: float, say: Callable[[str], None]) -> Result:  # fmt: skip
    speedup = options.speedup
    window_wall = 60.0 * options.minutes / speedup
    clients = max(1, min(options.clients, len(devices)))
    def servers() -> list[psutil.Process]:
        return [p for s in setup.serving for p in s.processes()]

    idle: tuple[float | None, float | None] = (None, None)
    if options.idle_seconds > 0:
        say(f"the collectors with no load for {options.idle_seconds:g} s")
        backends = _database_backends(target)
        before = (_cpu(servers()), _cpu(backends))
        time.sleep(options.idle_seconds)
        after = (_cpu(servers()), _cpu(_database_backends(target)))
        seconds = options.idle_seconds
        database_idle = _cpu_delta(before[1], after[1]) / seconds if backends else None
        idle = (_cpu_delta(before[0], after[0]) / seconds, database_idle)
    start_at = time.time() + 3.0 + 0.0005 * len(devices) / clients  # clients load their share
    window_start = start_at + warmup_s / speedup
    window_end = window_start + window_wall
    hard_end = window_end + options.grace_seconds
    ports = [s.report_port for s in setup.serving]
    say(f"load: {len(devices)} devices, a report each {interval_s / 60:g} min (simulated),"
        f" x{speedup:g}: warm-up {warmup_s / 60:g} min, measured {options.minutes:g} min"
        f" = {window_wall:.1f} s of wall time")  # fmt: skip
    spawn = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for k in range(clients):
        share = Share(devices[k::clients], ports, options.connection, interval_s,
                      options.jitter, speedup, start_at, window_start, window_end, hard_end,
                      options.max_inflight, options.seed * 1000 + k)  # fmt: skip
        receive, send = spawn.Pipe(duplex=False)
        process = spawn.Process(target=simulate, args=(share, send), daemon=True)
        process.start()
        pipes.append(receive)
        processes.append(process)
    client_procs = [psutil.Process(p.pid) for p in processes if p.pid is not None]
    me = psutil.Process()
    def sample(backends: list[psutil.Process]) -> tuple[float, int, dict[str, int],
                                                        tuple[dict[int, float], ...]]:  # fmt: skip
        """The rows stored, then at once the time, the database's size and every process's
        CPU (a count that had to wait for a lock does not shift the others from it)."""
        count = stored_count(target)
        moment = time.time()
        cpu = (_cpu(servers()), _cpu(backends), _cpu([*client_procs, me]))
        return moment, count, database_size(target), cpu

    _sleep_until(window_start - 0.5)
    backends = _database_backends(target)
    _sleep_until(window_start)
    t0, count_before, size_before, cpu_before = sample(backends)
    tables_before = table_sizes(target)
    _sleep_until(window_end - 0.5)
    backends_after = _database_backends(target)
    _sleep_until(window_end)
    t1, count_after, size_after, cpu_after = sample(backends_after)
    tables_after = table_sizes(target)
    late = max(t0 - window_start, t1 - window_end)
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join(60)
    received = [s.received() for s in setup.serving]
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"a client process failed: {errors}")
    total: dict[str, Any] = {}
    for r in results:
        for key, value in r.items():
            if isinstance(value, list):
                total.setdefault(key, []).extend(value)
            elif isinstance(value, Counter):
                total.setdefault(key, Counter()).update(value)
            else:
                total[key] = total.get(key, 0) + value
    ids: list[str] = total["ids"]
    stored_total = stored_distinct = missing = None
    with contextlib.suppress(Exception):  # a count the figures do not depend on
        db = connect(target, read_only=True)
        try:
            stored = [str(r[0]) for r in db.execute("SELECT report_id FROM reports").fetchall()]
        finally:
            db.close()
        stored_total, stored_distinct = len(stored), len(set(stored))
        missing = len(set(ids) - set(stored))
    notes = []
    if late > 1.0:
        notes.append(f"the server side was sampled up to {late:.1f} s after the window's"
                     f" bounds (a busy machine, or the database's lock): its figures cover"
                     f" the {t1 - t0:.1f} s between the samples")  # fmt: skip
    if not backends and isinstance(target, PostgresTarget):
        notes.append("the PostgreSQL backends' CPU could not be read")
    return Result(
        options=options, interval_s=interval_s, devices=len(devices), engine=setup.engine,
        data_folders=[s.data for s in setup.serving], window_wall_s=window_wall,
        sampled_s=t1 - t0,
        window_sim_s=60.0 * options.minutes, target_per_s=len(devices) / interval_s * speedup,
        offered=total["offered"], acknowledged=total["acknowledged"], calls=total["calls"],
        stored_in_window=count_after - count_before,
        policy_change_in_window=total["policy_change_window"],
        peak_inflight=total["peak_inflight"], gate_waits=total["gate_waits"],
        failures=total["failures"], call_latency=total["call_latency"],
        report_latency=total["report_latency"], lag=total["lag"],
        collector_cpu_s=_cpu_delta(cpu_before[0], cpu_after[0]),
        database_cpu_s=_cpu_delta(cpu_before[1], cpu_after[1]) if backends_after else None,
        client_cpu_s=_cpu_delta(cpu_before[2], cpu_after[2]),
        idle_collector_cores=idle[0], idle_database_cores=idle[1],
        size_before=size_before, size_after=size_after, acknowledged_ids=ids,
        table_growth={k: v - tables_before.get(k, 0) for k, v in tables_after.items()},
        made_total=total["made"], duplicates=total["duplicates"], rejected=total["rejected"],
        unacknowledged=total["unacknowledged"], policy_change_reports=total["policy_change"],
        stored_total=stored_total, stored_distinct=stored_distinct, acked_not_stored=missing,
        enrolled_in_s=setup.enrolled_in_s, received=received, notes=notes,
    )  # fmt: skip


# -- showing the figures ------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _mib(value: float) -> str:
    return f"{value / (1 << 20):.1f} MiB"


def print_result(r: Result) -> None:
    o = r.options
    w = r.window_wall_s
    how = f"{len(o.running)} running collector(s)" if o.running else f"{o.collectors} collector(s)"
    print(f"{os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, grpcio {grpc.__version__};"
          f" {r.engine}, {how} x {o.workers} worker(s), {r.devices} devices, a report every"
          f" {r.interval_s / 60:g} min, x{o.speedup:g} ({o.minutes:g} simulated min in"
          f" {w:.1f} s), connection {o.connection}, {o.clients} client process(es)")  # fmt: skip
    print("note: the load generator runs on the same machine and cores as the collectors"
          " (and the database); its own CPU is shown apart; other jobs may run alongside")
    if r.enrolled_in_s is not None:
        print(f"enrollment: {r.devices} devices in {r.enrolled_in_s:.1f} s"
              f" ({r.devices / r.enrolled_in_s:.1f}/s)")  # fmt: skip
    fails = ", ".join(f"{k} {v}" for k, v in r.failures.most_common()) or "none"
    print(f"reports offered   {r.offered / w:8.1f}/s  (target {r.target_per_s:.1f}/s: {r.devices}"
          f" devices / {r.interval_s:g} s x {o.speedup:g}; {r.offered} in the window, of them"
          f" {r.policy_change_in_window} on a new configuration)")  # fmt: skip
    print(f"reports acked     {r.acknowledged / w:8.1f}/s  ({r.acknowledged} in the window,"
          f" {r.calls} calls; failures over the run: {fails})")  # fmt: skip
    stored_rate = r.stored_in_window / r.sampled_s
    print(f"reports stored    {stored_rate:8.1f}/s  ({r.stored_in_window} rows added in the"
          " window, counted in the database: the figures per report below divide by this)")
    print(f"ack latency       call p50 {_ms(_percentile(r.call_latency, 0.5))}, p99"
          f" {_ms(_percentile(r.call_latency, 0.99))}; report (collected -> acked) p50"
          f" {_ms(_percentile(r.report_latency, 0.5))}, p99"
          f" {_ms(_percentile(r.report_latency, 0.99))}")  # fmt: skip
    limit = o.max_inflight * o.clients
    print(f"load generator    reports made late by p99 {_ms(_percentile(r.lag, 0.99))};"
          f" calls in flight at most {r.peak_inflight} (limit {limit}), {r.gate_waits} calls"
          " waited for that limit")  # fmt: skip
    per = r.cpu_per_report()
    above = r.cpu_per_report_above_idle()
    idle = ("" if r.idle_collector_cores is None else
            f"; with no load it used {r.idle_collector_cores:.3f} core(s)")  # fmt: skip
    print(f"collector CPU     {r.collector_cpu_s:.2f} s in the window ="
          f" {r.collector_cpu_s / r.sampled_s:.2f} core(s) busy;"
          f" {'-' if per is None else f'{per * 1e3:.2f} ms'} per stored report{idle}")  # fmt: skip
    if r.database_cpu_s is not None and r.stored_in_window:
        idle = ("" if r.idle_database_cores is None else
                f"; with no load {r.idle_database_cores:.3f} core(s)")  # fmt: skip
        print(f"PostgreSQL CPU    {r.database_cpu_s:.2f} s (its backends serving the"
              f" collectors) = {r.database_cpu_s / r.stored_in_window * 1e3:.2f} ms per stored"
              f" report{idle}")  # fmt: skip
    if r.stored_in_window:
        print(f"generator CPU     {r.client_cpu_s:.2f} s = {r.client_cpu_s / r.sampled_s:.2f}"
              f" core(s) busy; {r.client_cpu_s / r.stored_in_window * 1e3:.2f} ms per stored"
              " report (not the collector's)")
    cores = r.devices_per_core()
    if cores is not None and per is not None:
        print(f"devices per collector core at a report every {r.interval_s / 60:g} min:"
              f" {cores:,.0f} (= {r.interval_s:g} s / {per * 1e3:.2f} ms of collector CPU per"
              " report)")  # fmt: skip
        if above:
            print(f"  above the collector's no-load CPU ({above * 1e3:.2f} ms per report):"
                  f" {r.interval_s / above:,.0f} devices per core, plus"
                  f" {r.idle_collector_cores or 0:.3f} core(s) per collector whatever the"
                  " load")  # fmt: skip
        if r.database_cpu_s is not None:
            both = r.interval_s / ((r.collector_cpu_s + r.database_cpu_s) / r.stored_in_window)
            print(f"  counting the PostgreSQL backends' CPU too: {both:,.0f} devices per core")
    month = r.reports_per_device_month()
    for key in ("file+wal", "pages", "database", "tables"):
        per_report = r.bytes_per_report(key)
        if per_report is None:
            continue
        growth = r.size_after[key] - r.size_before[key]
        print(f"database {key:9} {_mib(r.size_before[key])} -> {_mib(r.size_after[key])}"
              f" (+{_mib(growth)}): {per_report:,.0f} B per stored report,"
              f" x {month:g} reports = {per_report * month / (1 << 20):.2f} MiB per device per"
              f" {MONTH_DAYS}-day month")  # fmt: skip
    by_table = sorted(r.table_growth.items(), key=lambda kv: -kv[1])
    shown = [f"{name} {size / r.stored_in_window:,.0f}" for name, size in by_table[:8]
             if size > 0 and r.stored_in_window]  # fmt: skip
    if shown:
        print(f"  growth per stored report by table (with its indexes), bytes:"
              f" {', '.join(shown)}")  # fmt: skip
    growing = r.bytes_per_report_growing()
    if growing is not None:
        print(f"  without {' and '.join(PER_DEVICE_TABLES)} (a row per device or per device"
              f" and check, rewritten by each report: bounded by the fleet, not by time):"
              f" {growing:,.0f} B per stored report = {growing * month / (1 << 20):.2f} MiB"
              f" per device per {MONTH_DAYS}-day month")  # fmt: skip
    print(f"  extrapolated: growth in the window / reports stored in it x reports a device makes"
          f" in {MONTH_DAYS} days at the policy's interval; assumes growth linear in reports (no"
          " retention: the collector keeps every report), verdicts changing as rarely as in"
          " this simulation, and no reports besides the interval's (network or backup events,"
          " policy changes and restarts add theirs)")  # fmt: skip
    stored = ("-" if r.stored_total is None else
              f"{r.stored_total} stored, {r.stored_distinct} distinct,"
              f" {r.acked_not_stored} acked but not stored")  # fmt: skip
    print(f"whole run: {r.made_total} reports made ({r.policy_change_reports} on a new"
          f" configuration), {len(r.acknowledged_ids)} acked ({r.duplicates} as duplicates),"
          f" {r.rejected} rejected, {r.unacknowledged} still unacknowledged when the grace"
          f" period ended; database: {stored}")
    if any(x is not None for x in r.received):
        counts = ", ".join("-" if x is None else f"{x:.0f}" for x in r.received)
        whose = " (worker 0 of each only)" if o.workers > 1 else ""
        print(f"reports acknowledged per collector over the run (its metrics{whose}): {counts}")
    for note in r.notes:
        print(f"note: {note}")


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--collectors", type=int, default=1,
                        help="collectors on one PostgreSQL (init --join)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="serve --workers, each collector")
    parser.add_argument("--database", metavar="URL",
                        help="a PostgreSQL server: a fresh database is made on it, dropped"
                        " after (default: SQLite)")  # fmt: skip
    parser.add_argument("--existing-database", metavar="URL",
                        help="use this PostgreSQL database as it is")  # fmt: skip
    parser.add_argument("--running", type=Path, action="append", default=[], metavar="DATA",
                        help="a collector serving this data folder (repeatable)")  # fmt: skip
    parser.add_argument("--speedup", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated minutes measured")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="simulated minutes before (default: one interval)")  # fmt: skip
    parser.add_argument("--interval-minutes", type=float, default=None,
                        help="default: the policy's report_interval_minutes")  # fmt: skip
    parser.add_argument("--jitter", type=float, default=0.02, help="of the interval, +/-")
    parser.add_argument("--connection", choices=("per-report", "kept"), default="per-report")
    parser.add_argument("--clients", type=int, default=1, help="load generator processes")
    parser.add_argument("--max-inflight", type=int, default=256, help="calls per client process")
    parser.add_argument("--grace-seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="seconds of no load measured first (0: none)")  # fmt: skip
    parser.add_argument("--enroll-threads", type=int, default=8)
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep enrolled fleets here and reuse them")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None,
                        help="the run's folder, kept (default: a temporary one)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return Options(
        devices=args.devices, collectors=args.collectors, workers=args.workers,
        database=args.database, existing_database=args.existing_database,
        running=tuple(args.running), speedup=args.speedup, minutes=args.minutes,
        warmup_minutes=args.warmup_minutes, interval_minutes=args.interval_minutes,
        jitter=args.jitter, connection=args.connection, clients=args.clients,
        max_inflight=args.max_inflight, grace_seconds=args.grace_seconds,
        idle_seconds=args.idle_seconds,
        enroll_threads=args.enroll_threads, cache=args.cache, work=args.work, seed=args.seed,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    options = _parse(argv)
    print_result(run(options))


if __name__ == "__main__":
    main()

