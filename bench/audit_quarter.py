"""Benchmark: a quarter's audit evidence (issue 18 item 4). Targets, for 10,000 devices x 90
days: hourly reports (21.6 million), `audit export` <= 60 s and `audit verify` <= 60 s, each
within 300 MB of resident memory; daily reports, `audit export` <= 10 s.

It builds a collector data folder (`devposture-collector init`, on a SQLite file in it or with
`--database` on a new PostgreSQL database) and fills its store directly, as the ingest path
would have left it after `--days` days of `--devices` devices reporting every `--every` hours
up to `--end`:

* each device enrolled (a token of its group, certificate generation 1) just before its first
  report, and renewed its 14-day certificate when a third of it was left, as the agent does
  (`devices`, `device_certificates`, `device_events`);
* every report a real serialized PostureReport (tests/e2e/fleet.py's Linux laptop, healthy:
  an antivirus on with fresh signatures, the firewall on, no security update pending, WeChat
  4.0 installed, an encrypted backup, a home and an office Wi-Fi session), made into a
  ReportRecord by the collector's own `intake.record_of` (clock skew, times on the
  collector's clock, the body as ingest stores it). A device's consecutive reports repeat
  the same facts: only the report id, the times and the delivery stats change (and the dates
  in the facts, day by day: signatures updated every morning);
* `--changing` of the devices (5 % by default) go through one to three episodes of a few
  hours to ten days with a fact that fails or cannot be read (the firewall off or unreadable,
  security updates pending, signatures ten days old, the backup 45 days old, WeChat 3.9,
  public Wi-Fi without VPN). Every report is judged by the policy's checks (`evaluate`, once
  per day and variant: the facts' dates move with the day) and its state changes are the ones
  `collector/store/reports.py` records (`_changes`); `check_results` holds each device's
  verdicts from its last report;
* the evidence chain: one entry per device event, report and state change, in the order they
  were written, made by the store's own `Appender` (canonical payloads, `entry_hash`), so
  `audit verify` passes.

Rows are written a transaction per simulated day (executemany on SQLite, COPY on PostgreSQL),
streamed: memory holds one cycle of reports at a time. After each day the chain's checkpoint
is advanced as `serve` does every hour (`--no-checkpoints`: as a collector that never served).
Progress goes to standard error.

Then it measures, as processes, with the package's bytecode compiled first as an installed
collector's is: `audit public-key`, `audit export --from --to --out
--progress` (the whole span, or the last `--period-days`) and `audit verify BUNDLE
--public-key KEY.pem`: wall time, CPU time and peak resident memory (the command's own rusage:
see LAUNCHER), how much of the CPU its processes beside it spent (sampled), the bundle's size
and members and the records in it, beside the targets.

    .venv/bin/python bench/audit_quarter.py --devices 10000 --days 90 --every 24
    .venv/bin/python bench/audit_quarter.py --devices 1000 --every 1 --folder /var/tmp/aq-1h
    .venv/bin/python bench/audit_quarter.py --folder /var/tmp/aq-1h --period-days 5
    .venv/bin/python bench/audit_quarter.py --engine postgresql --folder /var/tmp/aq-pg

`--folder DIR` keeps the data folder (and on PostgreSQL its database, named in the folder's
collector.toml) after the run; run again with the same `--folder` to measure the same store
without building it again (the shape is read from the folder).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import os
import random
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil

# This checkout's code (devposture), in this process and in the CLI it measures, even where
# another checkout is installed in the venv: a snapshot of a commit (`git archive`) measures
# that commit's exporter, whatever the working tree holds. Then bench and tests.e2e.fleet.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet_report import cli_command, cli_environment, postgres_database
from devposture.agent.outbox import DEFAULT_MAX_BYTES
from devposture.collector.config import load
from devposture.collector.evidence import chain
from devposture.collector.intake import record_of
from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.chain import Appender
from devposture.collector.store.engine import (
    AnyDatabase,
    Cursor,
    PostgresCursor,
    PostgresDatabase,
    SqliteDatabase,
)
from devposture.collector.store.fact_parts import Chooser, cut, cut_chosen
from devposture.collector.store.report_format import FORMAT_5
from devposture.collector.store.reports import _changes
from devposture.collector.store.sealing import (
    SEAL_AFTER_US,
    SEAL_REPORTS,
    Sealable,
    as_facts,
    group_payload,
    made_record,
    other_record,
)
from devposture.collector.store.target import is_postgres_url
from devposture.collector.tokens import Token
from devposture.policy import Policy, default_policy
from devposture.policy.checks import CheckParameters, evaluate
from devposture.v1 import devposture_pb2 as pb
from tests.e2e.fleet import closed_session, posture_report, timestamp

ROOT = Path(__file__).resolve().parents[1]
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/devposture_audit_bench"
# Where a built folder records the shape it holds (for a later --folder run).
SHAPE_FILE = "bench-audit-shape.json"

# The targets.
EXPORT_SECONDS = 60.0
EXPORT_SECONDS_DAILY = 10.0
VERIFY_SECONDS = 60.0
PEAK_RSS_MB = 300.0
TARGET_DEVICES, TARGET_DAYS = 10_000, 90

# Rows are sent to the database every FLUSH reports, committed every COMMIT reports.
FLUSH = 2_000
COMMIT = 50_000
CERTIFICATE_DAYS = 14  # collector.toml's default device_certificate_days
RENEW_WHEN_LEFT = 1 / 3  # agent/renewal.py
GROUPS = ("财务部", "人事部", "运营部", "销售部", "研发部")
HOST_PREFIXES = ("fin", "hr", "ops", "sales", "dev")
AGENT_VERSION = "0.1.0"


# The collector's longest wait for a report's seal, in seconds (`--seal-seconds`' default).
SEAL_SECONDS = SEAL_AFTER_US / 1e6


@dataclass(frozen=True)
class Shape:
    """What the store holds: `devices` devices reporting every `every_hours` for `days` days
    up to `end`, `changing` of them through failure episodes."""

    devices: int
    days: int
    every_hours: float
    end: dt.datetime = END
    changing: float = 0.05
    seed: int = 18
    report_format: int = 5  # how the store seals and keeps reports (store/report_format.py)
    seal_seconds: float = SEAL_SECONDS  # a report's longest wait for its seal

    @property
    def start(self) -> dt.datetime:
        return self.end - dt.timedelta(days=self.days)

    @property
    def every(self) -> dt.timedelta:
        return dt.timedelta(hours=self.every_hours)

    def to_json(self) -> str:
        values = dataclasses.asdict(self) | {"end": self.end.isoformat()}
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Shape:
        values = json.loads(text)
        return cls(**(values | {"end": dt.datetime.fromisoformat(values["end"])}))

    def describe(self) -> str:
        cadence = "daily" if self.every_hours == 24 else f"every {self.every_hours:g} h"
        return (f"{self.devices:,} devices x {self.days} days, {cadence},"
                f" {self.start:%Y-%m-%d} - {self.end:%Y-%m-%d %H:%M} UTC,"
                f" report format {self.report_format}"
                + ("" if self.seal_seconds == SEAL_SECONDS
                   else f", sealed every {self.seal_seconds:g} s"))  # fmt: skip


# --- the facts ---------------------------------------------------------------------------------

Variant = Callable[[pb.PostureReport, dt.datetime], None]


def _firewall_off(report: pb.PostureReport, day: dt.datetime) -> None:
    report.firewall.enabled = False
    for profile in report.firewall.profiles:
        profile.enabled = profile.active = False


def _firewall_unreadable(report: pb.PostureReport, day: dt.datetime) -> None:
    report.ClearField("firewall")
    report.errors.add(
        fact=pb.FACT_FIREWALL, code=pb.PROBE_ERROR_CODE_PERMISSION_DENIED, source="nft",
        message="nft list ruleset: Operation not permitted (the agent lost CAP_NET_ADMIN)",
    )  # fmt: skip


def _updates_pending(report: pb.PostureReport, day: dt.datetime) -> None:
    updates = report.os_updates
    updates.pending_security = 6
    updates.pending_total = 18
    updates.pending_security_names.extend(
        f"{name}/bookworm-security" for name in
        ("openssl", "libssl3", "linux-image-amd64", "firefox-esr", "sudo", "curl")
    )  # fmt: skip
    updates.oldest_pending_since.CopyFrom(timestamp(day - dt.timedelta(days=2)))


def _signatures_old(report: pb.PostureReport, day: dt.datetime) -> None:
    product = report.antivirus.products[0]
    product.signatures_updated_at.CopyFrom(timestamp(day - dt.timedelta(days=10)))
    update = product.signature_update
    update.outcome = pb.SIGNATURE_UPDATE_OUTCOME_FAILED
    update.attempted_at.CopyFrom(timestamp(day))
    update.succeeded_at.CopyFrom(timestamp(day - dt.timedelta(days=10)))
    update.detail = "Can't connect to port 443 of host database.clamav.net"


def _backup_old(report: pb.PostureReport, day: dt.datetime) -> None:
    backup = report.chat_backups.backups[0]
    backup.newest_backup_at.CopyFrom(timestamp(day - dt.timedelta(days=45)))


def _wechat_old(report: pb.PostureReport, day: dt.datetime) -> None:
    report.chat_clients.clients[0].version = "3.9.12.17"


def _public_wifi(report: pb.PostureReport, day: dt.datetime) -> None:
    session = closed_session("CMCC-WEB", day + dt.timedelta(hours=7, minutes=40),
                             day + dt.timedelta(hours=8, minutes=25))  # fmt: skip
    session.classification_reasons.append("open network (no security)")
    report.wifi.sessions.insert(0, session)


# Each makes one check fail (or, the unreadable firewall, UNKNOWN) while it lasts.
VARIANTS: dict[str, Variant] = {
    "firewall off": _firewall_off,
    "firewall unreadable": _firewall_unreadable,
    "security updates pending": _updates_pending,
    "signatures 10 days old": _signatures_old,
    "backup 45 days old": _backup_old,
    "WeChat 3.9": _wechat_old,
    "public Wi-Fi without VPN": _public_wifi,
}
HEALTHY = ""


def template(day: dt.datetime, variant: str = HEALTHY) -> pb.PostureReport:
    """A healthy Linux laptop's facts on `day` (every check passes), with `variant` applied.
    The per-report fields (ids, times, host name, delivery) are set by the caller."""
    home = closed_session("TP-LINK_5G_8A1C", day - dt.timedelta(hours=3),
                          day + dt.timedelta(hours=7, minutes=30), public=False)  # fmt: skip
    report = posture_report("", day, updates_pending=0, sessions=[home])
    report.antivirus.products[0].real_time_protection = True
    report.antivirus.products[0].processes.append("clamonacc")
    report.chat_clients.clients.add(
        app=pb.CHAT_APP_WECHAT, version="4.0.3.22", source="dpkg", location="/opt/wechat"
    )
    if variant:
        VARIANTS[variant](report, day)
    return report


class Judged:
    """Templates and their verdicts per (day, variant), made once: a day's facts are the same
    for every device, and their verdicts hold all day (the ages they test move with the day).
    Only the current and the previous day are kept."""

    def __init__(self, policy: Policy) -> None:
        self._params = CheckParameters.from_values(
            {c.check_id: c.parameters for c in policy.checks}
        )
        self._checks = frozenset(c.check_id for c in policy.checks)
        self._cache: dict[tuple[dt.date, str], tuple[pb.PostureReport, list[CheckResult]]] = {}

    def get(
        self, collected: dt.datetime, variant: str
    ) -> tuple[pb.PostureReport, list[CheckResult]]:
        key = (collected.date(), variant)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 4 * len(VARIANTS):
                newest = max(day for day, _ in self._cache)
                self._cache = {k: v for k, v in self._cache.items() if k[0] >= newest}
            day = dt.datetime.combine(key[0], dt.time(), dt.UTC)
            report = template(day, variant)
            found = self._cache[key] = (report, self.judge(report, collected))
        return found

    def judge(self, report: pb.PostureReport, now: dt.datetime) -> list[CheckResult]:
        """What the collector's service judges a report (`CollectorService._judge`)."""
        return [CheckResult(c.check_id, v.state.value, v.reason)
                for c, v in evaluate(report, now, self._params, self._checks)]  # fmt: skip


