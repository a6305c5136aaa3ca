"""PostgreSQL failing under a collector (issue 17: several collectors on one PostgreSQL).

A shared database goes away in real ways: a failover, a restart for an upgrade, an operator
or a pooler killing connections. The collector's connections are then dead in its pool, and
every statement on one fails. What must hold: the agents are told "unavailable" while it
lasts (they keep their reports), the collector takes new connections once the server answers
again, without a restart, and every report is stored once.

Two faults, each leaving the test run's other tests (sharing the server) alone:

* the server terminating the collector's own backends (`pg_terminate_backend`, what a restart
  or a failover does to them);
* the network to the server cut for seconds (tests/tcp_cut.py: every connection ended, new
  ones refused), then back: a server down and up again, as the collector sees it. The agents
  and the dashboard are told "unavailable" meanwhile, and the collector goes on by itself.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from devposture.collector.store.target import PostgresTarget
from tests.databases import on_postgresql, terminate_backends
from tests.e2e.fleet import COLLECTOR, CollectorServer, FleetRun, enroll_fleet, run
from tests.tcp_cut import CuttableRelay
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(not on_postgresql(), reason="PostgreSQL's own faults")


def _backend_ports(pid: int) -> set[int]:
    """The local ports of the TCP connections to PostgreSQL of a process and its children."""
    parent = psutil.Process(pid)
    ports: set[int] = set()
    for process in (parent, *parent.children(recursive=True)):
        for connection in process.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == 5432:
                ports.add(connection.laddr.port)
    return ports


def _terminate_backends(pid: int) -> int:
    """Kill, on the server's side, every backend serving the process `pid` (and its writer)."""
    ports = _backend_ports(pid)
    assert ports, "the collector holds no connection to PostgreSQL: the fault would be nothing"
    return terminate_backends(client_ports=ports)


def _fleet(collector: CollectorServer, root: Path, count: int, backlog: int) -> FleetRun:
    """`count` agents with `backlog` reports each waiting, producing more as they drain."""
    agents = enroll_fleet(collector, root, count)
    for agent in agents:
        agent.put_backlog(backlog)
    return FleetRun(agents, produce_every=0.05).start()


def _nothing_lost_and_told_unavailable(collector: CollectorServer, fleet: FleetRun) -> None:
    """After the fault and the drain: every report made is stored once, none set aside, the
    agents were told only "unavailable" (never UNKNOWN: a database error escaping a method,
    which a client cannot tell from a bug), and the collector logged no traceback."""
    assert not fleet.errors, fleet.errors
    made = [i for a in fleet.agents for i in a.made]
    stored = Counter(collector.stored_ids())
    assert set(stored) == set(made), "a report was lost"
    assert max(stored.values()) == 1, "a report was stored twice"
    for agent in fleet.agents:
        assert agent.set_aside() == [], f"{agent.name} set reports aside"
    told = {failure.split(":")[0] for failure in fleet.failures}
    assert told <= {"UNAVAILABLE"}, fleet.failures
    assert collector.stop() == 0
    log = collector.output()
    assert "Traceback" not in log and "Unexpected" not in log, log[-4000:]


def test_backends_killed_under_load_the_collector_reconnects_and_loses_nothing(
    tmp_path: Path,
) -> None:
    collector = CollectorServer.create(tmp_path)
    collector.start()
    try:
        fleet = _fleet(collector, tmp_path / "agents", 10, 20)
        try:
            fleet.wait_delivered(50, timeout=60)
            assert collector.process is not None
            assert _terminate_backends(collector.process.pid) > 0
            # The same process goes on storing, on new connections: no restart.
            fleet.wait_delivered(fleet.delivered() + 100, timeout=60)
            fleet.stop_producing()
            assert fleet.wait(60), "the agents did not drain their outboxes"
        finally:
            fleet.close()
        _nothing_lost_and_told_unavailable(collector, fleet)
    finally:
        collector.close()


