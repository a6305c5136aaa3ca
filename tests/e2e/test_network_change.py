"""A real network change, seen by a real agent process within 10 seconds.

Collector and agent run inside a throwaway network namespace (so the test changes no network
of this machine); a VPN client then brings up a tun device there, held open as OpenVPN does.
The agent's watcher must notice and send a report showing the VPN within the promised 10 s.
Needs root and iproute2 (`ip netns`), as CI has; skipped elsewhere with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from devposture.collector.store.target import PostgresTarget
from devposture.v1 import devposture_pb2 as pb
from tests import warm_commands
from tests.databases import init_arguments, raw
from tests.e2e.conftest import AGENT, COLLECTOR, open_store

PROMISED_SECONDS = 10.0
HOLD_TUN = """
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", sys.argv[1].encode(), 0x0001 | 0x1000))
print("holding", flush=True)
time.sleep(120)
"""


def _require_namespaces() -> None:
    reason = ""
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif shutil.which("ip") is None:
        reason = "iproute2 (ip) is not installed"
    elif not Path("/dev/net/tun").exists():
        reason = "/dev/net/tun is missing"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def netns() -> Iterator[str]:
    _require_namespaces()
    name = f"dp-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _database_arguments() -> list[str]:
    """`init`'s database for a collector serving inside the namespace. On PostgreSQL the
    server's loopback address is not the namespace's: its new schema is reached through the
    server's Unix socket instead (a file, the same in every network namespace)."""
    arguments = init_arguments()
    if not arguments:
        return arguments
    flag, url = arguments
    parts = urlsplit(url)
    port = parts.port or 5432
    server = raw(PostgresTarget(url))
    try:
        listed = str(server.execute("SHOW unix_socket_directories").fetchone()[0])
    finally:
        server.close()
    folders = [f.strip() for f in listed.split(",") if f.strip()]
    sockets = [f for f in folders if Path(f, f".s.PGSQL.{port}").exists()]
    if not sockets:
        reason = f"the PostgreSQL server has no Unix socket here (it lists {listed!r})"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    query = f"host={quote(sockets[0], safe='')}&port={port}&{parts.query}"
    return [flag, urlunsplit((parts.scheme, f"{parts.username}@", parts.path, query, ""))]


def _output(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _in(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def _reports(data: Path) -> list[pb.PostureReport]:
    store = open_store(data)
    try:
        bodies = [store.reports.report_body(i) for i in store.reports.report_ids()]
    finally:
        store.close()
    return [pb.PostureReport.FromString(b) for b in bodies if b is not None]


def _wait(
    data: Path, done: Callable[[list[pb.PostureReport]], bool], seconds: float
) -> list[pb.PostureReport]:
    deadline = time.monotonic() + seconds
    while True:
        reports = _reports(data)
        if done(reports) or time.monotonic() > deadline:
            return reports
        time.sleep(0.1)


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out or ""


def test_a_vpn_coming_up_is_reported_within_ten_seconds(netns: str, tmp_path: Path) -> None:
    data, ready, state = tmp_path / "collector", tmp_path / "ready.json", tmp_path / "agent"
    subprocess.run([COLLECTOR, "init", "--data", str(data), *_database_arguments()],
                   check=True, capture_output=True)  # fmt: skip
    fingerprint = _output(COLLECTOR, "ca", "fingerprint", "--data", str(data)).strip()
    token = tmp_path / "token"
    token.write_text(_output(COLLECTOR, "token", "create", "--data", str(data)))
    processes: list[subprocess.Popen[str]] = []
    try:
        collector = subprocess.Popen(
            _in(netns, COLLECTOR, "serve", "--data", str(data), "--enroll-port", "0",
                "--report-port", "0", "--admin-port", "0", "--metrics-port", "0",
                "--web-port", "0", "--drain-seconds", "0", "--ready-file", str(ready)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        processes.append(collector)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert collector.poll() is None and time.monotonic() < deadline, "no collector"
            time.sleep(0.05)
        port = json.loads(ready.read_text())["enroll_port"]
        enrolled = subprocess.run(
            _in(netns, AGENT, "enroll", "--collector", f"127.0.0.1:{port}", "--token-file",
                str(token), "--ca-fingerprint", fingerprint, "--state", str(state)),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr
        warm_commands.seed(state)
        agent = subprocess.Popen(
            _in(netns, AGENT, "run", "--state", str(state), "--interval", "3600"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        processes.append(agent)
        # The start-up report (a second follows once the first ack brings the fleet's config).
        start_up = _wait(data, lambda reports: len(reports) >= 1, 60)[0]
        assert not start_up.vpn.active

        # A VPN client connects: it creates tun0, holds it open and gives it an address.
        subprocess.run(_in(netns, "ip", "tuntap", "add", "dev", "tun0", "mode", "tun"),
                       check=True)  # fmt: skip
        client = subprocess.Popen(_in(netns, sys.executable, "-c", HOLD_TUN, "tun0"),
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        processes.append(client)
        assert client.stdout is not None and client.stdout.readline().strip() == "holding"
        changed = time.monotonic()
        subprocess.run(_in(netns, "ip", "addr", "add", "10.8.0.2/24", "dev", "tun0"), check=True)
        subprocess.run(_in(netns, "ip", "link", "set", "tun0", "up"), check=True)
        reports = _wait(data, lambda rs: any(r.vpn.active for r in rs), PROMISED_SECONDS + 5)
        took = time.monotonic() - changed
    finally:
        outputs = [_stop(p) for p in reversed(processes)]
    with_vpn = [r for r in reports if r.vpn.active]
    assert with_vpn, f"no report showed the VPN; processes said: {outputs}"
    print(f"network change reported after {took:.1f} s")
    assert took < PROMISED_SECONDS
    latest = with_vpn[0]
    assert [(i.name, i.kind, i.up) for i in latest.vpn.interfaces] == [("tun0", "tun", True)]