# --- the fleet's story -------------------------------------------------------------------------


@dataclass
class Device:
    """One simulated computer: who it is, when it reports and what goes wrong on it."""

    n: int
    device_id: str
    hostname: str
    group: int
    phase: dt.timedelta  # its first collection after the period's start
    offset: dt.timedelta  # the collector's clock minus the device's
    latency: dt.timedelta  # from collecting a report to its receipt
    episodes: list[tuple[dt.datetime, dt.datetime, str]]
    generation: int = 0
    renew_at: dt.datetime | None = None
    coalesced: int = 0

    def variant(self, moment: dt.datetime) -> str:
        for began, ended, variant in self.episodes:
            if began <= moment < ended:
                return variant
        return HEALTHY


def make_devices(shape: Shape) -> list[Device]:
    """The fleet, sorted by the phase of their reports (their order within each cycle)."""
    devices = []
    span = shape.every - dt.timedelta(minutes=3)
    for n in range(shape.devices):
        rng = random.Random(f"{shape.seed}/{n}")
        episodes = []
        if rng.random() < shape.changing:
            for _ in range(rng.randint(1, 3)):
                began = shape.start + dt.timedelta(hours=rng.uniform(0, shape.days * 24))
                length = dt.timedelta(hours=rng.choice((6, 20, 30, 50, 80, 120, 240)))
                episodes.append((began, began + length, rng.choice(list(VARIANTS))))
        offset_ms = rng.gauss(0, 400) if rng.random() > 0.01 else rng.uniform(-600_000, 600_000)
        devices.append(Device(
            n=n,
            device_id=hashlib.sha256(f"audit-quarter device {n}".encode()).hexdigest()[:32],
            hostname=f"{HOST_PREFIXES[n % len(GROUPS)]}-lt-{n:05d}",
            group=n % len(GROUPS),
            phase=span * rng.random(),
            offset=dt.timedelta(milliseconds=offset_ms),
            latency=dt.timedelta(milliseconds=rng.uniform(300, 900)),
            episodes=sorted(episodes),
        ))  # fmt: skip
    return sorted(devices, key=lambda d: (d.phase, d.n))


