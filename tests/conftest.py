"""Shared fixtures: a real collector (grpc.aio, mutual TLS, SQLite file) on ephemeral loopback
ports, and real agents enrolled against it."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.enroll import enroll
from devposture.agent.state import AgentState, Enrollment
from devposture.collector import server as collector_server
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig
from devposture.collector.credentials import new_credential
from devposture.collector.datadir import initialize
from devposture.collector.service import CollectorService
from devposture.collector.store import Store
from devposture.collector.tokens import new_token
from devposture.net.address import CollectorAddress
from devposture.net.pinning import fingerprint as pin_of
from devposture.v1 import devposture_pb2 as pb
from tests import databases
from tests.databases import collector_database


def installed_tool(name: str) -> str:
    """The path of a real tool a test runs (7z, zip, sqlcipher, ...): where it is missing the
    test is skipped on a developer's machine and fails in CI, whose .ci/run installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed on this machine (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _pin_english_locale() -> None:
    """The suite's own locale, whatever the developer's: English (C.UTF-8). The command lines
    word their errors, help and headings in the locale's language, and the tests assert the
    English unless they set a locale themselves (`LANG=zh_CN.UTF-8` for the Chinese), so a
    developer under zh_CN must get the same results as CI. Set when this file is imported,
    before any test module (in each pytest-xdist worker too); subprocesses inherit it."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        os.environ.pop(name, None)
    os.environ["LANG"] = "C.UTF-8"


_pin_english_locale()


def _publish_status_in_a_folder_of_the_run() -> None:
    """Where every agent the suite runs (`once`, `run`, in a process or not) publishes what
    `status` shows (agent.public_status): a temporary folder of this process's, inherited by
    its subprocesses, never the machine's own (/run/devposture-agent), which a developer may
    not write and which parallel workers would share. A test that reads the copy names a
    folder of its own."""
    folder = Path(tempfile.mkdtemp(prefix="devposture-public-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["DEVPOSTURE_AGENT_PUBLIC_FOLDER"] = str(folder)


_publish_status_in_a_folder_of_the_run()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Hold a test marked engine_free to its word: tests/databases.py fails it where its
    setup, call or teardown reaches the run's database engine (the PostgreSQL leg leaves
    such a test out, so an outcome that depends on the engine would go unseen)."""
    marked = item.get_closest_marker("engine_free") is not None
    databases.engine_free_test = item.nodeid if marked else None
    try:
        return (yield)
    finally:
        databases.engine_free_test = None


@dataclass
class LiveCollector:
    """A collector serving on loopback from a background event loop."""

    config: CollectorConfig
    ca_fingerprint: str
    enroll_port: int
    report_port: int
    _loop: asyncio.AbstractEventLoop
    _running: collector_server.RunningServer

    @property
    def enroll_address(self) -> CollectorAddress:
        return CollectorAddress("127.0.0.1", self.enroll_port)

    @property
    def service(self) -> CollectorService:
        return self._running.service

    def store(self) -> Store:
        """A separate connection, as the CLI would open: sees only committed data."""
        return Store.open(self.config.database)

    def credential(self, name: str, role: str) -> str:
        """A new admin credential (`dpa_…`) with `role`, as `admin add` makes one."""
        credential = new_credential()
        store = self.store()
        try:
            store.admin.add_credential(credential, name, role, utcnow())
        finally:
            store.close()
        return str(credential)

    def token(self, uses: int = 1, ttl: dt.timedelta = dt.timedelta(hours=1)) -> str:
        token = new_token()
        store = self.store()
        try:
            now = utcnow()
            store.identity.add_token(token, now, now + ttl, uses)
        finally:
            store.close()
        return str(token)


@contextlib.contextmanager
def running_collector(
    directory: Path, *, serve_metrics: bool = False, **overrides: object
) -> Iterator[LiveCollector]:
    """A collector in a new data folder; `overrides` replace fields of its configuration
    (e.g. max_connection_age_seconds=2) as if collector.toml said so; the drain before
    stopping is 0 unless `drain_seconds` says otherwise. `serve_metrics` also starts the
    metrics endpoint, on a free port."""
    config, ca_cert = initialize(directory, "127.0.0.1", database=collector_database())
    config = dataclasses.replace(config, **{"drain_seconds": 0.0, **overrides})  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-collector", daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(
        collector_server.start(
            config, 0, 0, "127.0.0.1", metrics_port=0 if serve_metrics else None
        ),
        loop,
    ).result(30)
    try:
        yield LiveCollector(
            config, pin_of(ca_cert), running.enroll_port, running.report_port, loop, running
        )
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0.5), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def live_collector(tmp_path: Path) -> Iterator[LiveCollector]:
    with running_collector(tmp_path / "collector") as collector:
        yield collector


@pytest.fixture
def generous_collector(tmp_path: Path) -> Iterator[LiveCollector]:
    """A collector whose per-device rate limit does not get in the way of a load test."""
    with running_collector(
        tmp_path / "collector", device_call_burst=100_000, device_calls_per_minute=1_000_000
    ) as collector:
        yield collector


def host_info(hostname: str = "test-host") -> pb.HostInfo:
    return pb.HostInfo(
        hostname=hostname,
        os_family=pb.OS_FAMILY_LINUX,
        os_name="Debian GNU/Linux",
        os_version="12",
        architecture="x86_64",
    )


@dataclass
class EnrolledAgent:
    state: AgentState
    enrollment: Enrollment


def enroll_agent(
    collector: LiveCollector, directory: Path, hostname: str = "test-host"
) -> EnrolledAgent:
    state = AgentState(directory)
    enrollment = enroll(
        state,
        collector.enroll_address,
        collector.token(),
        collector.ca_fingerprint,
        host_info(hostname),
    )
    return EnrolledAgent(state, enrollment)


@pytest.fixture
def agent(live_collector: LiveCollector, tmp_path: Path) -> EnrolledAgent:
    return enroll_agent(live_collector, tmp_path / "agent")


def make_report(
    device_id: str, collected_at: dt.datetime | None = None, *, firewall_enabled: bool = True
) -> pb.PostureReport:
    """A small, valid report with a firewall fact (on, or off: a failing check), as an agent
    would build it."""
    ts = Timestamp()
    ts.FromDatetime(collected_at or utcnow())
    report = pb.PostureReport(
        report_id=str(uuid.uuid4()), device_id=device_id, agent_version="test", host=host_info()
    )
    report.collected_at.CopyFrom(ts)
    report.firewall.enabled = firewall_enabled
    report.firewall.profiles.add(
        name="nftables", enabled=firewall_enabled, default_inbound_action="drop"
    )
    return report
