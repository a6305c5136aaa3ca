"""Several collectors on one PostgreSQL: three real `serve` processes (the first made with
`init --database`, the others with `init --join`), agents spread over them by gRPC's
round_robin over the three addresses, one collector SIGKILLed in the middle of the load.

The others go on; every report an agent sent is acknowledged in the end (it retries the same
report id after a failure, as its outbox does); none acknowledged is lost, none stored twice;
the evidence chain is one unbroken sequence; and the fleet counted in SQL equals the fleet
judged from the history. Runs on the PostgreSQL leg (make unit-postgresql)."""

from __future__ import annotations

import collections
import datetime as dt
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from devposture.agent.enroll import enroll
from devposture.agent.state import AgentState
from devposture.collector.clock import utcnow
from devposture.collector.config import CollectorConfig, load
from devposture.collector.datadir import initialize
from devposture.collector.evidence import chain, fact_groups
from devposture.collector.join import join
from devposture.collector.policy import policy_in_force
from devposture.collector.reports import fleet_rows
from devposture.collector.store import Store
from devposture.collector.tokens import new_token
from devposture.net.address import CollectorAddress
from devposture.net.pinning import fingerprint as pin_of
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.collector.joined_collectors import configured_alone
from tests.conftest import host_info, make_report
from tests.databases import fresh_postgres, on_postgresql
from tests.ports import free_ports
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not on_postgresql(), reason="several collectors share PostgreSQL: the PostgreSQL leg runs it"
)

COLLECTOR = str(Path(sys.executable).parent / "devposture-collector")
DEVICES = 12
REPORTS_PER_DEVICE = 25
KILL_AFTER = 100  # acknowledged reports before the second collector is killed


@dataclass
class Serving:
    config: CollectorConfig
    process: subprocess.Popen[str]
    metrics_port: int


def _folders(base: Path) -> list[CollectorConfig]:
    """The first collector (`init --database`), and two more joined to it."""
    first, _ = initialize(base / "a", "127.0.0.1", database=fresh_postgres(),
                          enroll_port=free_ports(1)[0], report_port=free_ports(1)[0])  # fmt: skip
    configs = [first]
    for name in ("b", "c"):
        enroll_port, report_port = free_ports(2)
        config, _ = join(base / name, first.data_dir, "127.0.0.1",
                         enroll_port=enroll_port, report_port=report_port)  # fmt: skip
        assert config.database == first.database
        configs.append(config)
    return configs