@dataclass(frozen=True)
class IdentityEvent:
    """A device enrolled (generation 1) or renewed its certificate, at `at`."""

    device: Device
    at: dt.datetime
    generation: int
    serial: str
    not_after: dt.datetime
    token_id: str


@dataclass(frozen=True)
class Reported:
    """A report as ingest stores it, and its verdicts."""

    record: ReportRecord
    results: list[CheckResult]


Event = IdentityEvent | Reported


def _certificate(device: Device, at: dt.datetime) -> tuple[int, str, dt.datetime]:
    device.generation += 1
    not_after = at + dt.timedelta(days=CERTIFICATE_DAYS)
    device.renew_at = not_after - dt.timedelta(days=CERTIFICATE_DAYS * RENEW_WHEN_LEFT)
    serial = hashlib.sha256(f"{device.device_id}/{device.generation}".encode()).hexdigest()[:32]
    return device.generation, serial, not_after


def fleet_events(shape: Shape, tokens: Sequence[str], policy: Policy) -> Iterator[Event]:
    """The fleet's enrollments, renewals and reports, in the order the collector received
    them (each one's receipt on the collector's clock), up to `shape.end`."""
    devices = make_devices(shape)
    judged = Judged(policy)
    rng = random.Random(shape.seed)
    for cycle in itertools.count():
        base = shape.start + shape.every * cycle
        if base >= shape.end:
            return
        for device in devices:
            # Collected at `moment` on the collector's clock; received `latency` later.
            moment = base + device.phase + dt.timedelta(minutes=2)
            received = moment + device.latency
            if received >= shape.end:
                continue
            if cycle == 0:
                at = base + device.phase
                generation, serial, not_after = _certificate(device, at)
                yield IdentityEvent(device, at, generation, serial, not_after,
                                    tokens[device.group])  # fmt: skip
            elif device.renew_at is not None and moment >= device.renew_at:
                at = received - dt.timedelta(seconds=1)
                generation, serial, not_after = _certificate(device, at)
                yield IdentityEvent(device, at, generation, serial, not_after, "")
            yield _report(device, cycle, moment, received, judged, rng)


def _report(
    device: Device, cycle: int, moment: dt.datetime, received: dt.datetime, judged: Judged,
    rng: random.Random,
) -> Reported:  # fmt: skip
    """The device's report collected at `moment` (the collector's clock): the day's facts,
    its ids and times, its outbox's stats, as ingest makes it into a record."""
    agent_collected = moment - device.offset
    report, results = judged.get(agent_collected, device.variant(moment))
    report.report_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    report.device_id = device.device_id
    report.host.hostname = device.hostname
    report.collected_at.CopyFrom(timestamp(agent_collected))
    report.trigger = (
        pb.COLLECTION_TRIGGER_START_UP if cycle == 0 else pb.COLLECTION_TRIGGER_INTERVAL
    )
    delivery = pb.DeliveryStats(max_bytes=DEFAULT_MAX_BYTES, coalesced_total=device.coalesced)
    if rng.random() < 0.02:  # an earlier delivery failed: one report was waiting
        delivery.pending_reports, delivery.pending_bytes = 1, 1_900
        delivery.oldest_pending_at.CopyFrom(timestamp(agent_collected - dt.timedelta(hours=1)))
    report.delivery.CopyFrom(delivery)
    # Sent a moment after collecting (the agent's clock): `intake.measure_skew`'s skew.
    skew = received - (agent_collected + dt.timedelta(milliseconds=150))
    return Reported(record_of(report, device.device_id, received, skew), results)


# --- writing it into the store -----------------------------------------------------------------

TABLES: dict[str, tuple[str, ...]] = {
    "devices": ("device_id", "enrolled_us", "token_id", "cert_serial", "cert_not_after_us",
                "hostname", "os_family", "os_name", "os_version", "agent_version",
                "device_group"),
    "device_certificates": ("serial", "device_id", "generation", "issued_us", "not_after_us",
                            "first_used_us"),
    "device_events": ("event_id", "device_id", "action", "at_us", "detail"),
    "reports": ("report_id", "device_id", "received_us", "collected_us", "agent_version",
                "clock_skew_ms", "body", "parts", "n"),
    "report_groups": ("seq", "first_n", "last_n", "reports"),
    "state_changes": chain.STATE_FIELDS,
    "evidence_chain": ("seq", "kind", "at_us", "record_key", "payload", "prev_hash", "hash"),
}  # fmt: skip


