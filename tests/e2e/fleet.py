"""A simulated fleet against a real collector process, for fault tests and benchmarks.

`CollectorServer` is a `devposture-collector serve` process in its own data folder, on ports
fixed when the folder is made, so that it can be stopped (SIGTERM), killed (SIGKILL), frozen
(SIGSTOP) and started again where the agents expect it. `SimAgent` is real agent code
(agent.enroll.enroll, AgentState, Outbox, transport.drain) with its own state folder; only the
reports are made up, with the structure real ones have. `FleetRun` drives many of them, one
thread each, the way the service loop does: produce, drain, back off on failure (obeying the
collector's retry hint), until told to stop producing and every outbox is empty.

Benchmarks under bench/ import this module too (they put the repository root on sys.path).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.enroll import enroll
from devposture.agent.outbox import DEFAULT_MAX_BYTES, Outbox
from devposture.agent.outbox_file import SUFFIX
from devposture.agent.state import AgentState, Enrollment
from devposture.agent.transport import DrainResult, drain
from devposture.collector.config import load
from devposture.collector.store.engine import connect
from devposture.collector.store.target import DatabaseTarget
from devposture.net.address import CollectorAddress
from devposture.v1 import devposture_pb2 as pb
from tests import warm_commands
from tests.databases import init_arguments
from tests.frozen import freeze
from tests.ports import free_ports

BIN = Path(sys.executable).parent
COLLECTOR = str(BIN / "devposture-collector")
AGENT = str(BIN / "devposture-agent")
# High enough that the per-device rate limit never speaks in a test or a benchmark (it has
# its own tests); what these exercise is delivery and storage.
UNLIMITED_CALLS = 1_000_000


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`argv` run to its end; an enrolled agent's with a warm command cache (`warm_commands`)."""
    warm_commands.seed_for(argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- the collector ------------------------------------------------------------------------


@dataclass
class CollectorServer:
    """A collector data folder and, while running, its `serve` process."""

    data: Path
    enroll_port: int
    report_port: int
    admin_port: int
    fingerprint: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    web_port: int = 0  # the dashboard's, while it is served (`start(web=True)`)
    _log: IO[bytes] | None = None

    @classmethod
    def create(cls, root: Path, *, calls_per_minute: int | None = UNLIMITED_CALLS,
               burst: int | None = UNLIMITED_CALLS,
               drain_seconds: int = 0,
               presence_seconds: int | None = None) -> CollectorServer:  # fmt: skip
        """`init` a data folder under `root`; the limits, the drain before a stop (none:
        no balancer polls a test's collector) and the presence round are written to its
        collector.toml (None keeps the default)."""
        data = root / "collector"
        done = run(COLLECTOR, "init", "--data", str(data), *init_arguments())
        assert done.returncode == 0, done.stderr
        config = data / "collector.toml"
        text = config.read_text(encoding="utf-8")
        for key, value in (("device_calls_per_minute", calls_per_minute),
                           ("device_call_burst", burst),
                           ("drain_seconds", drain_seconds),
                           ("presence_seconds", presence_seconds)):  # fmt: skip
            if value is not None:
                text, found = re.subn(rf"(?m)^{key} = \d+$", f"{key} = {value}", text)
                assert found == 1, f"collector.toml has no {key} line to change"
        config.write_text(text, encoding="utf-8")
        fingerprint = run(COLLECTOR, "ca", "fingerprint", "--data", str(data)).stdout.strip()
        assert fingerprint.startswith("sha256:"), fingerprint
        enroll_port, report_port, admin_port = free_ports(3)
        return cls(data, enroll_port, report_port, admin_port, fingerprint)

    @property
    def database(self) -> DatabaseTarget:
        """What collector.toml names: the folder's SQLite file, or the PostgreSQL schema
        `init` was given."""
        return load(self.data).database

    @property
    def log_path(self) -> Path:
        return self.data.parent / "collector.log"

    @property
    def enroll_address(self) -> CollectorAddress:
        return CollectorAddress("127.0.0.1", self.enroll_port)

    def token(self, uses: int = 1) -> str:
        done = run(COLLECTOR, "token", "create", "--data", str(self.data), "--uses", str(uses))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start(self, timeout: float = 30.0, *, web: bool = False) -> None:
        """Start serving on this folder's ports; returns once the ports are bound. `web`:
        serve the dashboard too (on a free port: `web_port`)."""
        assert self.process is None, "the collector is already running"
        ready = self.data.parent / "collector-ready.json"
        ready.unlink(missing_ok=True)
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.starts += 1
        self._log.write(f"--- start {self.starts} ---\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [COLLECTOR, "serve", "--data", str(self.data),
             "--enroll-port", str(self.enroll_port), "--report-port", str(self.report_port),
             "--admin-port", str(self.admin_port), "--metrics-port", "0",
             "--web-port", str(free_ports(1)[0] if web else 0), "--ready-file", str(ready)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the collector did not start:\n{self.output()[-3000:]}")
            time.sleep(0.02)
        ports = json.loads(ready.read_text())
        assert (ports["enroll_port"], ports["report_port"]) == (
            self.enroll_port, self.report_port,
        ), ports  # fmt: skip
        self.web_port = ports.get("web_port") or 0

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit status once it has shut down."""
        process = self._running()
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout)
        finally:
            self.process = None
        return status

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; whatever the disk holds is what survived."""
        process = self.process
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a frozen process must die as well
        process.kill()
        process.wait(30)
        self.process = None

    def pause(self) -> None:
        freeze(self._running().pid)

    def resume(self) -> None:
        self._running().send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Make sure nothing is left running (for `finally`)."""
        if self.process is not None:
            self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "the collector is not running"
        return self.process

    # -- reading what was stored (a read-only connection of its own) ----------------------

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        db = connect(self.database, read_only=True)
        try:
            return [tuple(row) for row in db.execute(sql, args).fetchall()]
        finally:
            db.close()

    def stored_ids(self) -> list[str]:
        """Every stored report's id, one entry per row (a twice-stored id would show twice)."""
        return [str(r[0]) for r in self._query("SELECT report_id FROM reports")]

    def stored_reports(self) -> list[tuple[str, str, pb.PostureReport]]:
        """(report id, device id, body) of every stored report."""
        rows = self._query("SELECT report_id, device_id, body FROM reports")
        out = []
        for report_id, device_id, body in rows:
            assert isinstance(body, bytes)
            out.append((str(report_id), str(device_id), pb.PostureReport.FromString(body)))
        return out

    def newest_report(self, device_id: str) -> pb.PostureReport:
        rows = self._query(
            "SELECT body FROM reports WHERE device_id = ? ORDER BY collected_us DESC LIMIT 1",
            (device_id,),
        )
        assert rows, f"no report stored for device {device_id}"
        body = rows[0][0]
        assert isinstance(body, bytes)
        return pb.PostureReport.FromString(body)

    def device_outbox_figures(self, device_id: str) -> dict[str, int]:
        rows = self._query(
            "SELECT outbox_pending, outbox_coalesced_total, outbox_dropped_total,"
            " outbox_corrupt_total FROM devices WHERE device_id = ?",
            (device_id,),
        )
        assert rows, f"device {device_id} is not in the devices table"
        names = ("pending", "coalesced_total", "dropped_total", "corrupt_total")
        return {name: int(str(value)) for name, value in zip(names, rows[0], strict=True)}


# -- reports ------------------------------------------------------------------------------


@contextmanager
def serving(root: Path) -> Iterator[CollectorServer]:
    """A collector process in a data folder of its own under `root`, while the block runs."""
    collector = CollectorServer.create(root)
    collector.start()
    try:
        yield collector
    finally:
        collector.close()


def timestamp(moment: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def host_info(hostname: str) -> pb.HostInfo:
    return pb.HostInfo(
        hostname=hostname, os_family=pb.OS_FAMILY_LINUX, os_name="Debian GNU/Linux",
        os_version="12", os_build="6.1.0-27-amd64", architecture="x86_64",
    )  # fmt: skip


def closed_session(
    network: str, started: dt.datetime, ended: dt.datetime, *, public: bool = True,
    vpn_after: dt.timedelta | None = None,
) -> pb.WifiSession:  # fmt: skip
    """A Wi-Fi session that has ended, as the agent's session log reports it."""
    session = pb.WifiSession(
        network_id=network,
        security=pb.WIFI_SECURITY_OPEN if public else pb.WIFI_SECURITY_WPA2_PERSONAL,
        classification=pb.NETWORK_CLASS_PUBLIC if public else pb.NETWORK_CLASS_OTHER,
        interface="wlp2s0",
        vpn_up=vpn_after is not None,
    )
    session.started_at.CopyFrom(timestamp(started))
    session.ended_at.CopyFrom(timestamp(ended))
    if vpn_after is not None:
        session.vpn_up_at.CopyFrom(timestamp(started + vpn_after))
    return session


def posture_report(
    device_id: str,
    collected_at: dt.datetime,
    *,
    trigger: pb.CollectionTrigger.ValueType = pb.COLLECTION_TRIGGER_INTERVAL,
    hostname: str = "sim-laptop",
    updates_pending: int = 40,
    sessions: Iterable[pb.WifiSession] = (),
) -> pb.PostureReport:
    """A report with the structure and size (about 2.5 KB) of a Linux laptop's: every fact,
    a few probe errors, pending updates, backups. `updates_pending` and `sessions` are the
    facts that change over time."""
    day = collected_at.replace(hour=0, minute=0, second=0, microsecond=0)
    report = pb.PostureReport(
        report_id=str(uuid.uuid4()), device_id=device_id, agent_version="0.1.0",
        host=host_info(hostname), trigger=trigger,
    )  # fmt: skip
    report.collected_at.CopyFrom(timestamp(collected_at))
    clam = report.antivirus.products.add(
        name="ClamAV", source="clamav-db", enabled=True, real_time_protection=False,
        signature_version="27468", processes=["clamd", "freshclam"],
    )  # fmt: skip
    clam.signatures_updated_at.CopyFrom(timestamp(day - dt.timedelta(hours=5)))
    report.firewall.enabled = True
    for name, rules in (("nftables", 42), ("ufw", 17), ("iptables", 0)):
        report.firewall.profiles.add(
            name=name, enabled=rules > 0, active=rules > 0, rule_count=rules, source=name,
            default_inbound_action="drop" if rules else "allow",
        )  # fmt: skip
    updates = report.os_updates
    updates.source = "apt"
    updates.pending_total = updates_pending + 12
    updates.pending_security = updates_pending
    updates.automatic_updates = True
    updates.reboot_required = updates_pending > 45
    updates.oldest_pending_since.CopyFrom(timestamp(day - dt.timedelta(days=3)))
    updates.last_checked.CopyFrom(timestamp(day))
    updates.last_installed.CopyFrom(timestamp(day - dt.timedelta(days=6)))
    packages = ("openssl", "libssl3", "linux-image-amd64", "firefox-esr", "libc6", "sudo",
                "openssh-client", "curl", "libcurl4", "tzdata", "systemd", "libxml2")  # fmt: skip
    updates.pending_security_names.extend(
        f"{packages[i % len(packages)]}{i // len(packages) or ''}/bookworm-security"
        for i in range(min(updates_pending, 50))
    )
    report.wifi.has_wifi_interface = True
    report.wifi.sessions.extend(sessions)
    current = report.wifi.sessions.add(
        network_id="CorpNet-5G", security=pb.WIFI_SECURITY_WPA2_ENTERPRISE,
        classification=pb.NETWORK_CLASS_TRUSTED, interface="wlp2s0",
    )  # fmt: skip
    current.started_at.CopyFrom(timestamp(day))  # still going on: no end
    report.vpn.active = False
    report.vpn.interfaces.add(name="wg0", kind="wireguard", up=False)
    report.vpn.interfaces.add(name="tun0", kind="tun", up=False)
    backup = report.chat_backups.backups.add(
        kind=pb.BACKUP_KIND_APP_BACKUP, app=pb.CHAT_APP_WECHAT, file_count=4,
        location="~/Documents/WeChat Files/Backup/8f3a/1", total_bytes=4 * 734_003_200,
        encryption=pb.ENCRYPTION_STATE_ENCRYPTED, encryption_evidence="weak evidence: random",
        on_encrypted_volume=True, volume_evidence="on LUKS volume /dev/mapper/nvme0n1p3_crypt",
    )  # fmt: skip
    backup.newest_backup_at.CopyFrom(timestamp(day - dt.timedelta(days=2)))
    report.chat_backups.live_data.add(app=pb.CHAT_APP_WECOM, location="~/Documents/WXWork/1688",
                                      account="1688", layout="WeCom")  # fmt: skip
    report.chat_backups.locations_checked = 6
    report.disk_encryption.volumes.add(
        mount_point="/", device="/dev/mapper/nvme0n1p3_crypt", encrypted=True, method="LUKS2"
    )
    report.disk_encryption.volumes.add(
        mount_point="/boot", device="/dev/nvme0n1p2", encrypted=False, method=""
    )
    report.errors.add(
        fact=pb.FACT_ANTIVIRUS, code=pb.PROBE_ERROR_CODE_COMMAND_NOT_FOUND, source="mdatp",
        message="mdatp is not installed (looked for it on PATH: /usr/local/bin:/usr/bin:/bin)",
    )  # fmt: skip
    report.errors.add(
        fact=pb.FACT_FIREWALL, code=pb.PROBE_ERROR_CODE_PERMISSION_DENIED, source="firewalld",
        message="firewall-cmd --state: authorization failed (not running as root)",
    )  # fmt: skip
    return report


# -- agents -------------------------------------------------------------------------------


@dataclass
class SimAgent:
    """One simulated computer: real agent state, outbox and transport; made-up facts."""

    name: str
    state: AgentState
    enrollment: Enrollment
    outbox: Outbox
    made: list[str] = field(default_factory=list)
    results: list[DrainResult] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        return self.enrollment.device_id

    def report(
        self, at: dt.datetime | None = None, *,
        trigger: pb.CollectionTrigger.ValueType = pb.COLLECTION_TRIGGER_INTERVAL,
        updates_pending: int = 40, sessions: Iterable[pb.WifiSession] = (),
    ) -> pb.PostureReport:  # fmt: skip
        return posture_report(
            self.device_id, at or utcnow(), trigger=trigger, hostname=self.name,
            updates_pending=updates_pending, sessions=sessions,
        )  # fmt: skip

    def put(self, report: pb.PostureReport) -> None:
        """Into the outbox, with the outbox's state before it, as agent.deliver.collect does."""
        report.delivery.CopyFrom(self.outbox.stats())
        self.outbox.put(report)
        self.made.append(report.report_id)

    def put_backlog(self, count: int, until: dt.datetime | None = None,
                    every: dt.timedelta = dt.timedelta(minutes=1)) -> None:  # fmt: skip
        """`count` reports collected `every` apart, the last one at `until` (default now)."""
        end = until or utcnow()
        for i in range(count):
            self.put(self.report(end - every * (count - 1 - i)))

    def pending_count(self) -> int:
        """Report files in the outbox now (cheap: one directory listing, no decoding)."""
        try:
            with os.scandir(self.outbox.directory) as listing:
                return sum(1 for e in listing if e.name.endswith(SUFFIX) and e.is_file())
        except FileNotFoundError:
            return 0

    def pending_bytes(self) -> int:
        try:
            with os.scandir(self.outbox.directory) as listing:
                return sum(e.stat().st_size for e in listing
                           if e.name.endswith(SUFFIX) and e.is_file())  # fmt: skip
        except FileNotFoundError:
            return 0

    def drain(self) -> DrainResult:
        result = drain(self.state, self.enrollment, self.outbox)
        self.results.append(result)
        return result

    def acknowledged(self) -> set[str]:
        return {i for r in self.results for i in (*r.acknowledged, *r.duplicates)}

    def duplicates(self) -> set[str]:
        return {i for r in self.results for i in r.duplicates}

    def set_aside(self) -> list[str]:
        return [i for r in self.results for i in r.set_aside]


def enroll_agent(server: CollectorServer, directory: Path, name: str, token: str,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> SimAgent:  # fmt: skip
    state = AgentState(directory)
    enrollment = enroll(state, server.enroll_address, token, server.fingerprint, host_info(name))
    return SimAgent(name, state, enrollment, Outbox(state.outbox_dir, max_bytes))


def enroll_fleet(server: CollectorServer, root: Path, count: int, *, threads: int = 8,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> list[SimAgent]:  # fmt: skip
    """`count` agents enrolled with one token good for `count` uses, a few at a time."""
    token = server.token(count)
    names = [f"sim-{i:04d}" for i in range(count)]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda n: enroll_agent(server, root / n, n, token, max_bytes), names))


# -- driving a fleet ----------------------------------------------------------------------


class FleetRun:
    """Every agent in its own thread, as its service loop would run it: make a report every
    `produce_every` seconds (if given) until `stop_producing`, drain, and after a failed drain
    wait the collector's retry hint, else a short random backoff. An agent's thread ends once
    it produces no more and its outbox is empty.

    `pause` lets every drain in progress finish and holds the next ones, so that what the
    agents hold acknowledgements for can be read at a moment when no call is in flight."""

    def __init__(self, agents: Sequence[SimAgent], *, produce_every: float | None = None,
                 backoff: tuple[float, float] = (0.05, 0.25)) -> None:  # fmt: skip
        self.agents = list(agents)
        self.produce_every = produce_every
        self.backoff = backoff
        self.failures: list[str] = []  # every DrainResult.stopped_by
        self.failure_times: list[float] = []  # time.monotonic() of each, in the same order
        self.errors: list[BaseException] = []
        self._producing = threading.Event()
        if produce_every is not None:
            self._producing.set()
        self._quit = threading.Event()
        self._cond = threading.Condition()
        self._paused = False
        self._active = 0
        self._threads = [
            threading.Thread(target=self._run, args=(a,), name=a.name, daemon=True)
            for a in self.agents
        ]

    def start(self) -> FleetRun:
        for thread in self._threads:
            thread.start()
        return self

    def stop_producing(self) -> None:
        self._producing.clear()

    def pause(self, timeout: float = 60.0) -> None:
        with self._cond:
            self._paused = True
            assert self._cond.wait_for(lambda: self._active == 0, timeout), "drains hang"

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def close(self) -> None:
        """Stop every agent's thread at its next step, drained or not (for `finally`)."""
        self._quit.set()
        self._producing.clear()
        self.resume()

    def wait(self, timeout: float) -> bool:
        """True when every agent's thread has ended within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def made(self) -> int:
        return sum(len(a.made) for a in self.agents)

    def pending(self) -> int:
        return sum(a.pending_count() for a in self.agents)

    def delivered(self) -> int:
        """Reports made that have left their outbox (acknowledged), counted from the disk."""
        return self.made() - self.pending()

    def wait_delivered(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (delivered := self.delivered()) < count:
            assert time.monotonic() < deadline, f"only {delivered} of {count} delivered in time"
            assert not self.errors, self.errors
            time.sleep(0.005)
        return delivered

    def _run(self, agent: SimAgent) -> None:
        rng = random.Random(agent.name)
        next_report = time.monotonic()
        try:
            while not self._quit.is_set():
                if self._producing.is_set() and time.monotonic() >= next_report:
                    agent.put(agent.report())
                    assert self.produce_every is not None
                    next_report = time.monotonic() + self.produce_every
                if agent.pending_count() == 0:
                    if not self._producing.is_set():
                        return
                    time.sleep(max(0.0, min(0.05, next_report - time.monotonic())))
                    continue
                with self._cond:
                    self._cond.wait_for(lambda: not self._paused or self._quit.is_set())
                    self._active += 1
                try:
                    result = agent.drain()
                finally:
                    with self._cond:
                        self._active -= 1
                        self._cond.notify_all()
                if result.stopped_by is not None:
                    self.failure_times.append(time.monotonic())
                    self.failures.append(result.stopped_by)
                    time.sleep(
                        result.retry_after
                        if result.retry_after is not None
                        else rng.uniform(*self.backoff)
                    )
        except BaseException as exc:  # the test or benchmark reports it
            self.errors.append(exc)