def _wait_serving(process: subprocess.Popen[str], ready: Path) -> None:
    wait_until(lambda: ready.exists() or process.poll() is not None, f"{ready} written")
    assert process.poll() is None, process.communicate()[1]


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[list[Serving]]:
    configs = _folders(tmp_path)
    serving: list[Serving] = []
    try:
        for config in configs:
            admin, metrics = free_ports(2)
            configured_alone(config, admin, metrics)
            ready = config.data_dir.parent / f"{config.data_dir.name}.ready"
            process = subprocess.Popen(
                [COLLECTOR, "serve", "--data", str(config.data_dir), "--ready-file", str(ready)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            serving.append(Serving(load(config.data_dir), process, metrics))
            _wait_serving(process, ready)
        yield serving
    finally:
        for each in serving:
            if each.process.poll() is None:
                each.process.kill()
            each.process.communicate(timeout=60)


def _received(serving: Serving) -> float:
    """Reports this collector took, from its own metrics endpoint."""
    url = f"http://127.0.0.1:{serving.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        r"^devposture_reports_received_total(?:\{[^}]*\})? (\S+)$", text, re.M))  # fmt: skip


def _channel(state: AgentState, serving: list[Serving]) -> grpc.Channel:
    """One channel over the three collectors' report ports, round robin (as a client-side
    balancer over several addresses would spread a fleet)."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=state.ca_path.read_bytes(),
        private_key=state.key_path.read_bytes(),
        certificate_chain=state.cert_path.read_bytes(),
    )
    targets = ",".join(f"127.0.0.1:{s.config.report_port}" for s in serving)
    # The name every collector's certificate is checked against, given once for the three
    # addresses (each collector's own certificate, from the shared CA, names localhost).
    return grpc.secure_channel(f"ipv4:{targets}", credentials,
                               options=[("grpc.lb_policy_name", "round_robin"),
                                        ("grpc.default_authority", "localhost")])  # fmt: skip


RETRIED = (
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
)  # fmt: skip


def test_three_collectors_one_killed_lose_nothing_and_agree(
    collectors: list[Serving], tmp_path: Path
) -> None:
    first = collectors[0]
    store = Store.open(first.config.database)
    now = utcnow()
    token = new_token()
    store.identity.add_token(token, now, now + dt.timedelta(hours=1), uses=DEVICES)
    ca_pin = pin_of(x509.load_pem_x509_certificate(first.config.ca_cert.read_bytes()))
    agents = []
    for n in range(DEVICES):  # enrolled through any collector: here each in turn
        via = collectors[n % 3].config
        state = AgentState(tmp_path / f"agent-{n}")
        enrollment = enroll(state, CollectorAddress("127.0.0.1", via.enroll_port), str(token),
                            ca_pin, host_info(f"pc-{n}"))  # fmt: skip
        agents.append((state, enrollment))

    sent: set[str] = set()
    acked: list[str] = []
    duplicates: list[str] = []
    retries = collections.Counter[str]()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def agent_load(state: AgentState, device_id: str) -> None:
        try:
            with _channel(state, collectors) as channel:
                stub = pb_grpc.CollectorStub(channel)
                for k in range(REPORTS_PER_DEVICE):
                    report = make_report(device_id, firewall_enabled=k % 3 != 0)
                    with lock:
                        sent.add(report.report_id)
                    while True:  # the outbox keeps the report until it is acknowledged
                        try:
                            ack = stub.Report(pb.ReportRequest(report=report), timeout=20,
                                              wait_for_ready=True)  # fmt: skip
                        except grpc.RpcError as exc:
                            if exc.code() not in RETRIED:
                                raise
                            with lock:
                                retries[exc.code().name] += 1
                            continue
                        assert ack.report_id == report.report_id
                        with lock:
                            acked.append(report.report_id)
                            if ack.duplicate:
                                duplicates.append(report.report_id)
                        break
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=agent_load, args=(s, e.device_id)) for s, e in agents]
    for thread in threads:
        thread.start()
    victim = collectors[1]
    wait_until(lambda: len(acked) >= KILL_AFTER or not any(t.is_alive() for t in threads),
               "the load under way")  # fmt: skip
    took = _received(victim)
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(60)
    acked_at_kill = len(acked)
    for thread in threads:
        thread.join(300)
        assert not thread.is_alive(), "an agent's load did not finish"
    assert not errors, errors
    assert took > 0, "the killed collector had taken no report: round robin did not spread"
    assert acked_at_kill < DEVICES * REPORTS_PER_DEVICE, "killed after the load, not during it"

    for survivor in (collectors[0], collectors[2]):
        survivor.process.send_signal(signal.SIGTERM)
    for survivor in (collectors[0], collectors[2]):
        assert survivor.process.wait(120) == 0, survivor.process.communicate()[1][-2000:]

    # Every report sent was acknowledged, and every acknowledged report is stored once.
    assert set(acked) == sent and len(sent) == DEVICES * REPORTS_PER_DEVICE
    stored = store.reports.report_ids()
    assert len(stored) == len(set(stored)) and set(stored) == sent
    head = store.evidence.chain_head()
    assert head is not None
    entries = store.evidence.chain_entries(1, head.seq)
    # Sealed in groups (store/sealing.py), the killed collector's last reports by a survivor.
    # (in either format: `report_facts` where most of a group's facts were met before).
    chained = collections.Counter(r.key for e in entries for r in chain.as_reports(e)
                                  if r.kind == chain.REPORT)  # fmt: skip
    chained.update(str(r["report_id"]) for e in entries if e.kind == fact_groups.REPORT_FACTS
                   for r in fact_groups.records(e))  # fmt: skip
    assert set(chained) == sent and set(chained.values()) == {1}
    # One unbroken chain, whichever collector wrote each entry.
    previous = chain.GENESIS
    for seq, entry in enumerate(entries, start=1):
        assert (entry.seq, entry.prev_hash) == (seq, previous)
        assert entry.recomputed() == entry.hash
        previous = entry.hash
    # The fleet counted in SQL (what `report fleet` shows) equals the history judged.
    policy = policy_in_force(first.config, store)
    at = utcnow()
    assert fleet_rows(store, policy, at, current=True) == fleet_rows(store, policy, at, exact=True)
    store.close()