def insert_rows(cursor: Cursor, table: str, rows: Sequence[tuple[object, ...]],
                columns: Sequence[str] | None = None) -> None:  # fmt: skip
    """Rows into `table`: by COPY on PostgreSQL, executemany on SQLite."""
    names = columns or TABLES[table]
    if isinstance(cursor, PostgresCursor):
        with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * len(names))
        cursor.executemany(f"INSERT INTO {table}({', '.join(names)}) VALUES ({marks})", rows)


@dataclass
class Built:
    """What the build wrote."""

    reports: int = 0
    state_changes: int = 0
    device_events: int = 0
    entries: int = 0
    body_bytes: int = 0
    parts: int = 0  # distinct fact parts (store/fact_parts.py)
    seconds: float = 0.0


@dataclass
class _Last:
    """A device's newest report: its verdicts and what its row in `devices` shows."""

    record: ReportRecord
    results: list[CheckResult]
    held: dict[str, int]
    serial: str = ""
    not_after_us: int = 0


class _Waiting(NamedTuple):
    """A report stored and not sealed yet (store/sealing.py), with what its record in the
    other format is made of."""

    n: int
    received: int
    record: Sealable
    metadata: tuple[object, ...]
    body: bytes


class Writer:
    """Writes the fleet's events as the store's writers would have: the rows of each table and
    an evidence chain entry per record, in the events' order."""

    def __init__(
        self, db: AnyDatabase, report_format: int = FORMAT_5, seal_after_us: int = SEAL_AFTER_US
    ) -> None:  # fmt: skip
        self.db = db
        self._seal_after_us = seal_after_us
        self.built = Built()
        self._facts = report_format == FORMAT_5  # format 5's rows and records
        self._rows: dict[str, list[tuple[object, ...]]] = {table: [] for table in TABLES}
        self._latest: dict[str, dict[str, tuple[str, int]]] = {}  # device -> check -> state
        self._last: dict[str, _Last] = {}
        self._certificates: dict[str, tuple[str, int]] = {}  # device -> serial, not after
        self._event_id = int(db.execute("SELECT COALESCE(MAX(event_id), 0) FROM device_events")
                             .fetchone()[0])  # fmt: skip
        # Reports stored and not yet sealed: (n, received, record) (store/sealing.py).
        self._waiting: list[_Waiting] = []
        self._number = 0
        # The fact parts as ingest leaves them (store/fact_parts.py): written once each, their
        # last_us raised as `Written` would raise it; inserted by `finish`.
        self._chooser = Chooser()  # format 5: what fact_parts.cut_chosen asks
        self._written = self._chooser.written
        self._parts: dict[bytes, tuple[bytes, int]] = {}

    def write(self, cursor: Cursor, chained: Appender, event: Event) -> None:
        """Write `event` on the cursor of a transaction (`chained`: its chain); the rows are
        sent every FLUSH reports, and by `flush`."""
        if isinstance(event, IdentityEvent):
            self._identity(chained, event)
        else:
            self._report(chained, event)
            if self.built.reports % FLUSH == 0:
                self.flush(cursor)

    def flush(self, cursor: Cursor) -> None:
        for table, rows in self._rows.items():
            if rows:
                insert_rows(cursor, table, rows)
                rows.clear()

    def _entry(self, chained: Appender, kind: str, key: str, payload: Mapping[str, object],
               at_us: int) -> None:  # fmt: skip
        self._rows["evidence_chain"].append(chained.entry(kind, key, payload, at_us=at_us))
        self.built.entries += 1

    def _identity(self, chained: Appender, event: IdentityEvent) -> None:
        """identity.enroll or identity.record_renewal: the device (when new), the certificate,
        and the device event with its chain entry."""
        device, at_us = event.device, to_us(event.at)
        if event.generation == 1:
            self._rows["devices"].append(
                (device.device_id, at_us, event.token_id, event.serial, to_us(event.not_after),
                 device.hostname, "linux", "Debian GNU/Linux", "12", AGENT_VERSION,
                 GROUPS[device.group])
            )  # fmt: skip
            detail = (f"token {event.token_id}, certificate generation 1,"
                      f" group {GROUPS[device.group]}")  # fmt: skip
            action = "enrolled"
        else:
            detail, action = f"certificate generation {event.generation}", "renewed"
        # First used by the device's next call: its report, a second later.
        self._rows["device_certificates"].append(
            (event.serial, device.device_id, event.generation, at_us, to_us(event.not_after),
             at_us + 1_000_000)
        )  # fmt: skip
        self._certificates[device.device_id] = (event.serial, to_us(event.not_after))
        self._event_id += 1
        values = (self._event_id, device.device_id, action, at_us, detail)
        self._rows["device_events"].append(values)
        self._entry(chained, chain.DEVICE, f"{device.device_id}/{self._event_id}",
                    chain.fields(chain.DEVICE_FIELDS, values), at_us)  # fmt: skip
        self.built.device_events += 1

    def _report(self, chained: Appender, event: Reported) -> None:
        """reports._write_group for a device's newest report stored alone (a fleet reporting
        at its cadence: one report a call): the report, numbered, then a state change (and
        entry) for each check whose state changed, then the seal when one is due."""
        record = event.record
        received, collected = to_us(record.received_at), to_us(record.collected_at)
        metadata = (record.report_id, record.device_id, received, collected,
                    record.agent_version, record.clock_skew_ms)  # fmt: skip
        self._number += 1
        stored = (cut_chosen(record.body, received, record.device_id, self._chooser)
                  if self._facts else cut(record.body))  # fmt: skip
        due = self._written.due([(stored, received)])
        self._written.committed(due)
        self._keep(due)
        self._rows["reports"].append((*metadata, stored.own, stored.recipe, self._number))
        made = made_record(metadata, record.body, stored)
        self._waiting.append(_Waiting(self._number, received, made, metadata, record.body))
        latest = self._latest.setdefault(record.device_id, {})
        held, changes = _changes(latest, record.device_id, record.report_id, collected,
                                 event.results)  # fmt: skip
        for values in changes:
            self._rows["state_changes"].append(values)
            # Ingest chains a state change when it writes it, just after its report.
            self._entry(chained, chain.STATE, chain.state_key(values[0], values[1], values[4]),
                        chain.fields(chain.STATE_FIELDS, values), received)  # fmt: skip
        self.built.state_changes += len(changes)
        self._seal(chained, received)
        self._last[record.device_id] = _Last(record, event.results, held)
        self.built.reports += 1
        self.built.body_bytes += len(record.body)

    def _seal(self, chained: Appender, now_us: int, *, force: bool = False) -> None:
        """sealing.seal as the report's write would call it (its wait, SEAL_REPORTS)."""
        waiting = self._waiting
        due = force or len(waiting) >= SEAL_REPORTS
        if not waiting or not (due or now_us - waiting[0].received >= self._seal_after_us):
            return
        for start in range(0, len(waiting), SEAL_REPORTS):
            group = waiting[start : start + SEAL_REPORTS]
            low, high = group[0].n, group[-1].n
            kind, payload = group_payload(low, high, self._records(group))
            row = chained.canonical_row(kind, chain.group_key(low, high), payload, now_us)
            self._rows["evidence_chain"].append(row)
            self._rows["report_groups"].append((row[0], low, high, len(group)))
            self.built.entries += 1
        self._waiting = []

    def _records(self, group: list[_Waiting]) -> list[Sealable]:
        """The group's records in one format, as sealing.records makes them: that of at
        least half its reports in a format-5 store (`as_facts`), the others made again."""
        facts = self._facts and as_facts([isinstance(w.record, tuple) for w in group])
        made: list[Sealable] = []
        for waiting in group:
            if isinstance(waiting.record, tuple) == facts:
                made.append(waiting.record)
                continue
            record, parts = other_record(waiting.metadata, waiting.body, facts)
            self._keep([(d, part, waiting.received) for d, part in parts])
            made.append(record)
        return made

    def _keep(self, parts: list[tuple[bytes, bytes, int]]) -> None:
        """Fact parts to insert (digest, bytes, last_us), each with its latest `last_us`."""
        for digest, part, last in parts:
            self._parts[digest] = (part, max(last, self._parts.get(digest, (b"", 0))[1]))

    def seal_waiting(self, chained: Appender, now_us: int) -> None:
        """What a collector seals when it stops."""
        self._seal(chained, now_us, force=True)

    def finish(self, cursor: Cursor) -> None:
        """Each device's current verdicts (check_results) and its row as its newest report
        and certificate left it."""
        verdicts = []
        devices = []
        for device_id, last in self._last.items():
            record = last.record
            received, collected = to_us(record.received_at), to_us(record.collected_at)
            verdicts += [
                (device_id, r.check_id, r.state, r.reason, record.report_id, collected, received,
                 last.held[r.check_id])
                for r in last.results
            ]  # fmt: skip
            serial, not_after = self._certificates[device_id]
            outbox = record.outbox
            devices.append(
                (received, record.hostname, record.os_family, record.os_name, record.os_version,
                 record.agent_version, record.clock_skew_ms, outbox.pending,
                 outbox.coalesced_total, outbox.dropped_total, outbox.corrupt_total, serial,
                 not_after, device_id)
            )  # fmt: skip
        insert_rows(cursor, "fact_parts",
                    [(d, part, last) for d, (part, last) in self._parts.items()],
                    ("digest", "part", "last_us"))  # fmt: skip
        self.built.parts += len(self._parts)
        self._parts.clear()
        insert_rows(cursor, "check_results", verdicts, (
            "device_id", "check_id", "state", "reason", "report_id", "collected_us",
            "evaluated_us", "since_us"))  # fmt: skip
        cursor.executemany(
            "UPDATE devices SET last_report_us = ?, hostname = ?, os_family = ?, os_name = ?,"
            " os_version = ?, agent_version = ?, clock_skew_ms = ?, outbox_pending = ?,"
            " outbox_coalesced_total = ?, outbox_dropped_total = ?, outbox_corrupt_total = ?,"
            " cert_serial = ?, cert_not_after_us = ? WHERE device_id = ?",
            devices,
        )