def _through(collector: CollectorServer, relay: CuttableRelay) -> None:
    """Point the collector's collector.toml at its database through `relay`."""
    config = collector.data / "collector.toml"
    database = collector.database
    assert isinstance(database, PostgresTarget)
    url = database.url
    text = config.read_text(encoding="utf-8")
    assert text.count(json.dumps(url)) == 1
    config.write_text(text.replace(json.dumps(url), json.dumps(relay.url_through(url))),
                      encoding="utf-8")  # fmt: skip


def _dashboard_status(port: int) -> tuple[int, str]:
    """GET / of the dashboard: its status and page (no session needed to reach the database:
    the session is looked up there)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={
        "Cookie": "devposture_session=nonesuch", "Accept-Language": "zh-CN"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read().decode()


def _health(collector: CollectorServer, fleet: FleetRun) -> Callable[[], str]:
    """The server-wide health status, as a load balancer's probe asks it on the enrollment
    port (TLS, the collector's CA, no client certificate)."""
    credentials = grpc.ssl_channel_credentials(fleet.agents[0].state.ca_path.read_bytes())

    def status() -> str:
        with grpc.secure_channel(f"127.0.0.1:{collector.enroll_port}", credentials) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    return status


def test_the_database_unreachable_for_seconds_then_back_loses_nothing(tmp_path: Path) -> None:
    relay = CuttableRelay(("127.0.0.1", 5432))
    collector = CollectorServer.create(tmp_path)
    _through(collector, relay)
    collector.start(web=True)
    try:
        fleet = _fleet(collector, tmp_path / "agents", 8, 10)
        try:
            fleet.wait_delivered(40, timeout=60)
            relay.cut()
            cut_at = fleet.delivered()
            # Agents keep calling and are refused while it lasts.
            wait_until(lambda: bool(fleet.failures), "a call refused in the outage")
            # A load balancer probing health is told to send agents elsewhere meanwhile.
            health = _health(collector, fleet)
            wait_until(lambda: health() == "NOT_SERVING", "health saying NOT_SERVING")
            status, page = _dashboard_status(collector.web_port)
            assert status == 503, page[-2000:]
            assert "采集器数据库暂时无法访问" in page
            relay.restore()
            back = time.monotonic()
            wait_until(lambda: health() == "SERVING", "health saying SERVING again")
            fleet.wait_delivered(cut_at + 100, timeout=90)
            recovered = time.monotonic() - back
            fleet.stop_producing()
            assert fleet.wait(90), "the agents did not drain their outboxes"
            # The dashboard's own connections come back as well.
            wait_until(lambda: _dashboard_status(collector.web_port)[0] != 503,
                       "the dashboard back")  # fmt: skip
            # The login page, the stale cookie's session being unknown.
            assert _dashboard_status(collector.web_port)[0] == 200
        finally:
            fleet.close()
        _nothing_lost_and_told_unavailable(collector, fleet)
        print(f"a hundred reports stored {recovered:.1f} s after the database came back")
    finally:
        collector.close()
        relay.close()


def test_a_command_or_serve_without_its_server_ends_with_one_line_saying_what_to_check(
    tmp_path: Path,
) -> None:
    """The server down before a command starts: within the pool's wait, exit 1 and one line
    naming the setting and the checks; the pool's warnings of each try stay out of a one-off
    command's output (a service's log keeps them)."""
    relay = CuttableRelay(("127.0.0.1", 5432))
    try:
        collector = CollectorServer.create(tmp_path)
        _through(collector, relay)
        relay.cut()
        for argv in (["report", "fleet"], ["device", "list"]):
            done = run(COLLECTOR, *argv, "--data", str(collector.data))
            assert done.returncode == 1, done
            assert done.stderr.count("\n") == 1, done.stderr
            assert "cannot use the collector's PostgreSQL database" in done.stderr
            assert "check [database] url in collector.toml" in done.stderr
        served = run(COLLECTOR, "serve", "--data", str(collector.data), "--enroll-port", "0",
                     "--report-port", "0", "--admin-port", "0", "--web-port", "0",
                     "--metrics-port", "0")  # fmt: skip
        assert served.returncode == 1
        assert "check [database] url in collector.toml" in served.stderr
        assert "psycopg.pool" in served.stderr  # the service's log says what it tried
    finally:
        relay.close()