class Progress:
    """A line on standard error: rewritten in place on a terminal (twice a second at most),
    a line every tenth of the way otherwise; `done` ends it."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, max(total, 1)
        self.started = time.perf_counter()
        self._terminal = sys.stderr.isatty()
        self._shown = -1.0

    def __call__(self, count: int) -> None:
        now = time.perf_counter()
        tenth = count * 10 // self.total
        if (now - self._shown < 0.5) if self._terminal else (tenth == self._shown):
            return
        self._shown = now if self._terminal else tenth
        self._write(count, "" if self._terminal else "\n")

    def done(self, count: int) -> None:
        self._write(count, "\n")

    def _write(self, count: int, end: str) -> None:
        took = time.perf_counter() - self.started
        sys.stderr.write(f"\r{self.what}: {count:,} of about {self.total:,}"
                         f" ({100 * count // self.total}%), {took:.0f} s{end}")  # fmt: skip
        sys.stderr.flush()


def expected_reports(shape: Shape) -> int:
    """About how many reports the shape makes (for the progress line)."""
    return int(shape.devices * shape.days * 24 / shape.every_hours)


def add_tokens(store: Store, shape: Shape) -> list[str]:
    """One enrollment token per group, made the day before the period (their ids follow from
    the shape's seed, so two builds of one shape are alike); their ids, by group."""
    tokens = []
    for group in GROUPS:
        digest = hashlib.sha256(f"{shape.seed}/token/{group}".encode()).hexdigest()
        token = Token(digest[:16], secrets.token_urlsafe(32))
        created = shape.start - dt.timedelta(days=1)
        store.identity.add_token(token, created, created + dt.timedelta(days=7), 10, group)
        tokens.append(token.token_id)
    return tokens


def _moment(event: Event) -> dt.datetime:
    return event.at if isinstance(event, IdentityEvent) else event.record.received_at


def build(
    store: Store, shape: Shape, progress: Progress | None = None, *, checkpoints: bool = True,
) -> Built:  # fmt: skip
    """Fill an empty store with the shape's fleet (see the module's docstring). One
    transaction per simulated day (at most COMMIT reports), after which, with `checkpoints`,
    the chain's checkpoint is advanced as `serve` does every hour (store/checkpoints.py: at
    most one a day), so that an export finds one within a day before its period."""
    db = store._db
    if db.execute("SELECT COUNT(*) FROM evidence_chain").fetchone()[0]:
        raise SystemExit("the store's evidence chain is not empty: build into a new data folder")
    started = time.perf_counter()
    if isinstance(db, SqliteDatabase):
        # A build, not a collector: no disk sync per commit, and the report id index in cache.
        db.connection.execute("PRAGMA synchronous=OFF")
        db.connection.execute("PRAGMA cache_size=-262144")
    tokens = add_tokens(store, shape)
    store.report_format.write(shape.report_format)
    writer = Writer(db, shape.report_format, round(shape.seal_seconds * 1e6))
    events = fleet_events(shape, tokens, default_policy())
    held: list[Event] = []  # the event that began the next day
    while True:
        with db.transaction() as cursor:
            chained = Appender(cursor)
            limit = writer.built.reports + COMMIT
            day: dt.date | None = None
            for event in itertools.chain(held, events):
                held = []
                moment = _moment(event)
                day = day or moment.date()
                if moment.date() != day or writer.built.reports >= limit:
                    held = [event]
                    break
                writer.write(cursor, chained, event)
                last = moment
            if day is not None and not held:  # the last day: sealed as the collector stops
                writer.seal_waiting(chained, to_us(last))
            writer.flush(cursor)
        if day is None:
            if progress is not None:
                progress.done(writer.built.reports)
            break
        if checkpoints:
            store.checkpoints.advance(to_us(last))
        if progress is not None:
            progress(writer.built.reports)
    with db.transaction() as cursor:
        writer.finish(cursor)
    if isinstance(db, PostgresDatabase):
        db.execute("SELECT setval(pg_get_serial_sequence('device_events', 'event_id'),"
                   " (SELECT MAX(event_id) FROM device_events))")  # fmt: skip
    writer.built.seconds = time.perf_counter() - started
    return writer.built


# --- measuring the CLI -------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One command as a process: its wall and CPU time, peak resident memory, exit."""

    label: str
    wall: float
    cpu: float
    peak_rss_mb: float
    returncode: int
    timed_out: bool
    output: str
    server_cpu: float | None = None  # the PostgreSQL server meanwhile (`postgres_cpu`)
    # The CPU of the command's own processes beside it (an export's workers, a verify's
    # readers), each as last sampled (`_tree_sample`): of `cpu`, what the command's own process
    # did not spend. On two cores an export is bound by its own process and by the whole.
    beside_cpu: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def postgres_cpu() -> float:
    """CPU seconds used so far by the PostgreSQL server on this machine: its processes alive
    now, and those that ended (in the postmaster's children's times), so that the backend a
    command opens and closes counts. Every client's work, others' too."""
    total = 0.0
    processes = {p.pid: p for p in psutil.process_iter(["name", "ppid", "cpu_times"])}
    for process in processes.values():
        if process.info["name"] != "postgres" or process.info["cpu_times"] is None:
            continue
        times = process.info["cpu_times"]
        total += times.user + times.system
        parent = processes.get(process.info["ppid"])
        if parent is None or parent.info["name"] != "postgres":  # the postmaster
            total += times.children_user + times.children_system
    return total


# Runs a command and writes down its exit, CPU time, peak RSS and wall time. Linux carries a
# process's peak RSS over fork and exec (into the new program's rusage), so a command started
# by this benchmark, which holds hundreds of MB after a build, would show at least that much:
# this small interpreter (about 10 MB) starts it instead, with posix_spawn, and reports.
LAUNCHER = """
import json, os, resource, sys, time
out, limit, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
started = time.perf_counter()
pid = os.posix_spawnp(command[0], command, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(out, "w") as figures:
    json.dump({"code": os.waitstatus_to_exitcode(status), "wall": wall,
               "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss}, figures)
"""


def run_measured(
    label: str, command: list[str], env: dict[str, str], *, timeout: float, memory_mb: int,
    server: bool = False,
) -> Measured:  # fmt: skip
    """Run `command` (its standard error passes through: the export's progress), killed
    after `timeout` s; its address space limited to `memory_mb` (0: no limit), so a runaway
    exporter fails instead of taking the machine's memory. Its peak RSS is its own (wait4's
    rusage, through LAUNCHER), or what it and its own processes held together when more
    (sampled every TREE_EVERY s); its CPU includes theirs."""
    server_before = postgres_cpu() if server else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        figures, output = Path(tmp) / "figures.json", Path(tmp) / "stdout"
        started = time.perf_counter()
        with output.open("wb") as out:
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-c", LAUNCHER, str(figures), str(memory_mb << 20),
                 *command], env=env, stdout=out, start_new_session=True,
            )  # fmt: skip
        handle = os.pidfd_open(launcher.pid)
        together = 0.0  # the most the command's processes held at once (MB)
        beside: dict[int, float] = {}  # CPU seconds of each process beside it, last seen
        try:
            while True:
                ready, _, _ = select.select([handle], [], [], TREE_EVERY)
                held, spent = _tree_sample(launcher.pid)
                together = max(together, held)
                beside.update(spent)
                if ready or time.perf_counter() - started > timeout:
                    break
        finally:
            os.close(handle)
        if not ready:
            os.killpg(launcher.pid, signal.SIGKILL)
        code = launcher.wait()
        wall = time.perf_counter() - started
        done = json.loads(figures.read_text()) if ready and figures.exists() else {}
        return Measured(
            label, done.get("wall", wall), done.get("cpu", 0.0),
            max(done.get("maxrss_kib", 0) / 1024, together), done.get("code", code),
            not ready, output.read_text("utf-8", "replace"),
            postgres_cpu() - server_before if server else None, sum(beside.values()),
        )  # fmt: skip


# How often the command's processes are weighed together (`_tree_sample`).
TREE_EVERY = 0.1


def _tree_sample(launcher: int) -> tuple[float, dict[int, float]]:
    """What the launched command and its own processes hold now, together (MB), and the CPU
    seconds so far of each process the command started (not the command's own, which wait4
    counts with theirs): one walk of the tree. An export of a large period works with
    processes beside it (evidence/check_pool), and wait4's peak is the largest one's, not
    their sum. Sampled: a peak between samples can be missed, so the memory reported is the
    larger of this and the largest process's own peak; what a process spends after its last
    sample is missed, a tenth of a second at most."""
    try:
        command = psutil.Process(launcher).children()
        beside = [p for c in command for p in c.children(recursive=True)]
    except psutil.Error:
        return 0.0, {}
    total = 0
    for process in command:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    cpu: dict[int, float] = {}
    for process in beside:
        with contextlib.suppress(psutil.Error):
            with process.oneshot():
                total += process.memory_info().rss
                times = process.cpu_times()
            cpu[process.pid] = times.user + times.system
    return total / (1 << 20), cpu


@dataclass(frozen=True)
class BundleFigures:
    size: int
    counts: dict[str, int]
    members: dict[str, tuple[int, int]]  # name -> (bytes, compressed)


def bundle_figures(path: Path) -> BundleFigures:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        members = {i.filename: (i.file_size, i.compress_size) for i in archive.infolist()}
    return BundleFigures(path.stat().st_size, dict(manifest["counts"]), members)


def _mb(size: float) -> str:
    return f"{size / 1e6:,.1f} MB" if size >= 1e5 else f"{size / 1e3:,.1f} kB"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def measure(
    folder: Path, shape: Shape, work: Path, *, period_days: int | None, timeout: float,
    memory_mb: int, verify: bool = True, env: dict[str, str] | None = None,
) -> list[Measured]:  # fmt: skip
    """Export the period (the whole span, or its last `period_days`) and verify the bundle,
    as processes; print the figures beside the targets."""
    env = env or cli_environment(work / "pycache", ROOT / "protos")
    data = ["--data", str(folder)]
    postgres = is_postgres_url(load(folder).database.describe())
    key = work / "collector-evidence.pem"
    public = subprocess.run([*cli_command(), "audit", "public-key", *data], env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    key.write_text(public.stdout)
    # Bytecode for every module, as an installed collector has it (its packages compile at
    # install): else the timed export compiled the modules it is the first to import.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "protos" / "devposture")],
                   env=env, stdout=subprocess.DEVNULL, check=False)  # fmt: skip
    start = shape.end - dt.timedelta(days=period_days) if period_days else shape.start
    out = work / f"audit-{start:%Y%m%d}-{shape.end:%Y%m%d}-{time.time_ns()}.zip"
    export = run_measured(
        "audit export",
        [*cli_command(), "audit", "export", *data, "--from", start.isoformat(),
         "--to", shape.end.isoformat(), "--out", str(out), "--progress"],
        env, timeout=timeout, memory_mb=memory_mb, server=postgres,
    )  # fmt: skip
    runs = [export]
    if export.ok and verify:
        runs.append(run_measured(
            "audit verify", [*cli_command(), "audit", "verify", str(out), "--public-key", str(key)],
            env, timeout=timeout, memory_mb=memory_mb,
        ))  # fmt: skip
    figures = bundle_figures(out) if export.ok else None
    _print_figures(shape, start, runs, figures, postgres, timeout)
    out.unlink(missing_ok=True)
    return runs


def _print_figures(
    shape: Shape, start: dt.datetime, runs: list[Measured], figures: BundleFigures | None,
    postgres: bool, timeout: float,
) -> None:  # fmt: skip
    daily = shape.every_hours >= 24
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"-- period {start:%Y-%m-%d %H:%M} - {shape.end:%Y-%m-%d %H:%M} UTC"
          f" ({(shape.end - start).days} days); load average {load_avg}")  # fmt: skip
    print(f"{'':14} {'wall':>9} {'CPU':>9} {'peak RSS':>10}  exit"
          + ("  PostgreSQL server CPU (all clients)" if postgres else ""))  # fmt: skip
    for run in runs:
        wall = f"{run.wall:8.1f}s" if not run.timed_out else f">{timeout:.0f}s".rjust(9)
        server = f"  {run.server_cpu:13.1f}s" if run.server_cpu is not None else ""
        print(f"{run.label:14} {wall} {run.cpu:8.1f}s {run.peak_rss_mb:7.0f} MB  {run.returncode:4}"
              f"{server}")  # fmt: skip
        if run.beside_cpu:
            print(f"  of its CPU: its own process {run.cpu - run.beside_cpu:.1f} s, the processes"
                  f" beside it {run.beside_cpu:.1f} s (sampled)")  # fmt: skip
        if not run.ok:
            print(f"  {run.label} failed: {run.output.strip()[-600:] or '(no output)'}")
        elif run.label == "audit verify":
            print(f"  {run.output.splitlines()[0][:160]}")
    if figures is not None:
        total = sum(figures.counts.values())
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in figures.counts.items() if count)
        print(f"bundle: {_mb(figures.size)}, {total:,} records ({kinds})")
        for name, (size, packed) in sorted(figures.members.items(), key=lambda m: -m[1][0]):
            print(f"  {name:16} {_mb(size):>12} ({_mb(packed)} compressed)")
    export_target = EXPORT_SECONDS_DAILY if daily else EXPORT_SECONDS
    cadence = "daily" if daily else "reports more often than daily"
    for run in runs:
        seconds = VERIFY_SECONDS if run.label == "audit verify" else export_target
        took = f"{run.wall:.1f} s" if not run.timed_out else f"killed after {timeout:.0f} s"
        if not run.ok and not run.timed_out:
            took = f"failed (exit {run.returncode}) after {run.wall:.1f} s"
        print(f"target: {run.label} ({cadence}) <= {seconds:.0f} s -> "
              f"{_verdict(run.ok and run.wall <= seconds)} ({took})")  # fmt: skip
        print(f"target: {run.label} peak RSS <= {PEAK_RSS_MB:.0f} MB -> "
              f"{_verdict(run.ok and run.peak_rss_mb <= PEAK_RSS_MB)}"
              f" ({run.peak_rss_mb:.0f} MB)")  # fmt: skip
    if (shape.devices, shape.days) != (TARGET_DEVICES, TARGET_DAYS) or start != shape.start:
        days = (shape.end - start).days
        print(f"(the targets are for {TARGET_DEVICES:,} devices x {TARGET_DAYS} days: this"
              f" period is {shape.devices:,} devices x {days} days)")  # fmt: skip


# --- the data folder ---------------------------------------------------------------------------


def database_bytes(store: Store) -> int:
    db = store._db
    if isinstance(db, PostgresDatabase):
        return int(db.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    folder = db.folder()
    assert folder is not None
    return sum(p.stat().st_size for p in folder.glob("devposture.db*"))


def build_folder(
    folder: Path, shape: Shape, database: str | None, env: dict[str, str], *,
    checkpoints: bool = True,
) -> None:  # fmt: skip
    """`init` the data folder (the CLI in `env`), build the shape into its store, and record
    the shape."""
    init = [*cli_command(), "init", "--data", str(folder)]
    if database:
        init += ["--database", database]
    subprocess.run(init, check=True, stdout=subprocess.DEVNULL, env=env)
    store = Store.open(load(folder).database)
    try:
        print(f"building {shape.describe()} ({expected_reports(shape):,} reports) ...")
        built = build(store, shape, Progress("build", expected_reports(shape)),
                      checkpoints=checkpoints)  # fmt: skip
        took = time.perf_counter()
        if isinstance(store._db, PostgresDatabase):
            # What autovacuum would have done by now on a live database (as fleet_report.py).
            store._db.execute("VACUUM ANALYZE")
            print(f"VACUUM ANALYZE took {time.perf_counter() - took:.1f} s")
        size = database_bytes(store)
    finally:
        store.close()
    (folder / SHAPE_FILE).write_text(shape.to_json())
    per = built.body_bytes / max(built.reports, 1)
    print(f"built in {built.seconds:.1f} s: {built.reports:,} reports (bodies {per:,.0f} B on"
          f" average), {built.state_changes:,} state changes, {built.device_events:,} device"
          f" events, {built.entries:,} chain entries, {built.parts:,} distinct fact parts;"
          f" database {_mb(size)}"
          f" ({size / max(built.reports, 1):,.0f} B per report)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=TARGET_DEVICES)
    parser.add_argument("--days", type=int, default=TARGET_DAYS)
    parser.add_argument(
        "--every",
        type=float,
        default=24,
        metavar="HOURS",
        help="hours between a device's reports (1: hourly; default 24)",
    )
    parser.add_argument(
        "--end",
        type=dt.datetime.fromisoformat,
        default=END,
        help=f"when the data end (default {END:%Y-%m-%d}, UTC)",
    )
    parser.add_argument(
        "--changing",
        type=float,
        default=0.05,
        help="the share of devices with failure episodes (default 0.05)",
    )
    parser.add_argument(
        "--report-format", type=int, choices=(4, 5), default=5,
        help="how the store seals and keeps reports: 5, each report and group in format 5 or"
        " 4 as a collector chooses (store/report_format.py; the default), or 4 throughout",
    )  # fmt: skip
    parser.add_argument(
        "--seal-seconds", type=float, default=SEAL_SECONDS,
        help="a report's longest wait for its seal into the chain, as the collector's"
        f" (default {SEAL_SECONDS:g}, store/sealing.py): what sizes the chain's groups",
    )  # fmt: skip
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--database", metavar="URL",
        help=f"a new PostgreSQL database (created; dropped unless --folder) instead of a SQLite"
        f" file in the data folder; --engine postgresql alone means {DEFAULT_POSTGRES}",
    )  # fmt: skip
    parser.add_argument("--folder", type=Path, help="keep (or reuse) the data folder here")
    parser.add_argument(
        "--period-days",
        type=int,
        metavar="K",
        help="export only the last K days (default: the whole span)",
    )
    parser.add_argument("--build-only", action="store_true", help="build, measure nothing")
    parser.add_argument(
        "--no-checkpoints", action="store_true",
        help="build without the chain's daily checkpoints (as a collector that never served)",
    )  # fmt: skip
    parser.add_argument("--no-verify", action="store_true", help="export only")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds after which a command is killed (default 900)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        default=8192,
        help="address space limit of each command (default 8192; 0: none)",
    )
    args = parser.parse_args()
    database = args.database or (DEFAULT_POSTGRES if args.engine == "postgresql" else None)
    if database is not None and not is_postgres_url(database):
        parser.error("--database takes a postgresql:// address")
    end = args.end if args.end.tzinfo else args.end.replace(tzinfo=dt.UTC)
    shape = Shape(args.devices, args.days, args.every, end, args.changing,
                  report_format=args.report_format, seal_seconds=args.seal_seconds)  # fmt: skip
    keep = args.folder is not None
    with tempfile.TemporaryDirectory(prefix="devposture-audit-") as tmp:
        folder = args.folder or Path(tmp) / "collector"
        env = cli_environment(Path(tmp) / "pycache", ROOT / "protos")
        built = (folder / SHAPE_FILE).exists()
        if built:
            shape = Shape.from_json((folder / SHAPE_FILE).read_text())
            database = load(folder).database.describe() if database else None
            print(f"using {folder}: {shape.describe()} (built earlier)")
        if database and built and not is_postgres_url(load(folder).database.describe()):
            parser.error(f"{folder} holds a SQLite store: leave out --database/--engine")
        databases = postgres_database(database, keep) if database else contextlib.nullcontext(True)
        with databases as new_database:
            if built and database and new_database:
                raise SystemExit(f"{folder} was built, but its database was just created")
            if not built:
                build_folder(folder, shape, database, env, checkpoints=not args.no_checkpoints)
            if not args.build_only:
                print(f"commit {_commit()}, {os.cpu_count()} cores, {_engine(folder)}")
                measure(folder, shape, Path(tmp), period_days=args.period_days,
                        timeout=args.timeout, memory_mb=args.memory_limit_mb,
                        verify=not args.no_verify, env=env)  # fmt: skip
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _commit() -> str:
    """The commit measured: the checkout's HEAD, saying when its collector code has changes
    not committed; or the COMMIT file of a snapshot made with `git archive
    --add-virtual-file=COMMIT:$(git rev-parse --short HEAD) HEAD`."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False, cwd=ROOT)  # fmt: skip
    if head.returncode != 0:
        marker = ROOT / "COMMIT"
        return f"{marker.read_text().strip()} (snapshot)" if marker.exists() else "unknown"
    status = ["git", "status", "--porcelain", "--", "collector", "protos"]
    changed = subprocess.run(status, capture_output=True, text=True, check=False, cwd=ROOT).stdout
    return head.stdout.strip() + (" with uncommitted changes to collector/" if changed else "")


def _engine(folder: Path) -> str:
    described = load(folder).database.describe()
    return "PostgreSQL" if is_postgres_url(described) else f"SQLite ({described})"


if __name__ == "__main__":
    main()
